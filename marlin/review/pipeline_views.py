"""Pages of the review pipeline: the reviewer queue and form, the adjudicator queue and form, the
decision, the timeline, voiding, re-review and the annotator's revision requests.

Reviewers see the comparison exactly as annotators did (blind, through the expert workspace's
``comparison_context`` and ``review/_comparison_body.html``): only the public id and the letters
A and B. Agent names appear only on the decision and timeline pages, after the decision, to
admins (and to experts when the project reveals them).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import User
from marlin.audit.models import AuditEvent
from marlin.errors import IllegalTransition
from marlin.permissions import role_required
from marlin.review import activity, blinding, compare, pipeline, routing
from marlin.review.forms import (
    DecisionForm,
    ReasonForm,
    ReviewForm,
    error_messages,
    rating_scale,
)
from marlin.review.models import (
    Comparison,
    ComparisonState,
    Judgment,
    JudgmentStatus,
    Review,
    ReviewVerdict,
    Routing,
)
from marlin.tasks.models import Project, RubricVersion
from marlin.tasks.rubric import SCALE_7

SCALE_LABELS = dict(SCALE_7)
EXPERT_ROLES = ("annotator", "reviewer", "adjudicator")


def _get_comparison(public_id: str) -> Comparison:
    return get_object_or_404(
        Comparison.objects.select_related(
            "project__rubric", "task__repository", "run_a__agent", "run_b__agent"
        ),
        public_id=public_id,
    )


def _blind(comparison: Comparison, user: User) -> dict[str, Any]:
    return compare.comparison_context(comparison, user)


def judgment_rows(judgment: Judgment) -> list[dict[str, Any]]:
    rows = []
    for criterion in judgment.rubric_version.rated_criteria:
        key = criterion["key"]
        value = judgment.ratings.get(key, "missing")
        label = (
            "Not applicable"
            if value is None
            else "—"
            if value == "missing"
            else SCALE_LABELS[value]
        )
        rows.append(
            {
                "key": key,
                "name": criterion["name"],
                "guidance": criterion["guidance"],
                "value": value,
                "label": label,
                "na_allowed": criterion.get("allow_not_applicable", True),
            }
        )
    overall = judgment.rubric_version.overall_criterion
    label = "—" if judgment.overall is None else SCALE_LABELS[judgment.overall]
    rows.append(
        {
            "key": overall["key"],
            "name": overall["name"],
            "guidance": overall["guidance"],
            "value": judgment.overall,
            "label": label,
            "overall": True,
        }
    )
    return rows


def _current_version(comparison: Comparison) -> RubricVersion:
    return comparison.project.rubric.current_version()


# Reviewers.


def review_queue_for(user: User) -> QuerySet[Judgment]:
    """Submitted judgments in review that still need reviews, never the reviewer's own, never
    one they already reviewed, never on a comparison they judged."""
    mine = Review.objects.filter(judgment=OuterRef("pk"), reviewer=user, superseded_at__isnull=True)
    judged = Judgment.objects.filter(comparison=OuterRef("comparison"), annotator=user)
    return (
        Judgment.objects.filter(
            status=JudgmentStatus.SUBMITTED, comparison__state=ComparisonState.IN_REVIEW
        )
        .exclude(annotator=user)
        .exclude(Exists(mine))
        .exclude(Exists(judged))
        .annotate(n_reviews=Count("reviews", filter=Q(reviews__superseded_at__isnull=True)))
        .filter(n_reviews__lt=F("comparison__project__reviewers_per_judgment"))
        .exclude(comparison__routing=Routing.SINGLE)  # triage: no review
        .select_related("comparison__project", "comparison__task")
        .order_by("submitted_at", "pk")
    )


@role_required("reviewer")
def review_queue(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request, "review/pipeline/queue.html", {"judgments": review_queue_for(request.user)[:200]}
    )


@role_required("reviewer")
def review_judgment(
    request: AuthenticatedHttpRequest, public_id: str, judgment_id: int
) -> HttpResponse:
    comparison = _get_comparison(public_id)
    judgment = get_object_or_404(
        Judgment.objects.select_related("rubric_version", "annotator"),
        pk=judgment_id,
        comparison=comparison,
    )
    judgment.check_reviewer(request.user)  # the page shows nothing do_review would refuse
    data = request.POST if request.method == "POST" else None
    form = ReviewForm(data, version=judgment.rubric_version)
    if form.is_bound and form.is_valid():
        try:
            pipeline.do_review(
                request.user,
                judgment,
                verdict=form.cleaned_data["verdict"],
                reason=form.cleaned_data["reason"],
                per_criterion=form.per_criterion(),
            )
        except (ValidationError, IllegalTransition) as exc:
            form.add_error(None, _message(exc))
        else:
            sent_back = form.cleaned_data["verdict"] == ReviewVerdict.REVISION
            messages.success(
                request,
                "Revision requested; the annotator will see your comments."
                if sent_back
                else "Review recorded.",
            )
            return redirect("pipeline:queue")
    rows = {row["key"]: row for row in judgment_rows(judgment)}
    return render(
        request,
        "review/pipeline/review.html",
        {
            **_blind(comparison, request.user),
            **routing.weak_label_context(request.user, comparison),
            "judgment": judgment,
            "rows": list(rows.values()),
            "criteria": [
                {"row": rows[c["key"]], "agree": agree, "reason": reason, "rating": rating}
                for c, agree, reason, rating in form.criterion_rows()
            ],
            "rating_scale": rating_scale(),
            "form": form,
            "show_annotator": comparison.project.reviewers_see_annotator,
            "verdicts": ReviewVerdict.choices,
            "activity": activity.page_settings(
                request.user, "review", judgment.pk, judgment=judgment.pk
            ),
        },
        status=400 if form.errors else 200,
    )


def _message(exc: ValidationError | IllegalTransition) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


# Adjudicators.


@role_required("adjudicator")
def adjudication_queue(request: AuthenticatedHttpRequest) -> HttpResponse:
    judged = Judgment.objects.filter(comparison=OuterRef("pk"), annotator=request.user)
    comparisons = (
        Comparison.objects.filter(state=ComparisonState.DISPUTED)
        .exclude(Exists(judged))
        .select_related("project", "task")
        .order_by("updated_at")
    )
    return render(
        request, "review/pipeline/adjudication_queue.html", {"comparisons": comparisons[:200]}
    )


@role_required("adjudicator")
def adjudicate(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    comparison = _get_comparison(public_id)
    if comparison.state == ComparisonState.DECIDED:
        messages.info(request, "This comparison is already decided.")
        return redirect("pipeline:decision", public_id=public_id)
    comparison.check_adjudicator(request.user)  # the page shows nothing do_adjudicate refuses
    current = _current_version(comparison)
    form = DecisionForm(
        request.POST if request.method == "POST" else None,
        version=current,
        min_rationale=comparison.project.min_rationale_chars,
    )
    if form.is_bound and form.is_valid():
        try:
            pipeline.do_adjudicate(
                request.user,
                comparison,
                overall=form.cleaned_data["overall"],
                ratings=form.ratings(),
                rationale=form.cleaned_data["rationale"],
            )
        except (ValidationError, IllegalTransition) as exc:
            form.add_error(None, _message(exc))
        else:
            messages.success(request, "Decision recorded.")
            return redirect("pipeline:decision", public_id=public_id)
    judgments = list(
        comparison.judgments.exclude(status__in=[JudgmentStatus.DRAFT, JudgmentStatus.VOIDED])
        .select_related("annotator", "rubric_version")
        .prefetch_related("reviews__reviewer", "reviews__rubric_version")
        .order_by("pk")
    )
    return render(
        request,
        "review/pipeline/adjudicate.html",
        {
            **_blind(comparison, request.user),
            **routing.weak_label_context(request.user, comparison),
            "judgments": [
                {"judgment": j, "rows": judgment_rows(j), "reviews": list(j.reviews.all())}
                for j in judgments
            ],
            "current_version": current,
            "form": form,
            "criteria": [
                {**c, "field": field, "na_allowed": c.get("allow_not_applicable", True)}
                for c, field in form.rating_rows()
            ],
            "rating_scale": rating_scale(),
            "dispute": AuditEvent.objects.filter(
                object_type="review.comparison",
                object_id=str(comparison.pk),
                verb="comparison.disputed",
            ).last(),
            "activity": activity.page_settings(
                request.user, "adjudication", comparison.public_id, comparison=comparison.public_id
            ),
        },
        status=400 if form.errors else 200,
    )


# Decision and timeline.


def _took_part(user: User, comparison: Comparison) -> bool:
    return (
        comparison.judgments.filter(annotator=user).exists()
        or Review.objects.filter(judgment__comparison=comparison, reviewer=user).exists()
    )


def timeline_events(comparison: Comparison) -> QuerySet[AuditEvent]:
    """The comparison's events and those of its judgments, reviews and decision, in order."""
    judgment_ids = [str(pk) for pk in comparison.judgments.values_list("pk", flat=True)]
    review_ids = [
        str(pk)
        for pk in Review.objects.filter(judgment__comparison=comparison).values_list(
            "pk", flat=True
        )
    ]
    decision = getattr(comparison, "decision", None)
    query = (
        Q(object_type="review.comparison", object_id=str(comparison.pk))
        | Q(object_type="review.judgment", object_id__in=judgment_ids)
        | Q(object_type="review.review", object_id__in=review_ids)
    )
    if decision is not None:
        query |= Q(object_type="review.decision", object_id=str(decision.pk))
    return AuditEvent.objects.filter(query).order_by("sequence")


def _outcome_context(request: AuthenticatedHttpRequest, comparison: Comparison) -> dict[str, Any]:
    decision = getattr(comparison, "decision", None)
    agents = blinding.revealed_agents(request.user, comparison)
    return {
        "comparison": comparison,
        "decision": decision,
        "decision_rows": _decision_rows(decision) if decision else [],
        "current_version": _current_version(comparison),
        "reveal": agents is not None,
        "agents": agents,
        **routing.weak_label_context(request.user, comparison),
    }


def _decision_rows(decision: Any) -> list[dict[str, Any]]:
    rows = []
    for criterion in decision.rubric_version.rated_criteria:
        value = decision.ratings.get(criterion["key"])
        rows.append(
            {
                "name": criterion["name"],
                "value": value,
                "label": "Not applicable" if value is None else SCALE_LABELS[value],
            }
        )
    return rows


@role_required(*EXPERT_ROLES)
def decision_page(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    comparison = _get_comparison(public_id)
    if not request.user.has_role("admin", "adjudicator") and not _took_part(
        request.user, comparison
    ):
        raise Http404("No such comparison.")
    judgments = (
        comparison.judgments.exclude(status=JudgmentStatus.DRAFT)
        .select_related("annotator", "rubric_version")
        .order_by("pk")
    )
    if comparison.state != ComparisonState.DECIDED and not request.user.has_role(
        "admin", "adjudicator"
    ):
        # Before the decision, other people's verdicts would anchor a reviewer, or an annotator
        # revising a judgment that was sent back.
        judgments = judgments.none()
    return render(
        request,
        "review/pipeline/decision.html",
        {**_outcome_context(request, comparison), "judgments": judgments},
    )


@role_required("adjudicator")
def timeline(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    comparison = _get_comparison(public_id)
    judgments = comparison.judgments.select_related("annotator", "rubric_version").order_by("pk")
    context = {
        **_outcome_context(request, comparison),
        "events": timeline_events(comparison),
        "judgments": judgments,
        "show_object": True,
    }
    return render(request, "review/pipeline/timeline.html", context)


@role_required("adjudicator")
@require_POST
def void(request: AuthenticatedHttpRequest, public_id: str) -> HttpResponse:
    comparison = _get_comparison(public_id)
    form = ReasonForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(error_messages(form))
        pipeline.do_void(request.user, comparison, reason=form.cleaned_data["reason"])
    except (ValidationError, IllegalTransition) as exc:
        messages.error(request, _message(exc))
    else:
        messages.success(
            request, "Comparison voided; its judgments are voided and nobody is paid for it."
        )
    return redirect("pipeline:timeline", public_id=public_id)


@role_required()
@require_POST
def rereview(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    form = ReasonForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(error_messages(form))
        sent_back = pipeline.do_require_rereview(
            request.user, project, reason=form.cleaned_data["reason"]
        )
    except (ValidationError, IllegalTransition) as exc:
        messages.error(request, _message(exc))
    else:
        messages.success(
            request, f"{len(sent_back)} comparison(s) sent back to review under the current rubric."
        )
    return redirect("earnings:dashboard")


# Annotators.


@role_required("annotator")
def revisions(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The annotator's judgments that reviewers sent back, with their comments."""
    judgments = (
        Judgment.objects.filter(annotator=request.user, status=JudgmentStatus.REVISION_REQUESTED)
        .select_related("comparison__task")
        .order_by("updated_at")
    )
    items = [{"judgment": j, "requests": list(pipeline.revision_requests(j))} for j in judgments]
    return render(request, "review/pipeline/revisions.html", {"items": items})
