"""Comparisons (blind), judgments (your own drafts), reviews and decisions.

Blinding: a comparison is addressed only by its public id and shows sides A and B; no response an
annotator or reviewer can reach carries an agent name or id, a run, turn or candidate id. Admins
and authors additionally get `agents` (names by side). Someone else's judgment draft is 404,
exactly like a comparison that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, F, IntegerField, JSONField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from marlin.agents.models import Candidate
from marlin.api.auth import AUTH, HeartbeatTicketAuth, require, user_of
from marlin.api.types import MAX_ID, Counter, Id, Pagination, filter_param
from marlin.errors import IllegalTransition
from marlin.review import actions, pipeline, queue, routing
from marlin.review.activity import Ticket, do_ticket_heartbeat
from marlin.review.compare import checks_visible
from marlin.review.forms import (
    JudgmentForm,
    ReviewForm,
    draft_data,
    error_messages,
    judgment_form,
    review_data,
)
from marlin.review.models import (
    Claim,
    Comparison,
    ComparisonState,
    Decision,
    Judgment,
    JudgmentStatus,
    Review,
)
from marlin.tasks.models import Project, RubricVersion

router = Router()
NAME_ROLES = ("admin", "author")
OVERSIGHT_ROLES = (
    "author",
    "adjudicator",
)  # may open any comparison (still blind for adjudicators)
REVIEW_STATES = (ComparisonState.IN_REVIEW, ComparisonState.DISPUTED)
# The candidate columns a comparison's payload reads (patch_for_experts, is_flagged, counts).
PAYLOAD_FIELDS = (
    "patch",
    "scrubbed_patch",
    "fingerprints",
    "files_changed",
    "lines_added",
    "lines_removed",
)
VISIBLE_JUDGMENTS = (
    JudgmentStatus.SUBMITTED,
    JudgmentStatus.ACCEPTED,
    JudgmentStatus.REJECTED,
    JudgmentStatus.REVISION_REQUESTED,
)


class CheckOut(Schema):
    name: str
    kind: str
    status: str
    passed: int
    failed: int
    errors: int
    skipped: int


class SideOut(Schema):
    side: str
    ready: bool
    patch: str
    files_changed: int
    lines_added: int
    lines_removed: int
    flagged: bool = Field(
        ..., description="Identity fingerprints were found; the patch shown is scrubbed."
    )
    checks: list[CheckOut] | None = Field(
        None, description="Null while the project hides checks until you drafted."
    )


class TaskBrief(Schema):
    title: str
    prompt: str
    kind: str
    repository: str
    base_commit: str


class JudgmentOut(Schema):
    comparison: str = Field(..., description="The comparison's public id.")
    status: str
    ratings: dict[str, int | None]
    overall: int | None
    rationale: str
    confidence: int | None
    comments: list[dict[str, Any]]
    turn_notes: dict[str, str]
    turn_verdicts: dict[str, int] = Field(
        ..., description="turn number -> your overall preference after that turn (-3..3)"
    )
    active_seconds: int
    wall_seconds: int
    draft_revision: int
    rubric_version: int
    submitted_at: datetime | None


class WeakLabelOut(Schema):
    a: float = Field(..., description="P(the decision prefers side A)")
    b: float = Field(..., description="P(the decision prefers side B)")
    tie: float
    votes: list[str] = Field(..., description="The checks that voted, and for which side")
    decided: int = Field(..., description="Decided comparisons the label model learnt from")


class ComparisonOut(Schema):
    public_id: str
    state: str
    turn_count: int
    task: TaskBrief
    sides: list[SideOut]
    rubric: list[dict[str, Any]]
    my_judgment: JudgmentOut | None
    agents: dict[str, str] | None = Field(
        None, description="Agent names by side: admins and authors only."
    )
    weak_label: WeakLabelOut | None = Field(
        None,
        description="What the checks suggest (label model probabilities for the sides as shown): "
        "reviewers, adjudicators, authors and admins only, never an annotator working on it.",
    )
    routing: str | None = Field(
        None,
        description="Triage: single (one annotator, no review), full, or empty (not routed); "
        "same audience as weak_label.",
    )
    routing_reason: str | None = Field(None, description="Why it was routed so.")


class ComparisonBrief(Schema):
    public_id: str
    state: str
    turn_count: int
    task_title: str
    my_judgment_status: str | None

    @staticmethod
    def resolve_task_title(obj: Comparison) -> str:
        return obj.task.title

    @staticmethod
    def resolve_my_judgment_status(obj: Comparison, context: dict[str, Any]) -> str | None:
        user = context["request"].auth
        return (
            Judgment.objects.filter(comparison=obj, annotator=user)
            .values_list("status", flat=True)
            .first()
        )


IGNORED_TIME = (
    "Ignored: time is measured by the server from heartbeats (POST /api/heartbeats). "
    "Accepted so that older clients keep working."
)


class HeartbeatIn(Schema):
    work: Literal["judgment", "review", "adjudication"] = Field(
        ..., description="What you are working on."
    )
    comparison: str | None = Field(
        None,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The comparison's public id (judgments and adjudications).",
    )
    judgment_id: Id | None = Field(None, description="The judgment you are reviewing (reviews).")


class DraftIn(Schema):
    draft_revision: Counter = Field(
        ..., description="The revision your edit is based on (409 if stale)."
    )
    ratings: dict[str, int | None] = Field(
        default_factory=dict, description="criterion key -> -3..3 (A..B) or null (n/a)"
    )
    overall: int | None = None
    rationale: str = ""
    confidence: int | None = None
    comments: list[dict[str, Any]] = Field(default_factory=list)
    turn_notes: dict[str, str] = Field(default_factory=dict)
    turn_verdicts: dict[str, int] = Field(
        default_factory=dict,
        description="turn number -> your preference after that turn, for turns before the "
        "last (-3..3); the last turn's is `overall`",
    )
    active_seconds: int | None = Field(None, deprecated=True, description=IGNORED_TIME)
    wall_seconds: int | None = Field(None, deprecated=True, description=IGNORED_TIME)


class ReviewIn(Schema):
    judgment_id: Id
    verdict: str = Field(..., description="agree, disagree or revision")
    reason: str = Field(..., max_length=20_000)
    per_criterion: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="key -> {agree, reason}"
    )
    active_seconds: int | None = Field(None, deprecated=True, description=IGNORED_TIME)


class ReviewOut(Schema):
    id: int
    judgment_id: int
    comparison: str
    verdict: str
    reason: str
    per_criterion: dict[str, Any]
    created_at: datetime

    @staticmethod
    def resolve_comparison(obj: Review) -> str:
        return obj.judgment.comparison.public_id


class SubmittedJudgmentOut(Schema):
    id: int
    comparison: str
    status: str
    ratings: dict[str, int | None]
    overall: int | None
    rationale: str
    confidence: int | None
    comments: list[dict[str, Any]]
    rubric_version: int
    submitted_at: datetime | None


class DecisionOut(Schema):
    comparison: str
    source: str
    overall: int
    ratings: dict[str, int | None]
    rationale: str
    rubric_version: int
    decided_at: datetime
    agents: dict[str, str] | None = None

    @staticmethod
    def resolve_comparison(obj: Decision) -> str:
        return obj.comparison.public_id

    @staticmethod
    def resolve_rubric_version(obj: Decision) -> int:
        return obj.rubric_version.number

    @staticmethod
    def resolve_agents(obj: Decision, context: dict[str, Any]) -> dict[str, str] | None:
        return _agents(context["request"].auth, obj.comparison)


# --- helpers -------------------------------------------------------------------------------


def _judgment_out(j: Judgment, public_id: str | None = None) -> dict[str, Any]:
    return {
        "comparison": public_id or j.comparison.public_id,
        "status": j.status,
        "ratings": j.ratings,
        "overall": j.overall,
        "rationale": j.rationale,
        "confidence": j.confidence,
        "comments": j.comments,
        "turn_notes": j.turn_notes,
        "turn_verdicts": j.turn_verdicts,
        "active_seconds": j.active_seconds,
        "wall_seconds": j.wall_seconds,
        "draft_revision": j.draft_revision,
        "rubric_version": j.rubric_version.number,
        "submitted_at": j.submitted_at,
    }


def _may_open(user: Any, comparison: Comparison) -> bool:
    if user.has_role("admin", *OVERSIGHT_ROLES):
        return True
    if user.has_role("reviewer") and comparison.state in REVIEW_STATES:
        return True
    if not user.has_role("annotator"):
        return False
    # An annotator opens what they judged or hold (both annotated by _comparisons()).
    return comparison.my_judgment_id is not None or bool(comparison.held)  # type: ignore[attr-defined]


def _comparisons(user: Any) -> QuerySet[Comparison]:
    """Comparisons with what their payload needs, in one query: whether `user` holds an open
    claim on each (`held`), the id of their own judgment on it if any (`my_judgment_id`), and
    the criteria of the rubric's newest version (`current_criteria`). Agents are joined only for
    those who see their names."""
    related = ["project", "task__repository"]
    if user.has_role(*NAME_ROLES):
        related += ["run_a__agent", "run_b__agent"]
    return Comparison.objects.select_related(*related).annotate(**_payload_columns(user.pk))


def _payload_columns(user_id: int) -> dict[str, RawSQL]:
    """The three sub-selects of `_comparisons()`, written out: built through the ORM (Exists,
    Subquery) they cost 1.3 ms of CPU per request, written out 0.15 ms (SQLite, in-process; the
    agents' and rubric's joins another 1.7 ms). Only table names and fixed text go in."""
    quote = connection.ops.quote_name
    comparison, claim, judgment, version, project = (
        quote(model._meta.db_table)
        for model in (Comparison, Claim, Judgment, RubricVersion, Project)
    )
    return {
        "held": RawSQL(  # noqa: S611
            f"EXISTS (SELECT 1 FROM {claim} h WHERE h.comparison_id = {comparison}.id"  # noqa: S608
            " AND h.annotator_id = %s AND h.released_at IS NULL)",
            (user_id,),
            output_field=BooleanField(),
        ),
        # One judgment per annotator and comparison (a unique constraint).
        "my_judgment_id": RawSQL(  # noqa: S611
            f"SELECT j.id FROM {judgment} j WHERE j.comparison_id = {comparison}.id"  # noqa: S608
            " AND j.annotator_id = %s",
            (user_id,),
            output_field=IntegerField(),
        ),
        "current_criteria": RawSQL(  # noqa: S611
            f"SELECT v.criteria FROM {version} v INNER JOIN {project} p"  # noqa: S608
            f" ON p.rubric_id = v.rubric_id WHERE p.id = {comparison}.project_id"
            " ORDER BY v.number DESC LIMIT 1",
            (),
            output_field=JSONField(),
        ),
    }


def _with_mine(user: Any, comparison: Comparison) -> Comparison:
    """Their own judgment rides along as `comparison.mine`, read only when there is one (a
    comparison just claimed has none: the claim requires it)."""
    comparison.mine = (  # type: ignore[attr-defined]
        Judgment.objects.select_related("rubric_version").get(pk=comparison.my_judgment_id)  # type: ignore[attr-defined]
        if comparison.my_judgment_id is not None  # type: ignore[attr-defined]
        else None
    )
    return comparison


def comparison_for(user: Any, public_id: str) -> Comparison:
    """The comparison if this user may open it; 404 otherwise (existence is not revealed).
    Their own judgment on it, if any, rides along as `comparison.mine`."""
    comparison = _comparisons(user).filter(public_id=public_id).first()
    if comparison is None or not _may_open(user, comparison):
        raise HttpError(404, "No such comparison, or it is not assigned to you.")
    return _with_mine(user, comparison)


def _candidates(comparison: Comparison, *, with_checks: bool) -> dict[int, Candidate]:
    """Both sides' candidates at the comparison's turn, by run id, in one query (and their
    check results in one more when they are shown). Only the columns the payload shows: the
    file index and the turn's logs can be large and are not part of it."""
    candidates = (
        Candidate.objects.filter(
            turn__run_id__in=[comparison.run_a_id, comparison.run_b_id],
            turn__number=comparison.turn_count,
        )
        .annotate(run_id=F("turn__run_id"))
        .only(*PAYLOAD_FIELDS)
    )
    if with_checks:
        candidates = candidates.prefetch_related("check_results")
    return {candidate.run_id: candidate for candidate in candidates}


def comparison_out(user: Any, comparison: Comparison) -> dict[str, Any]:
    """The payload of a comparison from `_comparisons()` that went through `_with_mine()`."""
    show_checks = checks_visible(comparison, user)
    by_run = _candidates(comparison, with_checks=show_checks)
    sides = []
    for letter, run_id in (("A", comparison.run_a_id), ("B", comparison.run_b_id)):
        candidate = by_run.get(run_id)
        sides.append(
            {
                "side": letter,
                "ready": candidate is not None,
                "patch": candidate.patch_for_experts if candidate else "",
                "files_changed": candidate.files_changed if candidate else 0,
                "lines_added": candidate.lines_added if candidate else 0,
                "lines_removed": candidate.lines_removed if candidate else 0,
                "flagged": bool(candidate and candidate.is_flagged),
                "checks": list(candidate.check_results.all())
                if candidate and show_checks
                else None,
            }
        )
    mine = comparison.mine  # type: ignore[attr-defined]
    task = comparison.task
    return {
        "public_id": comparison.public_id,
        "state": comparison.state,
        "turn_count": comparison.turn_count,
        "task": {
            "title": task.title,
            "prompt": task.prompt,
            "kind": task.kind,
            "repository": task.repository.name,
            "base_commit": task.base_commit,
        },
        "sides": sides,
        "rubric": mine.rubric_version.criteria if mine else comparison.current_criteria,  # type: ignore[attr-defined]
        "my_judgment": _judgment_out(mine, comparison.public_id) if mine else None,
        "agents": _agents(user, comparison),
        **_weak_label(user, comparison),
    }


def _weak_label(user: Any, comparison: Comparison) -> dict[str, Any]:
    if not routing.may_see_weak_label(user, comparison):
        return {}
    return {
        "weak_label": comparison.weak_label,
        "routing": comparison.routing,
        "routing_reason": comparison.routing_reason,
    }


def _agents(user: Any, comparison: Comparison) -> dict[str, str] | None:
    if not user.has_role(*NAME_ROLES):
        return None
    return {"A": str(comparison.run_a.agent), "B": str(comparison.run_b.agent)}


def _own_judgment(user: Any, public_id: str) -> Judgment:
    judgment = (
        Judgment.objects.select_related("comparison__project", "rubric_version")
        .filter(comparison__public_id=public_id, annotator=user)
        .first()
    )
    if judgment is None:
        raise HttpError(404, "You have no judgment on this comparison.")
    return judgment


# --- comparisons ---------------------------------------------------------------------------


@router.get(
    "/comparisons",
    response=list[ComparisonBrief],
    tags=["comparisons"],
    summary=(
        "Comparisons you judged or hold (annotators), are reviewing (reviewers), or all (admins)"
    ),
)
@paginate(Pagination)
def list_comparisons(
    request: HttpRequest,
    project_id: int | None = Query(None, ge=1, le=MAX_ID),
    state: str = filter_param(),
) -> QuerySet[Comparison]:
    user = user_of(request)
    qs = Comparison.objects.select_related("task").order_by("-created_at", "-pk")
    if not user.has_role("admin", *OVERSIGHT_ROLES):
        mine = Q(judgments__annotator=user) | Q(
            claims__annotator=user, claims__released_at__isnull=True
        )
        if user.has_role("reviewer"):
            mine |= Q(state__in=REVIEW_STATES)
        qs = qs.filter(mine).distinct()
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    if state:
        qs = qs.filter(state=state)
    return qs


@router.post(
    "/comparisons/next",
    response=ComparisonOut,
    tags=["comparisons"],
    summary="Claim the next comparison from your queue (annotators)",
)
def next_comparison(
    request: HttpRequest, project_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> dict[str, Any]:
    user = require(request, "annotator")
    project = Project.objects.get(pk=project_id) if project_id is not None else None
    comparison = queue.next_comparison(user, project)
    if comparison is None:
        raise HttpError(404, "Your queue is empty: no comparison is waiting for you right now.")
    # The queue just handed it to them: no need to ask whether they may open it.
    return comparison_out(user, _with_mine(user, _comparisons(user).get(pk=comparison.pk)))


@router.get(
    "/comparisons/{public_id}",
    response=ComparisonOut,
    tags=["comparisons"],
    summary="Get a comparison (blind)",
)
def get_comparison(request: HttpRequest, public_id: str) -> dict[str, Any]:
    user = user_of(request)
    return comparison_out(user, comparison_for(user, public_id))


# --- judgments -----------------------------------------------------------------------------


@router.get(
    "/comparisons/{public_id}/judgment",
    response=JudgmentOut,
    tags=["judgments"],
    summary="Your own judgment (draft or submitted) on a comparison",
)
def get_my_judgment(request: HttpRequest, public_id: str) -> dict[str, Any]:
    return _judgment_out(_own_judgment(user_of(request), public_id))


@router.put(
    "/comparisons/{public_id}/judgment",
    response=JudgmentOut,
    tags=["judgments"],
    summary="Save your draft (starts the judgment if needed); 409 when draft_revision is stale",
)
def save_my_judgment(request: HttpRequest, public_id: str, body: DraftIn) -> dict[str, Any]:
    user = require(request, "annotator")
    data = draft_data(body.model_dump(), revision=body.draft_revision)
    judgment = (
        Judgment.objects.select_related("comparison", "rubric_version")
        .filter(comparison__public_id=public_id, annotator=user)
        .first()
    )
    if judgment is not None:
        # A judgment they already started: its own rubric version, and one UPDATE to save.
        form = JudgmentForm(
            data, version=judgment.rubric_version, turn_count=judgment.comparison.turn_count
        )
    else:
        comparison = comparison_for(user, public_id)
        # The same form, and so the same checks and messages, as the comparison page's autosave.
        form = judgment_form(comparison, user, data)
    if not form.is_valid():
        raise ValidationError(error_messages(form))
    if judgment is None:
        judgment = actions.do_start_judgment(user, comparison)
    try:
        saved = actions.do_save_draft(
            user, judgment, form.draft(), revision=form.cleaned_data["draft_revision"]
        )
    except actions.StaleDraft as exc:
        raise HttpError(409, str(exc)) from None
    except actions.JudgmentClosed as exc:
        raise HttpError(409, str(exc)) from None
    return _judgment_out(saved, public_id)


@router.post(
    "/comparisons/{public_id}/judgment/submit",
    response=JudgmentOut,
    tags=["judgments"],
    summary="Submit your saved draft (final); 422 lists what is missing",
)
def submit_my_judgment(request: HttpRequest, public_id: str) -> dict[str, Any]:
    user = require(request, "annotator")
    judgment = _own_judgment(user, public_id)
    try:
        submitted = actions.do_submit_judgment(user, judgment)
    except actions.JudgmentClosed as exc:
        raise HttpError(409, str(exc)) from None
    return _judgment_out(submitted, public_id)


@router.get(
    "/judgments/{judgment_id}",
    response=SubmittedJudgmentOut,
    tags=["judgments"],
    summary=(
        "Your own judgment, or a submitted one for reviewers, adjudicators and admins "
        "(others' drafts: 404)"
    ),
)
def get_judgment(
    request: HttpRequest, judgment_id: int = Path(..., ge=1, le=MAX_ID)
) -> dict[str, Any]:
    user = require(request, "reviewer", "adjudicator", "annotator")
    judgments = Judgment.objects.select_related("comparison", "rubric_version")
    j = judgments.filter(pk=judgment_id, annotator=user).first()
    if j is None and user.has_role("admin", "reviewer", "adjudicator"):
        j = judgments.filter(pk=judgment_id, status__in=VISIBLE_JUDGMENTS).first()
    if j is None:
        raise HttpError(404, "No such submitted judgment.")
    return {
        "id": j.pk,
        "comparison": j.comparison.public_id,
        "status": j.status,
        "ratings": j.ratings,
        "overall": j.overall,
        "rationale": j.rationale,
        "confidence": j.confidence,
        "comments": j.comments,
        "rubric_version": j.rubric_version.number,
        "submitted_at": j.submitted_at,
    }


# --- time ----------------------------------------------------------------------------------


@router.post(
    "/heartbeats",
    response={204: None},
    tags=["time"],
    url_name="heartbeat",
    auth=[HeartbeatTicketAuth(), *AUTH],
    summary="Report that you are working (the server stamps the time; send every 15-60 s)",
    description=(
        "Active time, and hourly pay, is measured by the server: the intervals between your "
        "heartbeats on a piece of work that are at most MARLIN_ACTIVITY_GAP_SECONDS (default 60) "
        "apart, never more than the time from your first heartbeat to your submission. Send one "
        "while you work: `judgment` with `comparison` (your draft on it), `review` with "
        "`judgment_id`, `adjudication` with `comparison`. 409 once the work is closed. Pages "
        "send their X-Heartbeat-Ticket instead of the login once the work is open: it counts "
        "heartbeats on open work only (404 when there is none: send the heartbeat with the "
        "login, which opens it)."
    ),
)
def heartbeat(request: HttpRequest, body: HeartbeatIn) -> Status[None]:
    ticket = getattr(request, "auth", None)
    if isinstance(ticket, Ticket):
        if do_ticket_heartbeat(ticket):
            return Status(204, None)
        raise HttpError(
            404, "No open work for this ticket: send the heartbeat with your login to open it."
        )
    user = user_of(request)
    try:
        if body.work == "review":
            if body.judgment_id is None:
                raise HttpError(422, "A review heartbeat names the judgment_id you review.")
            pipeline.do_review_heartbeat(user, body.judgment_id)
            return Status(204, None)
        if not body.comparison:
            raise HttpError(422, f"A {body.work} heartbeat names the comparison's public id.")
        # By public id: a heartbeat on open work is then one UPDATE, no lookup.
        if body.work == "judgment":
            actions.do_judgment_heartbeat(user, body.comparison)
        else:
            pipeline.do_adjudication_heartbeat(user, body.comparison)
    except Comparison.DoesNotExist:
        raise HttpError(404, "No such comparison, or it is not assigned to you.") from None
    except (actions.JudgmentClosed, IllegalTransition) as exc:
        raise HttpError(409, str(exc)) from None
    return Status(204, None)


# --- reviews and decisions -----------------------------------------------------------------


@router.get("/reviews", response=list[ReviewOut], tags=["reviews"], summary="Your reviews")
@paginate(Pagination)
def list_reviews(request: HttpRequest) -> QuerySet[Review]:
    user = require(request, "reviewer")
    return (
        Review.objects.filter(reviewer=user)
        .select_related("judgment__comparison")
        .order_by("-created_at", "-pk")
    )


@router.post(
    "/reviews",
    response={201: ReviewOut},
    tags=["reviews"],
    summary="Review a submitted judgment: agree, disagree (per criterion) or request a revision",
)
def create_review(request: HttpRequest, body: ReviewIn) -> Status[Review]:
    user = require(request, "reviewer")
    judgment = (
        Judgment.objects.select_related("rubric_version")
        .filter(pk=body.judgment_id, status__in=VISIBLE_JUDGMENTS)
        .first()
    )
    if judgment is None:
        raise HttpError(404, "No such submitted judgment.")
    # The review page's form: the same checks and messages for the same answers.
    form = ReviewForm(
        review_data(body.verdict, body.reason, body.per_criterion),
        version=judgment.rubric_version,
    )
    if not form.is_valid():
        raise ValidationError(error_messages(form))
    try:
        review = pipeline.do_review(
            user,
            judgment,
            verdict=form.cleaned_data["verdict"],
            reason=form.cleaned_data["reason"],
            per_criterion=form.per_criterion(),
        )
    except IllegalTransition as exc:
        raise HttpError(409, str(exc)) from None
    return Status(201, Review.objects.select_related("judgment__comparison").get(pk=review.pk))


@router.get(
    "/decisions",
    response=list[DecisionOut],
    tags=["decisions"],
    summary="Final decisions (admins, authors, adjudicators; agent names for admins and authors)",
)
@paginate(Pagination)
def list_decisions(
    request: HttpRequest, project_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> QuerySet[Decision]:
    require(request, "author", "adjudicator")
    qs = Decision.objects.select_related(
        "comparison__run_a__agent", "comparison__run_b__agent", "rubric_version"
    ).order_by("-decided_at", "-pk")
    if project_id is not None:
        qs = qs.filter(comparison__project_id=project_id)
    return qs
