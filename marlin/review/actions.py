"""Judgment state changes: starting a draft, autosaving it, submitting it, giving work back, and
the heartbeats that measure the annotator's time on it.

Autosaves and heartbeats are not audited one by one (an expert's draft changes every few seconds
and is not a decision); starting a judgment, submitting it and releasing a claim each write one
audit event. Time is never taken from the client: heartbeats are stamped by the server
(marlin/review/activity.py) and submitting adds up the session they made.
Drafts use optimistic concurrency: every save names the ``draft_revision`` it was based on, and a
save based on an older revision (another tab saved in between) raises :class:`StaleDraft`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from marlin.accounts.models import User
from marlin.agents.actions import do_start_follow_up
from marlin.audit.actions import record
from marlin.permissions import require_role
from marlin.review import activity, pipeline, queue
from marlin.review.forms import Draft, submission_errors
from marlin.review.models import (
    Claim,
    Comparison,
    ComparisonState,
    Judgment,
    JudgmentStatus,
    WorkKind,
)

_NOT_ASSIGNED = (
    "This comparison is not assigned to you. Use “Next comparison” to take work from the queue."
)
_CLAIM_EXPIRED = (
    "Your claim on this comparison expired after a period without activity and other "
    "annotators have taken its places. Your draft is kept; take the next comparison."
)


class NotAssigned(PermissionDenied):
    """The comparison is not claimed by, or assigned to, this annotator."""


class StaleDraft(Exception):
    """Another tab saved a newer draft; ``current`` is what the server holds now."""

    def __init__(self, current: Judgment) -> None:
        super().__init__(
            f"This draft was changed in another tab or window (saved revision "
            f"{current.draft_revision}). Load the newer draft, or keep editing here and save "
            "again: your unsaved text is kept in this browser."
        )
        self.current = current


class JudgmentClosed(Exception):
    """The judgment was submitted; it is final for the annotator."""


def check_assigned(actor: User, comparison: Comparison) -> Judgment | None:
    """Check, without writing, that the actor may work on the comparison (or read their own
    judgment on it); return their judgment if any. Raise NotAssigned with the reason if not.

    A draft whose claim expired passes while a place is still free: the next save claims it.
    """
    require_role(actor, "annotator")
    judgment = Judgment.objects.filter(comparison=comparison, annotator=actor).first()
    if judgment is not None and judgment.status != JudgmentStatus.DRAFT:
        return judgment
    if comparison.state != ComparisonState.AWAITING_JUDGMENTS:
        raise NotAssigned(
            "This comparison is no longer taking judgments; take the next one from the queue."
        )
    if queue.open_claim(actor, comparison) is not None:
        return judgment
    if judgment is None:
        raise NotAssigned(_NOT_ASSIGNED)
    if not queue.may_take(actor, comparison) or (
        queue.used_slots(comparison) >= comparison.judgments_required
    ):
        raise NotAssigned(_CLAIM_EXPIRED)
    return judgment


def ensure_assigned(actor: User, comparison: Comparison) -> Judgment | None:
    """check_assigned, then record the activity on the claim (claiming again a draft whose
    claim expired)."""
    judgment = check_assigned(actor, comparison)
    if judgment is not None and judgment.status != JudgmentStatus.DRAFT:
        return judgment
    if queue.touch_claim(actor, comparison):
        return judgment
    if judgment is not None and queue.claim(actor, comparison) is not None:
        return judgment
    raise NotAssigned(_CLAIM_EXPIRED if judgment is not None else _NOT_ASSIGNED)


@transaction.atomic
def do_start_judgment(actor: User, comparison: Comparison) -> Judgment:
    """The annotator's judgment on the comparison, created as a draft on the current rubric."""
    existing = ensure_assigned(actor, comparison)
    if existing is not None:
        return existing
    version = comparison.project.rubric.current_version()
    judgment, created = Judgment.objects.get_or_create(
        comparison=comparison,
        annotator=actor,
        defaults={"rubric_version": version, "turn_judged": comparison.turn_count},
    )
    if created:
        record(
            actor,
            "judgment.started",
            judgment,
            object_id=judgment.pk,
            new={"comparison": comparison.public_id, "rubric_version": version.number},
            project_id=comparison.project_id,
        )
    return judgment


@transaction.atomic
def do_ask_follow_up(actor: User, comparison: Comparison, prompt: str) -> Judgment:
    """Send a follow-up prompt to both agents of the comparison (turn N+1 on both runs). Asking
    is work on the comparison, so it starts the annotator's judgment; only the annotator whose
    judgment is still open may ask."""
    judgment = do_start_judgment(actor, comparison)
    if not judgment.is_editable:
        raise JudgmentClosed(
            "Only the annotator working on this comparison may ask for a follow-up; "
            "your judgment is already submitted."
        )
    do_start_follow_up(actor, comparison, prompt)
    return judgment


def do_save_draft(actor: User, judgment: Judgment, draft: Draft, *, revision: int) -> Judgment:
    """Save the draft if ``revision`` is the one the server holds; raise StaleDraft if not.

    One UPDATE when all is well: it checks the revision, that the judgment is still editable
    and that its annotator holds the comparison (an open claim; a judgment sent back for
    revision needs none). Its ``updated_at`` is the activity that keeps the claim alive
    (queue.release_expired_claims). Only when it changes nothing is the row read, to say why,
    or to claim again a draft whose claim expired while a place is free, and save then."""
    if judgment.annotator_id != actor.pk:
        raise NotAssigned("Only the annotator who wrote this draft may change it.")
    with transaction.atomic():
        if judgment.draft_revision != revision or not judgment.is_editable:
            # The row in hand is not what the save replaces: read it, to audit the right change.
            judgment = Judgment.objects.select_related("comparison").get(pk=judgment.pk)
        before = _verdict(judgment)
        now = timezone.now()
        if not _update_draft(actor, judgment, draft, revision=revision, now=now):
            current = Judgment.objects.select_related("comparison__project").get(pk=judgment.pk)
            if not current.is_editable:
                raise JudgmentClosed(
                    "This judgment was submitted and is final; it can no longer change."
                )
            if current.draft_revision != revision:
                raise StaleDraft(current)
            ensure_assigned(actor, current.comparison)  # claims again, or says why it cannot
            judgment, before = current, _verdict(current)
            if not _update_draft(actor, judgment, draft, revision=revision, now=now):
                raise StaleDraft(Judgment.objects.get(pk=judgment.pk))
        _apply_draft(judgment, draft)
        judgment.draft_revision = revision + 1
        judgment.updated_at = now
        if _verdict(judgment) != before:
            # Only saves that change the verdict are audited (a few per judgment, not one per
            # keystroke): they show, e.g., a preference changed after the checks were shown.
            record(
                actor,
                "judgment.draft_verdict",
                judgment,
                old=before,
                new=_verdict(judgment),
                project_id=judgment.comparison.project_id,
            )
    return judgment


def _update_draft(
    actor: User, judgment: Judgment, draft: Draft, *, revision: int, now: object
) -> bool:
    holds = Claim.objects.filter(
        comparison_id=OuterRef("comparison_id"),
        annotator_id=actor.pk,
        released_at__isnull=True,
        comparison__state=ComparisonState.AWAITING_JUDGMENTS,
    )
    # Conditions on the row itself (and an EXISTS), so the UPDATE stays one statement and
    # PostgreSQL checks the revision again on the newest row when two saves race.
    return bool(
        Judgment.objects.filter(
            Q(status=JudgmentStatus.REVISION_REQUESTED)
            | Q(Exists(holds), status=JudgmentStatus.DRAFT),
            pk=judgment.pk,
            annotator_id=actor.pk,
            draft_revision=revision,
        ).update(**dict(draft), draft_revision=revision + 1, updated_at=now)
    )


def _verdict(judgment: Judgment) -> dict[str, object]:
    return {
        "ratings": dict(judgment.ratings),
        "overall": judgment.overall,
        "confidence": judgment.confidence,
    }


_DRAFT_FIELDS = [
    "ratings",
    "overall",
    "rationale",
    "confidence",
    "comments",
    "turn_notes",
    "turn_verdicts",
]


def _apply_draft(judgment: Judgment, draft: Draft) -> None:
    judgment.ratings = draft["ratings"]
    judgment.overall = draft["overall"]
    judgment.rationale = draft["rationale"]
    judgment.confidence = draft["confidence"]
    judgment.comments = draft["comments"]
    judgment.turn_notes = draft["turn_notes"]
    if "turn_verdicts" in draft:
        judgment.turn_verdicts = draft["turn_verdicts"]


def draft_of(judgment: Judgment) -> Draft:
    return Draft(
        ratings=dict(judgment.ratings),
        overall=judgment.overall,
        rationale=judgment.rationale,
        confidence=judgment.confidence,
        comments=list(judgment.comments),
        turn_notes=dict(judgment.turn_notes),
        turn_verdicts=dict(judgment.turn_verdicts),
    )


@transaction.atomic
def do_judgment_heartbeat(actor: User, comparison: Comparison | str, *, at_ms: int = 0) -> None:
    """The annotator is active on the comparison: count the interval since their last heartbeat
    (server time). The first heartbeat of a session is checked like a save (assigned, judgment
    still editable) and opens it; the rest are one UPDATE of the session, which also keeps the
    claim alive (queue.release_expired_claims reads it). Time counted while a claim lapsed is
    never paid unless submitting passes its checks. ``comparison`` may be its public id (the
    API's heartbeat: then a counted heartbeat needs no lookup). ``at_ms`` is for tests that
    need time that already passed."""
    at_ms = at_ms or activity.now_ms()
    subject = comparison if isinstance(comparison, str) else comparison.pk
    if activity.beat(actor.pk, WorkKind.JUDGMENT, subject, at_ms=at_ms):
        return
    if isinstance(comparison, str):
        comparison = Comparison.objects.select_related("project").get(public_id=comparison)
    judgment = ensure_assigned(actor, comparison)
    if judgment is not None and not judgment.is_editable:
        raise JudgmentClosed("This judgment was submitted; time on it is no longer counted.")
    activity.open_session(actor, WorkKind.JUDGMENT, comparison, comparison.pk, at_ms=at_ms)


def active_seconds_so_far(judgment: Judgment) -> int:
    """What the server counted on this judgment: its submitted sessions and the open one."""
    return judgment.active_seconds + activity.open_active_seconds(
        judgment.annotator, WorkKind.JUDGMENT, judgment.comparison_id
    )


def do_submit_judgment(actor: User, judgment: Judgment) -> Judgment:
    """Submit the saved draft: final for the annotator. Raise ValidationError (a dict of field
    messages) when it is incomplete; nothing is changed then."""
    require_role(actor, "annotator")
    if judgment.annotator_id != actor.pk:
        raise NotAssigned("Only the annotator who wrote this judgment may submit it.")
    with transaction.atomic():
        current = (
            # Lock only the judgment and its comparison: a plain FOR UPDATE through select_related
            # would also lock the project and rubric version, which concurrent transactions need
            # FOR KEY SHARE at commit (foreign-key checks) — a deadlock on PostgreSQL.
            Judgment.objects.select_for_update(of=("self", "comparison"), no_key=True)
            .select_related("comparison__project", "rubric_version")
            .get(pk=judgment.pk)
        )
        if not current.is_editable:
            raise JudgmentClosed("This judgment was already submitted; submitting is final.")
        comparison = current.comparison
        if current.status == JudgmentStatus.DRAFT and not (
            comparison.state == ComparisonState.AWAITING_JUDGMENTS
            and _release_own_claim(actor, comparison)
        ):
            # No open claim (it expired): claim again while a place is free, or say why not.
            ensure_assigned(actor, comparison)
            _release_own_claim(actor, comparison)
        errors = submission_errors(
            draft_of(current),
            current.rubric_version,
            min_rationale=comparison.project.min_rationale_chars,
        )
        if errors:
            raise ValidationError(errors)
        old_status = current.status
        current.status = JudgmentStatus.SUBMITTED
        current.submitted_at = timezone.now()
        current.turn_judged = comparison.turn_count
        # The verdict per turn: earlier turns as chosen, the judged (last) turn's is overall.
        current.turn_verdicts = {
            **{n: v for n, v in current.turn_verdicts.items() if int(n) < comparison.turn_count},
            str(comparison.turn_count): current.overall,
        }
        # Time is what the server's heartbeats measured, added up over every submission (a
        # revision is more work on the same judgment).
        work = activity.close(
            actor,
            WorkKind.JUDGMENT,
            comparison.pk,
            work_id=current.pk,
            at_ms=activity.ms(current.submitted_at),
        )
        current.active_seconds += work.active_seconds
        current.wall_seconds += work.wall_seconds
        current.save(
            update_fields=[
                "status",
                "submitted_at",
                "turn_judged",
                "turn_verdicts",
                "active_seconds",
                "wall_seconds",
                "updated_at",
            ]
        )
        record(
            actor,
            "judgment.submitted",
            current,
            old={"status": old_status},
            new={
                "status": current.status,
                "overall": current.overall,
                "ratings": current.ratings,
                "turn_judged": current.turn_judged,
                "active_seconds": current.active_seconds,
                "wall_seconds": current.wall_seconds,
                "work_session": work.as_dict(),
                "rubric_version": current.rubric_version.number,
            },
            project_id=comparison.project_id,
        )
        pipeline.judgment_submitted(current)
    return current


def _release_own_claim(actor: User, comparison: Comparison) -> bool:
    """Release the actor's open claim on the comparison as their judgment is submitted: the
    place it held is the judgment's now (``slots_taken`` does not change)."""
    return bool(
        Claim.objects.filter(
            comparison=comparison, annotator=actor, released_at__isnull=True
        ).update(released_at=timezone.now())
    )


@transaction.atomic
def do_release_claim(actor: User, comparison: Comparison, *, reason: str = "") -> bool:
    """Give a claimed comparison back to the queue (the draft, if any, is kept)."""
    require_role(actor, "annotator")
    now = timezone.now()
    released = Claim.objects.filter(
        comparison=comparison, annotator=actor, released_at__isnull=True
    ).update(released_at=now)
    if released:
        queue.give_back(comparison.pk)
        record(
            actor,
            "comparison.released",
            comparison,
            old={"claimed_by": actor.pk},
            new={"released_at": now},
            reason=reason or "given back by the annotator",
        )
    return bool(released)
