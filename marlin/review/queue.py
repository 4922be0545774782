"""The annotators' queue: who gets which comparison next, and claims that expire.

A comparison has ``project.overlap`` places. A place is taken by a submitted judgment (submitted,
revision requested or accepted) or by an open claim (a draft in progress holds its claim); the
comparison's ``slots_taken`` column counts them, kept by the actions here (a claim adds one, a
release or an expiry gives one back; submitting turns a claim into a judgment).

``next_comparison`` gives an annotator back the comparison they hold with unfinished work, or
claims a new one in one statement: an UPDATE of the comparison row chosen by a sub-select of the
eligible ones (awaiting judgments in an active project, a free place, not judged or claimed by
them, not on a task they wrote), best first: repositories in a language from their profile,
then the oldest (which finishes the comparisons that have places taken before starting new ones).
Without languages that order is the partial index ``comparison_awaiting``: the statement reads
the first rows of the index, not every open comparison.

On PostgreSQL the sub-select locks the row ``FOR NO KEY UPDATE SKIP LOCKED``: a row another
annotator is claiming is skipped, not waited for, and a row whose last place went meanwhile is
checked again and passed over, so no comparison gets more than its overlap. When that finds
nothing (every row with a place was locked at that instant), the statement runs once more
waiting for the locks, so nobody is told the queue is empty while a place is free. On SQLite
transactions are IMMEDIATE (see settings), so claims run one at a time and the same statement
suffices.

Claims expire after ``project.claim_timeout_minutes`` without activity: no save of the draft
(each stamps the judgment's ``updated_at``) and no heartbeat on the judgment (its work session's
``last_seen_ms``, marlin/review/activity.py). Reading the page writes nothing. Expired claims are
released by the worker's recovery sweep (``marlin worker``), not by the requests of others.
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
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from marlin.audit.actions import record
from marlin.catalog.models import Repository
from marlin.permissions import require_role
from marlin.review.models import (
    Claim,
    Comparison,
    ComparisonState,
    Judgment,
    JudgmentStatus,
    Routing,
    WorkKind,
    WorkSession,
)
from marlin.tasks.models import Project, Task

# Judgments that hold a slot for good; drafts hold one only through their open claim.
SLOT_STATUSES = (
    JudgmentStatus.SUBMITTED,
    JudgmentStatus.REVISION_REQUESTED,
    JudgmentStatus.ACCEPTED,
)


def used_slots(comparison: Comparison) -> int:
    """Places taken right now (read from the database, not from the object in hand)."""
    return (
        Comparison.objects.filter(pk=comparison.pk).values_list("slots_taken", flat=True).first()
        or 0
    )


def recount_slots(comparison_ids: Any = None) -> list[int]:
    """Ids of comparisons awaiting judgments whose ``slots_taken`` is not what their judgments
    and claims say (for the load test's consistency check and for tests)."""
    awaiting = Comparison.objects.filter(state=ComparisonState.AWAITING_JUDGMENTS)
    if comparison_ids is not None:
        awaiting = awaiting.filter(pk__in=list(comparison_ids))
    wrong = []
    for comparison_id, counted in awaiting.values_list("pk", "slots_taken"):
        judged = set(
            Judgment.objects.filter(
                comparison_id=comparison_id, status__in=SLOT_STATUSES
            ).values_list("annotator_id", flat=True)
        )
        claimed = set(
            Claim.objects.filter(comparison_id=comparison_id, released_at__isnull=True).values_list(
                "annotator_id", flat=True
            )
        )
        if len(judged | claimed) != counted:
            wrong.append(comparison_id)
    return wrong


def give_back(comparison_id: int, places: int = 1) -> None:
    """A claim was released without a judgment: its place is free again."""
    Comparison.objects.filter(pk=comparison_id, slots_taken__gte=places).update(
        slots_taken=F("slots_taken") - places
    )


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
    """Claims taken before ``cutoff`` with no save of their draft and no heartbeat from their
    annotator on the comparison's judgment since then."""
    recent_heartbeat = WorkSession.objects.filter(
        user_id=OuterRef("annotator_id"),
        kind=WorkKind.JUDGMENT,
        subject_id=OuterRef("comparison_id"),
        closed_ms__isnull=True,
        last_seen_ms__gte=int(cutoff.timestamp() * 1000),
    )
    # A save is one UPDATE of the judgment (actions.do_save_draft); its updated_at is the
    # activity, so saving writes nothing on the claim.
    recent_save = Judgment.objects.filter(
        comparison_id=OuterRef("comparison_id"),
        annotator_id=OuterRef("annotator_id"),
        updated_at__gte=cutoff,
    )
    return (
        Claim.objects.filter(last_seen_at__lt=cutoff)
        .exclude(Exists(recent_heartbeat))
        .exclude(Exists(recent_save))
    )


def release_expired_claims(now: Any = None) -> int:
    """Release claims idle past their project's timeout; return how many were released. The
    worker's recovery sweep calls it (every third of the job lease, at most a minute)."""
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
                    give_back(claim.comparison_id)
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
    """Comparisons the annotator could take now (for counts; ``next_comparison`` claims)."""
    places = Case(
        When(routing=Routing.SINGLE, then=Value(1)),
        default=F("project__overlap"),
        output_field=IntegerField(),
    )
    seen_pair = (
        Claim.objects.filter(annotator=annotator, comparison__agent_pair=OuterRef("agent_pair"))
        .values("annotator")
        .annotate(n=Count("comparison", distinct=True))
        .values("n")
    )
    queryset = (
        Comparison.objects.annotate(places=places, seen_pair=Coalesce(Subquery(seen_pair), 0))
        .filter(
            state=ComparisonState.AWAITING_JUDGMENTS,
            project__is_active=True,
            slots_taken__lt=F("places"),
        )
        .exclude(routing=Routing.PENDING)
        .filter(
            Q(project__max_judgments_per_pair=0)
            | Q(agent_pair="")
            | Q(seen_pair__lt=F("project__max_judgments_per_pair"))
        )
        .exclude(Exists(Judgment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)))
        .exclude(
            Exists(
                Claim.objects.filter(
                    comparison=OuterRef("pk"), annotator=annotator, released_at__isnull=True
                )
            )
        )
        .exclude(task__created_by=annotator)
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
        "rank", "-priority", "created_at", "pk"
    )


def next_comparison(annotator: Any, project: Project | None = None) -> Comparison | None:
    """The comparison the annotator should work on next, claimed for them (or None).

    An annotator who already holds an open claim with an unfinished draft gets it back first,
    so "Next comparison" never strands work in progress. A new claim is three statements and
    the audit event: the claiming UPDATE, the claim row, the event.
    """
    require_role(annotator, "annotator")
    with transaction.atomic():
        comparison = _claim_next(annotator, project, skip_locked=True)
        if comparison is None and connection.vendor == "postgresql":
            # Every row with a free place may have been locked by other claims at that instant,
            # and a locked row can keep a place after its claim commits (overlap > 1): ask
            # again, waiting for those locks, before saying the queue is empty. Only when the
            # queue is about to run dry; no lock is held here, so the wait cannot deadlock.
            comparison = _claim_next(annotator, project, skip_locked=False)
        if comparison is not None:
            Claim.objects.create(comparison=comparison, annotator=annotator)
            record(
                annotator,
                "comparison.claimed",
                comparison,
                new={"claimed_by": annotator.pk},
                reason="taken from the queue",
            )
            return comparison
    # Nothing new was claimed: either the annotator holds unfinished work (the claiming
    # statement refuses them new work then) or nothing is free.
    return _held_comparison(annotator, project)


def _claim_next(annotator: Any, project: Project | None, *, skip_locked: bool) -> Comparison | None:
    """Take a place on the best eligible comparison in one UPDATE ... RETURNING; None when
    there is none or the annotator holds unfinished work."""
    postgres = connection.vendor == "postgresql"
    me = annotator.pk
    awaiting = ComparisonState.AWAITING_JUDGMENTS.value
    single = Routing.SINGLE.value
    pending = Routing.PENDING.value
    languages = _languages(annotator)
    # Placeholders in the order they appear in the text.
    params: list[Any] = [awaiting, single, pending, *([project.pk] if project else []), me, me, me]
    params += [me, awaiting, *([project.pk] if project else []), me, *SLOT_STATUSES]
    params += [me]
    params += languages
    in_list = ", ".join(["%s"] * len(languages))
    # (A constant would be read as a column number in ORDER BY: no language, no rank.)
    rank = f"CASE WHEN LOWER(r.language) IN ({in_list}) THEN 0 ELSE 1 END, " if languages else ""
    columns = ", ".join(
        connection.ops.quote_name(field.column) for field in Comparison._meta.concrete_fields
    )
    tables = {
        "comparison": Comparison._meta.db_table,
        "judgment": Judgment._meta.db_table,
        "claim": Claim._meta.db_table,
        "project": Project._meta.db_table,
        "task": Task._meta.db_table,
        "repository": Repository._meta.db_table,
    }
    # Only table names, column names and fixed SQL are formatted in; values are parameters.
    sql = """
        UPDATE {comparison} SET slots_taken = slots_taken + 1
        WHERE id = (
            SELECT c.id FROM {comparison} c
            INNER JOIN {project} p ON p.id = c.project_id
            INNER JOIN {task} t ON t.id = c.task_id
            INNER JOIN {repository} r ON r.id = t.repository_id
            WHERE c.state = %s AND p.is_active
              AND c.slots_taken < (CASE WHEN c.routing = %s THEN 1 ELSE p.overlap END)
              AND c.routing <> %s {in_project}
              AND (t.created_by_id IS NULL OR t.created_by_id <> %s)
              AND NOT EXISTS (
                SELECT 1 FROM {judgment} j WHERE j.comparison_id = c.id AND j.annotator_id = %s)
              AND NOT EXISTS (
                SELECT 1 FROM {claim} o
                WHERE o.comparison_id = c.id AND o.annotator_id = %s AND o.released_at IS NULL)
              AND NOT EXISTS (
                SELECT 1 FROM {claim} h INNER JOIN {comparison} hc ON hc.id = h.comparison_id
                WHERE h.annotator_id = %s AND h.released_at IS NULL AND hc.state = %s
                  {held_in_project}
                  AND NOT EXISTS (
                    SELECT 1 FROM {judgment} hj
                    WHERE hj.comparison_id = h.comparison_id AND hj.annotator_id = %s
                      AND hj.status IN ({slot_statuses})))
              AND (c.agent_pair, c.project_id) NOT IN (
                SELECT seen.agent_pair, cp.id FROM (
                  SELECT sc.agent_pair, COUNT(DISTINCT s.comparison_id) AS n FROM {claim} s
                  INNER JOIN {comparison} sc ON sc.id = s.comparison_id
                  WHERE s.annotator_id = %s AND sc.agent_pair <> ''
                  GROUP BY sc.agent_pair) seen
                CROSS JOIN {project} cp
                WHERE cp.max_judgments_per_pair > 0 AND seen.n >= cp.max_judgments_per_pair)
            ORDER BY {rank}c.priority DESC, c.created_at, c.id
            LIMIT 1
            {lock}
        )
        RETURNING {columns}
    """.format(  # noqa: S608 (table and column names, fixed text)
        **tables,
        in_project="AND c.project_id = %s" if project else "",
        held_in_project="AND hc.project_id = %s" if project else "",
        slot_statuses=", ".join(["%s"] * len(SLOT_STATUSES)),
        rank=rank,
        lock=("FOR NO KEY UPDATE OF c" + (" SKIP LOCKED" if skip_locked else ""))
        if postgres
        else "",
        columns=columns,
    )
    rows = list(Comparison.objects.raw(sql, params))
    return rows[0] if rows else None


def claim(annotator: Any, comparison: Comparison) -> Claim | None:
    """Claim a specific comparison if a place is free and the annotator may take it (a draft
    whose claim expired, claimed again by its next save)."""
    require_role(annotator, "annotator")
    if not may_take(annotator, comparison):
        return None
    with transaction.atomic():
        held = open_claim(annotator, comparison)
        if held is not None:
            return held
        # The conditions on the row itself, so that PostgreSQL checks them again on the newest
        # version when another claim got there first.
        taken = Comparison.objects.filter(
            pk=comparison.pk,
            state=ComparisonState.AWAITING_JUDGMENTS,
            slots_taken__lt=comparison.judgments_required,
        ).update(slots_taken=F("slots_taken") + 1)
        if not taken:
            return None
        made = Claim.objects.create(comparison=comparison, annotator=annotator)
        record(
            annotator,
            "comparison.claimed",
            comparison,
            new={"claimed_by": annotator.pk},
            reason="taken from the queue",
        )
        return made


def may_take(annotator: Any, comparison: Comparison) -> bool:
    """Whether the annotator is someone this comparison may go to (ignoring free slots)."""
    if comparison.task.created_by_id == annotator.pk:
        return False
    return not Judgment.objects.filter(
        comparison=comparison, annotator=annotator, status__in=SLOT_STATUSES
    ).exists()


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
