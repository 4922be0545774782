"""Everything that happens to a comparison after a judgment is submitted: reviews, revision
requests, agreement or dispute, adjudication, the decision, voiding and re-review after a rubric
change. The state machine, who may do what, and the rules are drawn in docs/workflow.md.

Every transition is a ``do_*`` function that locks the comparison row (``select_for_update``;
SQLite's IMMEDIATE transactions serialise writers the same way), checks the actor's role and the
current state, changes what it must inside one transaction and writes exactly one audit event.
A transition that triggers the next one (the last review settles the comparison, agreement
decides it) calls it inside the same transaction, so each step still has its own event.

Lock order: the comparison row, then the audit chain head (``record`` takes it), then other
rows. ``do_submit_judgment`` and the annotator queue lock the comparison before recording too, so
no two of these transactions wait on each other in a cycle. Only the comparison row is locked
(``of=("self",)``: locking its project too would queue every transition of a project on one
row), and as ``FOR NO KEY UPDATE`` (``no_key=True``): PostgreSQL checks foreign keys at commit
with ``FOR KEY SHARE``, which a plain ``FOR UPDATE`` blocks, so a transaction that holds the
audit head and inserts a row pointing at this comparison (a claim, a judgment) would otherwise
wait on us while we wait on the head.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from marlin.accounts.models import Earning, User
from marlin.audit.actions import record
from marlin.errors import IllegalTransition
from marlin.permissions import require_role
from marlin.review import activity, pay
from marlin.review.agreement_rule import Verdict, decide, is_accepted, judgments_agree
from marlin.review.models import (
    Claim,
    Comparison,
    ComparisonState,
    Decision,
    DecisionSource,
    Judgment,
    JudgmentStatus,
    Review,
    ReviewVerdict,
    WorkKind,
)
from marlin.tasks.models import Project, RubricVersion
from marlin.tasks.rubric import OVERALL_KEY, rating_error, review_answer_error, scale_error

__all__ = [
    "IllegalTransition",
    "judgment_submitted",
    "do_review_heartbeat",
    "do_adjudication_heartbeat",
    "do_review",
    "do_request_revision",
    "do_decide_from_agreement",
    "do_adjudicate",
    "do_void",
    "do_require_rereview",
]

# Judgments that take part in review; drafts and voided ones do not.
LIVE_STATUSES = (
    JudgmentStatus.SUBMITTED,
    JudgmentStatus.REVISION_REQUESTED,
    JudgmentStatus.ACCEPTED,
    JudgmentStatus.REJECTED,
)


def _lock(comparison: Comparison) -> Comparison:
    return (
        Comparison.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project")
        .get(pk=comparison.pk)
    )


def _refuse_if_closed(comparison: Comparison) -> None:
    if comparison.state == ComparisonState.DECIDED:
        raise IllegalTransition("This comparison is already decided.")
    if comparison.state == ComparisonState.VOIDED:
        raise IllegalTransition(f"This comparison was voided: {comparison.void_reason}")


def _move(
    actor: User,
    comparison: Comparison,
    to: str,
    verb: str,
    *,
    reason: str = "",
    new: dict | None = None,
) -> None:
    old_state = comparison.state
    comparison.state = to
    comparison.save(update_fields=["state", "void_reason", "updated_at"])
    record(
        actor,
        verb,
        comparison,
        old={"state": old_state},
        new={"state": to, **(new or {})},
        reason=reason,
    )


def active_reviews(judgment: Judgment) -> Any:
    return judgment.reviews.filter(superseded_at__isnull=True)


def revision_requests(judgment: Judgment) -> Any:
    """What reviewers asked the annotator to change, oldest first (for the annotator's page)."""
    return judgment.reviews.filter(verdict=ReviewVerdict.REVISION).order_by("created_at")


# Submission (called by marlin.review.actions.do_submit_judgment inside its transaction).


def judgment_submitted(judgment: Judgment) -> Comparison:
    """Start review once the comparison has its `overlap` judgments. A resubmission after a
    revision request needs nothing more: the comparison is still in review, and the resubmitted
    judgment waits for its reviews."""
    comparison = _lock(judgment.comparison)
    _refuse_if_closed(comparison)
    if comparison.state == ComparisonState.AWAITING_JUDGMENTS:
        submitted = comparison.judgments.filter(status__in=LIVE_STATUSES).count()
        if submitted >= comparison.judgments_required:
            _move(
                judgment.annotator,
                comparison,
                ComparisonState.IN_REVIEW,
                "comparison.start_review",
                new={"judgments": submitted},
            )
    if comparison.state == ComparisonState.IN_REVIEW:
        # Settles at once only when the project asks for no reviews; otherwise a review is missing.
        _settle(judgment.annotator, comparison)
    return comparison


# Reviews.


def _reviewable(actor: User, judgment: Judgment) -> tuple[Comparison, Judgment]:
    require_role(actor, "reviewer")
    comparison = _lock(judgment.comparison)
    judgment = Judgment.objects.select_related("rubric_version", "annotator").get(pk=judgment.pk)
    _check_reviewable(actor, comparison, judgment)
    return comparison, judgment


def _check_reviewable(actor: User, comparison: Comparison, judgment: Judgment) -> None:
    """Refuse, with the reason, a review this actor may not write now (do_review and the review
    page's heartbeat ask)."""
    _refuse_if_closed(comparison)
    judgment.check_reviewer(actor)
    if comparison.state != ComparisonState.IN_REVIEW:
        raise IllegalTransition(
            f"This comparison is {comparison.get_state_display().lower()}, not in review."
        )
    if judgment.status != JudgmentStatus.SUBMITTED:
        raise IllegalTransition(
            "This judgment is not waiting for review "
            f"(it is {judgment.get_status_display().lower()})."
        )
    reviews = active_reviews(judgment)
    if reviews.filter(reviewer_id=actor.pk).exists():
        raise IllegalTransition("You already reviewed this judgment.")
    needed = comparison.reviews_required
    if reviews.count() >= needed:
        raise IllegalTransition(f"This judgment already has the {needed} review(s) it needs.")


@transaction.atomic
def do_review_heartbeat(actor: User, judgment_id: int, *, at_ms: int = 0) -> None:
    """The reviewer is active on the review page of this judgment: count the interval since
    their last heartbeat (marlin/review/activity.py). The first heartbeat of a session is
    checked as the review itself would be (nothing is locked) and opens it. A judgment that is
    not submitted is "not found", as on the API's judgment endpoint. ``at_ms`` is for tests."""
    at_ms = at_ms or activity.now_ms()
    if activity.beat(actor.pk, WorkKind.REVIEW, judgment_id, at_ms=at_ms):
        return
    require_role(actor, "reviewer")
    judgment = (
        Judgment.objects.select_related("comparison__project", "annotator")
        .filter(pk=judgment_id, status__in=LIVE_STATUSES)
        .first()
    )
    if judgment is None:
        raise Judgment.DoesNotExist("No such submitted judgment.")
    _check_reviewable(actor, judgment.comparison, judgment)
    activity.open_session(actor, WorkKind.REVIEW, judgment.comparison, judgment.pk, at_ms=at_ms)


def _close_review_session(actor: User, review: Review) -> activity.WorkTime:
    """The reviewer's server-measured time on this review, stored on it."""
    work = activity.close(
        actor,
        WorkKind.REVIEW,
        review.judgment_id,
        work_id=review.pk,
        at_ms=activity.ms(review.created_at),
    )
    review.active_seconds = work.active_seconds
    review.save(update_fields=["active_seconds"])
    return work


def clean_per_criterion(
    judgment: Judgment, per_criterion: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every criterion of the judgment's rubric version needs agree or disagree; a disagreement
    needs its reason."""
    cleaned: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for criterion in judgment.rubric_version.rated_criteria:
        entry = per_criterion.get(criterion["key"])
        if not isinstance(entry, dict) or not isinstance(entry.get("agree"), bool):
            missing.append(criterion["name"])
            continue
        reason = str(entry.get("reason") or "").strip()
        problem = review_answer_error(criterion, entry["agree"], reason)
        if problem:
            raise ValidationError(problem)
        cleaned[criterion["key"]] = {"agree": entry["agree"], "reason": reason}
        if "rating" in entry and not entry["agree"]:
            # The rating the reviewer would give instead (optional; None is "not applicable").
            problem = rating_error(criterion, entry["rating"])
            if problem:
                raise ValidationError(problem)
            cleaned[criterion["key"]]["rating"] = entry["rating"]
    if missing:
        raise ValidationError(
            f"Agree or disagree on every criterion; missing: {', '.join(missing)}."
        )
    return cleaned


@transaction.atomic
def do_review(
    actor: User,
    judgment: Judgment,
    *,
    verdict: str,
    reason: str,
    per_criterion: dict[str, Any],
) -> Review:
    """Agree or disagree with a judgment, per criterion and overall. The review that completes
    the comparison's reviews settles it (agreed and decided, or disputed). Its time is what the
    server measured from the review page's heartbeats."""
    if verdict == ReviewVerdict.REVISION:
        return do_request_revision(actor, judgment, comments=reason)
    if verdict not in (ReviewVerdict.AGREE, ReviewVerdict.DISAGREE):
        raise ValidationError(
            f"Unknown verdict {verdict!r}: choose agree, disagree or request a revision."
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("A reason is required: say why you agree or disagree.")
    comparison, judgment = _reviewable(actor, judgment)
    cleaned = clean_per_criterion(judgment, per_criterion)
    review = Review.objects.create(
        judgment=judgment,
        reviewer=actor,
        verdict=verdict,
        per_criterion=cleaned,
        reason=reason,
        rubric_version=comparison.project.rubric.current_version(),
    )
    work = _close_review_session(actor, review)
    disagreed = sorted(key for key, entry in cleaned.items() if not entry["agree"])
    record(
        actor,
        "review.submitted",
        review,
        new={
            "judgment": judgment.pk,
            "verdict": verdict,
            "disagrees_on": disagreed,
            "active_seconds": review.active_seconds,
            "work_session": work.as_dict(),
        },
        reason=reason,
        project_id=comparison.project_id,
    )
    _settle(actor, comparison)
    return review


@transaction.atomic
def do_request_revision(actor: User, judgment: Judgment, *, comments: str) -> Review:
    """Send a judgment back to its annotator with comments they see. Its earlier reviews are
    superseded: the edited judgment is reviewed afresh."""
    comments = (comments or "").strip()
    if not comments:
        raise ValidationError(
            "Say what the annotator should change: comments are required to request a revision."
        )
    comparison, judgment = _reviewable(actor, judgment)
    now = timezone.now()
    review = Review.objects.create(
        judgment=judgment,
        reviewer=actor,
        verdict=ReviewVerdict.REVISION,
        reason=comments,
        rubric_version=comparison.project.rubric.current_version(),
        superseded_at=now,
    )
    work = _close_review_session(actor, review)
    superseded = list(active_reviews(judgment).values_list("pk", flat=True))
    active_reviews(judgment).update(superseded_at=now)
    judgment.status = JudgmentStatus.REVISION_REQUESTED
    judgment.save(update_fields=["status", "updated_at"])
    record(
        actor,
        "judgment.revision_requested",
        judgment,
        old={"status": JudgmentStatus.SUBMITTED},
        new={
            "status": judgment.status,
            "review": review.pk,
            "superseded_reviews": superseded,
            "active_seconds": review.active_seconds,
            "work_session": work.as_dict(),
        },
        reason=comments,
        project_id=comparison.project_id,
    )
    return review


# Settling: agreed or disputed.


def _overall(judgment: Judgment) -> int:
    # Drafts may lack it; a submitted judgment never does (do_submit_judgment requires it).
    if judgment.overall is None:
        raise IllegalTransition(f"Judgment {judgment.pk} has no overall preference yet.")
    return judgment.overall


def _verdict(judgment: Judgment) -> Verdict:
    ratings = {key: value for key, value in judgment.ratings.items() if key != OVERALL_KEY}
    return Verdict(_overall(judgment), ratings)


def _review_objections(reviews: list[Review]) -> list[str]:
    objections = []
    for review in reviews:
        if review.verdict != ReviewVerdict.AGREE:
            objections.append(
                f"{review.reviewer.username} disagrees with judgment {review.judgment_id}"
            )
        for key, entry in sorted(review.per_criterion.items()):
            if not entry.get("agree"):
                objections.append(
                    f"{review.reviewer.username} disagrees on {key} "
                    f"in judgment {review.judgment_id}"
                )
    return objections


def _settle(actor: User, comparison: Comparison) -> None:
    """Once every judgment has its reviews: agreed (then decided) or disputed."""
    project = comparison.project
    judgments = list(comparison.judgments.filter(status__in=LIVE_STATUSES).order_by("pk"))
    if len(judgments) < comparison.judgments_required or any(
        j.status != JudgmentStatus.SUBMITTED for j in judgments
    ):
        return
    reviews = list(
        Review.objects.filter(judgment__in=judgments, superseded_at__isnull=True).select_related(
            "reviewer"
        )
    )
    for judgment in judgments:
        if sum(1 for r in reviews if r.judgment_id == judgment.pk) < comparison.reviews_required:
            return
    rule = judgments_agree([_verdict(j) for j in judgments], project.agreement_max_step_difference)
    objections = _review_objections(reviews)
    if rule.agrees and not objections:
        _move(
            actor,
            comparison,
            ComparisonState.AGREED,
            "comparison.agreed",
            reason="judgments and reviews agree",
        )
        _decide_from_agreement(actor, comparison, judgments)
    else:
        why = "; ".join([*rule.reasons, *objections])
        _move(actor, comparison, ComparisonState.DISPUTED, "comparison.disputed", reason=why)


# Decisions.


def _finalise(comparison: Comparison, decision: Decision) -> dict[str, Any]:
    """Mark judgments accepted or rejected and pay the work; return what happened, for the
    decision's audit event."""
    comparison.state = ComparisonState.DECIDED
    comparison.save(update_fields=["state", "updated_at"])
    accepted: list[int] = []
    rejected: list[int] = []
    paid: list[Earning] = []
    judgments = comparison.judgments.filter(status__in=LIVE_STATUSES).select_related(
        "annotator", "rubric_version"
    )
    for judgment in judgments:
        ok = judgment.status != JudgmentStatus.REVISION_REQUESTED and is_accepted(
            _overall(judgment), decision.overall
        )
        judgment.status = JudgmentStatus.ACCEPTED if ok else JudgmentStatus.REJECTED
        judgment.save(update_fields=["status", "updated_at"])
        (accepted if ok else rejected).append(judgment.pk)
        if ok:
            paid.append(pay.pay_judgment(judgment))
    for review in Review.objects.filter(judgment__comparison=comparison).select_related(
        "reviewer", "judgment__comparison__project", "rubric_version"
    ):
        paid.append(pay.pay_review(review))
    if decision.source == DecisionSource.ADJUDICATION:
        paid.append(pay.pay_adjudication(decision))
    # Each Earning with its amount and evidence: the audit log alone recomputes the project's
    # pay (`marlin pay verify`).
    return {"accepted": accepted, "rejected": rejected, "earnings": [pay.logged(e) for e in paid]}


def _decide_from_agreement(
    actor: User, comparison: Comparison, judgments: list[Judgment]
) -> Decision:
    result = decide([_verdict(j) for j in judgments])
    version = max((j.rubric_version for j in judgments), key=lambda v: v.number)
    decision = Decision.objects.create(
        comparison=comparison,
        source=DecisionSource.AGREEMENT,
        overall=result.overall,
        ratings=dict(result.ratings),
        rationale=(
            f"Agreement of {len(judgments)} judgments ({', '.join(str(j.pk) for j in judgments)}), "
            "each confirmed by its reviewers; values are the medians, rounded toward a tie."
        ),
        rubric_version=version,
        decided_by=None,
    )
    outcome = _finalise(comparison, decision)
    record(
        actor,
        "comparison.decided",
        comparison,
        old={"state": ComparisonState.AGREED},
        new={
            "state": ComparisonState.DECIDED,
            "source": decision.source,
            "decision": decision.pk,
            "overall": decision.overall,
            "ratings": decision.ratings,
            **outcome,
        },
        reason=decision.rationale,
    )
    return decision


@transaction.atomic
def do_decide_from_agreement(actor: User, comparison: Comparison) -> Decision:
    """Decide an agreed comparison (normally done by the review that completes agreement)."""
    require_role(actor, "reviewer", "adjudicator")
    comparison = _lock(comparison)
    _refuse_if_closed(comparison)
    if comparison.state != ComparisonState.AGREED:
        raise IllegalTransition(
            "Only an agreed comparison is decided by agreement; "
            f"this one is {comparison.get_state_display().lower()}."
        )
    judgments = list(comparison.judgments.filter(status=JudgmentStatus.SUBMITTED).order_by("pk"))
    return _decide_from_agreement(actor, comparison, judgments)


def clean_decision_ratings(
    version: RubricVersion, ratings: dict[str, Any]
) -> dict[str, int | None]:
    cleaned: dict[str, int | None] = {}
    missing = []
    for criterion in version.rated_criteria:
        key = criterion["key"]
        if key not in ratings:
            missing.append(criterion["name"])
            continue
        value = ratings[key]
        problem = rating_error(criterion, value)
        if problem:
            raise ValidationError(problem)
        cleaned[key] = value
    if missing:
        raise ValidationError(
            f"Decide every criterion (or mark it not applicable); missing: {', '.join(missing)}."
        )
    return cleaned


def _check_adjudicable(actor: User, comparison: Comparison) -> None:
    """Refuse, with the reason, an adjudication this actor may not make now (do_adjudicate and
    the adjudication page's heartbeat ask)."""
    _refuse_if_closed(comparison)
    if comparison.state != ComparisonState.DISPUTED:
        raise IllegalTransition(
            "Only disputed comparisons are adjudicated; "
            f"this one is {comparison.get_state_display().lower()}."
        )
    comparison.check_adjudicator(actor)


@transaction.atomic
def do_adjudication_heartbeat(actor: User, comparison: Comparison | str, *, at_ms: int = 0) -> None:
    """The adjudicator is active on the adjudication page: count the interval since their last
    heartbeat. The first heartbeat of a session is checked as the decision would be (nothing is
    locked) and opens it. ``comparison`` may be its public id (no lookup for a counted
    heartbeat). ``at_ms`` is for tests."""
    at_ms = at_ms or activity.now_ms()
    subject = comparison if isinstance(comparison, str) else comparison.pk
    if activity.beat(actor.pk, WorkKind.ADJUDICATION, subject, at_ms=at_ms):
        return
    require_role(actor, "adjudicator")
    # Its state now, not as passed.
    if isinstance(comparison, str):
        comparison = Comparison.objects.get(public_id=comparison)
    else:
        comparison = Comparison.objects.get(pk=comparison.pk)
    _check_adjudicable(actor, comparison)
    activity.open_session(actor, WorkKind.ADJUDICATION, comparison, comparison.pk, at_ms=at_ms)


@transaction.atomic
def do_adjudicate(
    actor: User,
    comparison: Comparison,
    *,
    overall: int,
    ratings: dict[str, Any],
    rationale: str,
) -> Decision:
    """The adjudicator's final decision on a disputed comparison; its time is what the server
    measured from the adjudication page's heartbeats."""
    require_role(actor, "adjudicator")
    comparison = _lock(comparison)
    _check_adjudicable(actor, comparison)
    problem = scale_error("The overall decision", overall)
    if problem:
        raise ValidationError(problem)
    version = comparison.project.rubric.current_version()
    cleaned = clean_decision_ratings(version, ratings)
    rationale = (rationale or "").strip()
    minimum = comparison.project.min_rationale_chars
    if len(rationale) < minimum:
        raise ValidationError(
            f"The rationale is too short: {len(rationale)} of at least {minimum} characters."
        )
    decision = Decision.objects.create(
        comparison=comparison,
        source=DecisionSource.ADJUDICATION,
        overall=overall,
        ratings=cleaned,
        rationale=rationale,
        rubric_version=version,
        decided_by=actor,
    )
    work = activity.close(
        actor,
        WorkKind.ADJUDICATION,
        comparison.pk,
        work_id=decision.pk,
        at_ms=activity.ms(decision.decided_at),
    )
    decision.active_seconds = work.active_seconds
    decision.save(update_fields=["active_seconds"])
    outcome = _finalise(comparison, decision)
    record(
        actor,
        "comparison.adjudicated",
        comparison,
        old={"state": ComparisonState.DISPUTED},
        new={
            "state": ComparisonState.DECIDED,
            "source": decision.source,
            "decision": decision.pk,
            "overall": overall,
            "ratings": cleaned,
            "rubric_version": version.number,
            "active_seconds": decision.active_seconds,
            "work_session": work.as_dict(),
            **outcome,
        },
        reason=rationale,
    )
    return decision


# Voiding and re-review.


@transaction.atomic
def do_void(actor: User, comparison: Comparison, *, reason: str) -> Comparison:
    """Void a comparison (a bad task, a broken candidate): its judgments are voided, nobody is
    paid for it. Admins and adjudicators; any state but decided."""
    require_role(actor, "adjudicator")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            "Say why the comparison is voided (e.g. the task is wrong, a candidate is broken)."
        )
    comparison = _lock(comparison)
    if comparison.state == ComparisonState.DECIDED:
        raise IllegalTransition(
            "This comparison is already decided; a decided comparison cannot be voided."
        )
    if comparison.state == ComparisonState.VOIDED:
        raise IllegalTransition("This comparison is already voided.")
    judgments = comparison.judgments.exclude(status=JudgmentStatus.VOIDED)
    voided = sorted(judgments.values_list("pk", flat=True))
    judgments.update(status=JudgmentStatus.VOIDED, updated_at=timezone.now())
    Claim.objects.filter(comparison=comparison, released_at__isnull=True).update(
        released_at=timezone.now()
    )
    comparison.void_reason = reason
    _move(
        actor,
        comparison,
        ComparisonState.VOIDED,
        "comparison.voided",
        reason=reason,
        new={"voided_judgments": voided},
    )
    return comparison


@transaction.atomic
def do_require_rereview(actor: User, project: Project, *, reason: str = "") -> list[Comparison]:
    """Send judgments made under an older rubric version, on comparisons not yet decided, back to
    review: their reviews are superseded and disputed comparisons return to review. One audit
    event per comparison sent back."""
    require_role(actor, "admin")
    project = Project.objects.select_related("rubric").get(pk=project.pk)
    if not project.rereview_on_rubric_change:
        raise IllegalTransition(
            "This project does not ask for re-review after rubric changes; turn on "
            "'re-review on rubric change' in its policy first."
        )
    current = project.rubric.current_version()
    reason = (reason or "").strip() or f"rubric changed to version {current.number}"
    stale_on = (
        Judgment.objects.filter(
            comparison__project=project,
            comparison__state__in=[ComparisonState.IN_REVIEW, ComparisonState.DISPUTED],
            status=JudgmentStatus.SUBMITTED,
        )
        .exclude(rubric_version=current)
        .values_list("comparison_id", flat=True)
    )
    # Every comparison, in id order, before the first record takes the audit head (lock order).
    candidates = list(
        Comparison.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project")
        .filter(pk__in=list(stale_on))
        .order_by("pk")
    )
    sent_back = []
    for comparison in candidates:
        stale = list(
            comparison.judgments.filter(status=JudgmentStatus.SUBMITTED)
            .exclude(rubric_version=current)
            .order_by("pk")
        )
        if (
            comparison.state not in (ComparisonState.IN_REVIEW, ComparisonState.DISPUTED)
            or not stale
        ):
            continue
        superseded = Review.objects.filter(judgment__in=stale, superseded_at__isnull=True)
        superseded_ids = sorted(superseded.values_list("pk", flat=True))
        superseded.update(superseded_at=timezone.now())
        _move(
            actor,
            comparison,
            ComparisonState.IN_REVIEW,
            "comparison.rereview_required",
            reason=reason,
            new={
                "judgments": [j.pk for j in stale],
                "superseded_reviews": superseded_ids,
                "rubric_version": current.number,
            },
        )
        # A project that asks for no reviews has nothing to wait for: settle again at once
        # (else the comparison would stay in review with no action left to move it).
        _settle(actor, comparison)
        sent_back.append(comparison)
    return sent_back
