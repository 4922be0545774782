"""The annotators' queue: who gets which comparison next, and claims that expire.

A comparison has ``project.overlap`` slots. A slot is taken by a submitted judgment (submitted,
revision requested or accepted) or by an open claim (a draft in progress holds its claim).
``next_comparison`` hands an annotator the oldest comparison with a free slot that they have not
judged or claimed, not on a task they wrote, preferring repositories in a language from their
profile, and claims it atomically:

* PostgreSQL: the comparison row is locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` and its
  slots are counted again inside the transaction, so two annotators asking at once never take
  more slots than the overlap (the second waits for, or skips, the first).
* SQLite: transactions are IMMEDIATE (see settings), so claiming transactions run one at a time.

Claims expire after ``project.claim_timeout_minutes`` without activity: no save of the draft
(each refreshes ``last_seen_at``) and no heartbeat on the judgment (its work session's
``last_seen_ms``, marlin/review/activity.py; a heartbeat writes only that row). Reading the page
writes nothing. Expired claims are released the next time anyone asks the queue.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Lower
from django.utils import timezone

from marlin.audit.actions import record
from marlin.permissions import require_role
from marlin.review.models import (
    Claim,
    Comparison,
    ComparisonState,
    Judgment,
    JudgmentStatus,
    WorkKind,
    WorkSession,
)
from marlin.tasks.models import Project

# Judgments that hold a slot for good; drafts hold one only through their open claim.
SLOT_STATUSES = (
    JudgmentStatus.SUBMITTED,
    JudgmentStatus.REVISION_REQUESTED,
    JudgmentStatus.ACCEPTED,
)
_CANDIDATES_PER_TRY = 25


def used_slots(comparison: Comparison) -> int:
    """Slots taken right now: judgments that count plus open claims without one."""
    judged = set(
        comparison.judgments.filter(status__in=SLOT_STATUSES).values_list("annotator_id", flat=True)
    )
    claimed = set(
        comparison.claims.filter(released_at__isnull=True).values_list("annotator_id", flat=True)
    )
    return len(judged | claimed)


def open_claim(annotator: Any, comparison: Comparison) -> Claim | None:
    return Claim.objects.filter(
        comparison=comparison, annotator=annotator, released_at__isnull=True
    ).first()


def touch_claim(annotator: Any, comparison: Comparison) -> bool:
    """Record activity on the annotator's claim; False when they hold none."""
    return bool(
        Claim.objects.filter(
            comparison=comparison, annotator=annotator, released_at__isnull=True
        ).update(last_seen_at=timezone.now())
    )


def _idle_claims(cutoff: Any) -> QuerySet[Claim]:
    """Claims with no save since ``cutoff`` and no heartbeat from their annotator on the
    comparison's judgment since then."""
    recent_heartbeat = WorkSession.objects.filter(
        user_id=OuterRef("annotator_id"),
        kind=WorkKind.JUDGMENT,
        subject_id=OuterRef("comparison_id"),
        closed_ms__isnull=True,
        last_seen_ms__gte=int(cutoff.timestamp() * 1000),
    )
    return Claim.objects.filter(last_seen_at__lt=cutoff).exclude(Exists(recent_heartbeat))


def release_expired_claims(now: Any = None) -> int:
    """Release claims idle past their project's timeout; return how many were released."""
    now = now or timezone.now()
    released = 0
    projects = Project.objects.filter(comparisons__claims__released_at__isnull=True).distinct()
    for project in projects:
        cutoff = now - timedelta(minutes=project.claim_timeout_minutes)
        idle = _idle_claims(cutoff)
        stale = list(
            idle.filter(comparison__project=project, released_at__isnull=True).select_related(
                "comparison"
            )
        )
        if not stale:
            continue
        with transaction.atomic():
            for claim in stale:
                # Still idle (a heartbeat may have come since the list was read).
                if idle.filter(pk=claim.pk, released_at__isnull=True).update(released_at=now):
                    released += 1
                    record(
                        None,
                        "claim.expired",
                        claim.comparison,
                        old={"claimed_by": claim.annotator_id},
                        new={"released_at": now},
                        reason=f"no activity for {project.claim_timeout_minutes} minutes",
                    )
    return released


def eligible_comparisons(annotator: Any, project: Project | None = None) -> QuerySet[Comparison]:
    """Comparisons the annotator could take now, best first (not locked, not yet claimed)."""
    queryset = (
        Comparison.objects.filter(state=ComparisonState.AWAITING_JUDGMENTS, project__is_active=True)
        .exclude(Exists(Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
        .exclude(
            Exists(
                Claim.objects.filter(
                    comparison=OuterRef("pk"), annotator=annotator, released_at__isnull=True
                )
            )
        )
        .exclude(task__created_by=annotator)
        .annotate(
            judged=Count(
                "judgments__annotator",
                filter=Q(judgments__status__in=SLOT_STATUSES),
                distinct=True,
            ),
            claimed=Count(
                "claims__annotator", filter=Q(claims__released_at__isnull=True), distinct=True
            ),
        )
        .annotate(used=F("judged") + F("claimed"))
        .filter(used__lt=F("project__overlap"))
    )
    if project is not None:
        queryset = queryset.filter(project=project)
    languages = _languages(annotator)
    rank = (
        Case(
            When(repo_language__in=languages, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        if languages
        else Value(0, output_field=IntegerField())
    )
    return queryset.annotate(repo_language=Lower("task__repository__language"), rank=rank).order_by(
        "rank", "created_at", "pk"
    )


def next_comparison(annotator: Any, project: Project | None = None) -> Comparison | None:
    """The comparison the annotator should work on next, claimed for them (or None).

    An annotator who already holds an open claim with an unfinished draft gets it back first,
    so "Next comparison" never strands work in progress.
    """
    require_role(annotator, "annotator")
    release_expired_claims()
    held = _held_comparison(annotator, project)
    if held is not None:
        return held
    for skip_locked in (True, False) if connection.vendor == "postgresql" else (False,):
        ids = eligible_comparisons(annotator, project).values_list("pk", flat=True)
        for comparison_id in list(ids[:_CANDIDATES_PER_TRY]):
            claimed = _try_claim(annotator, comparison_id, skip_locked=skip_locked)
            if claimed is not None:
                return claimed
    return None


def claim(annotator: Any, comparison: Comparison) -> Claim | None:
    """Claim a specific comparison if a slot is free and the annotator may take it."""
    require_role(annotator, "annotator")
    if not may_take(annotator, comparison):
        return None
    if _try_claim(annotator, comparison.pk, skip_locked=False) is None:
        return None
    return open_claim(annotator, comparison)


def may_take(annotator: Any, comparison: Comparison) -> bool:
    """Whether the annotator is someone this comparison may go to (ignoring free slots)."""
    if comparison.task.created_by_id == annotator.pk:
        return False
    return not Judgment.objects.filter(
        comparison=comparison, annotator=annotator, status__in=SLOT_STATUSES
    ).exists()


def _try_claim(annotator: Any, comparison_id: int, *, skip_locked: bool) -> Comparison | None:
    with transaction.atomic():
        # of=("self",): see do_submit_judgment — locking the project row too deadlocks.
        locked = Comparison.objects.select_for_update(
            skip_locked=skip_locked, of=("self",), no_key=True
        ).select_related("project", "task")
        comparison = locked.filter(
            pk=comparison_id, state=ComparisonState.AWAITING_JUDGMENTS
        ).first()
        if comparison is None:
            return None
        if open_claim(annotator, comparison) is not None:
            return comparison
        if used_slots(comparison) >= comparison.project.overlap:
            return None
        Claim.objects.create(comparison=comparison, annotator=annotator)
        record(
            annotator,
            "comparison.claimed",
            comparison,
            new={"claimed_by": annotator.pk},
            reason="taken from the queue",
        )
        return comparison


def _held_comparison(annotator: Any, project: Project | None) -> Comparison | None:
    claims = Claim.objects.filter(
        annotator=annotator,
        released_at__isnull=True,
        comparison__state=ComparisonState.AWAITING_JUDGMENTS,
    ).exclude(
        Exists(
            Judgment.objects.filter(
                comparison=OuterRef("comparison"), annotator=annotator, status__in=SLOT_STATUSES
            )
        )
    )
    if project is not None:
        claims = claims.filter(comparison__project=project)
    held = claims.select_related("comparison").order_by("claimed_at").first()
    return held.comparison if held else None


def _languages(annotator: Any) -> list[str]:
    profile = getattr(annotator, "expert_profile", None)
    try:
        languages = profile.languages if profile is not None else []
    except Exception:  # noqa: BLE001 - a missing profile (RelatedObjectDoesNotExist) means none
        languages = []
    return [str(lang).lower() for lang in languages or []]


def queue_summary(annotator: Any) -> dict[str, int]:
    """Counts for the queue page: comparisons waiting for this annotator, and work in hand."""
    available = eligible_comparisons(annotator).count()
    drafts = Judgment.objects.filter(
        annotator=annotator, status__in=(JudgmentStatus.DRAFT, JudgmentStatus.REVISION_REQUESTED)
    ).count()
    submitted = Judgment.objects.filter(annotator=annotator, status__in=SLOT_STATUSES).count()
    return {"available": available, "drafts": drafts, "submitted": submitted}
