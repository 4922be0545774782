"""Creating comparisons from finished runs, and keeping their turn count current.

Pairing rule: two runs on the same task pair up when they are by different agents, both have a
candidate for turn 1, and neither is already in a comparison. A run started by the pairing
action names its partner (``Run.partner``) and waits for exactly that run. A run without a
partner (imports, single runs) pairs with the most recently created eligible run on the task.
A run whose partner has not finished yet waits: the partner's own ``turn_finished`` creates the
comparison.

Sides are assigned with ``secrets.randbelow`` and stored (``run_a``, ``run_b``); nothing about
the runs (ids, creation order) predicts which side an agent lands on.

``turn_finished(turn)`` runs when a turn's candidate is handed on (agents' ``candidate_ready``,
in the transaction that saves the candidate). It is idempotent: calling it twice for the same
turn changes nothing the second time, so the worker's recovery sweep may hand a candidate on
again (``candidates_awaiting_comparison``).
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.db.models import F, Q

from marlin.accounts.models import User
from marlin.agents.models import Candidate, Run, Turn, TurnStatus
from marlin.audit.actions import record
from marlin.review.models import Comparison, ComparisonState, Routing
from marlin.tasks.models import Project, Task


class PairingError(ValueError):
    """Two runs that cannot be compared (different tasks, same run, same agent)."""


def agent_pair(first_agent_id: int, second_agent_id: int) -> str:
    """The unordered pair of agents as stored on the comparison ("low-high" ids)."""
    low, high = sorted((first_agent_id, second_agent_id))
    return f"{low}-{high}"


def create_comparison(
    project: Project, task: Task, run_x: Run, run_y: Run, *, actor: User | None = None
) -> Comparison:
    """Compare two runs on ``task``, with sides A and B assigned at random."""
    if run_x.pk == run_y.pk:
        raise PairingError("A comparison needs two different runs.")
    if run_x.task_id != task.pk or run_y.task_id != task.pk:
        raise PairingError("Both runs must be on the comparison's task.")
    if task.project_id != project.pk:
        raise PairingError("The task belongs to another project.")
    run_a, run_b = (run_x, run_y) if secrets.randbelow(2) == 0 else (run_y, run_x)
    with transaction.atomic():
        comparison = Comparison.objects.create(
            project=project,
            task=task,
            run_a=run_a,
            run_b=run_b,
            turn_count=1,
            agent_pair=agent_pair(run_a.agent_id, run_b.agent_id),
            # Under triage it waits out of the queue until the worker routes it by its checks.
            routing=Routing.PENDING if project.triage else Routing.NONE,
        )
        record(
            actor,
            "comparison.created",
            comparison,
            new={"public_id": comparison.public_id, "run_a": run_a.pk, "run_b": run_b.pk},
            reason="both runs finished their first turn",
        )
    return comparison


def turn_finished(turn: Turn) -> Comparison | None:
    """Create or update the comparison ``turn``'s run belongs to; return it (or None)."""
    with transaction.atomic():
        # Locking the task serialises the two runs of a pair finishing at the same moment, so
        # they cannot both create a comparison (SQLite's IMMEDIATE transactions do the same).
        task = Task.objects.select_for_update().select_related("project").get(pk=turn.run.task_id)
        run = turn.run
        existing = _comparison_of(run)
        if existing is not None:
            return _bump_turns(existing)
        if turn.number != 1 or not _has_candidate(run, 1):
            return None
        partner = _partner_for(run)
        if partner is None:
            return None
        return create_comparison(task.project, task, run, partner)


def _comparison_of(run: Run) -> Comparison | None:
    return (
        Comparison.objects.filter(Q(run_a=run) | Q(run_b=run))
        .exclude(state=ComparisonState.VOIDED)
        .order_by("-created_at")
        .first()
    )


def _has_candidate(run: Run, number: int) -> bool:
    return Candidate.objects.filter(turn__run=run, turn__number=number).exists()


def _partner_for(run: Run) -> Run | None:
    compared = Comparison.objects.exclude(state=ComparisonState.VOIDED)
    taken = set(compared.values_list("run_a_id", flat=True)) | set(
        compared.values_list("run_b_id", flat=True)
    )
    if run.partner_id is not None:
        partner = Run.objects.filter(
            pk=run.partner_id, turns__number=1, turns__candidate__isnull=False
        ).first()
        return partner if partner is not None and partner.pk not in taken else None
    candidates = (
        Run.objects.filter(
            task_id=run.task_id,
            partner__isnull=True,
            turns__number=1,
            turns__candidate__isnull=False,
        )
        .exclude(pk=run.pk)
        .exclude(agent_id=run.agent_id)
        .order_by("-created_at", "-pk")
    )
    return next((r for r in candidates if r.pk not in taken), None)


def _bump_turns(comparison: Comparison) -> Comparison:
    """Raise ``turn_count`` to the highest turn both runs have a candidate for."""
    finished = Candidate.objects.filter(
        turn__run_id__in=[comparison.run_a_id, comparison.run_b_id]
    ).values_list("turn__run_id", "turn__number")
    numbers: dict[int, set[int]] = {comparison.run_a_id: set(), comparison.run_b_id: set()}
    for run_id, number in finished:
        numbers[run_id].add(number)
    common = numbers[comparison.run_a_id] & numbers[comparison.run_b_id]
    both = max(common, default=1)
    if both > comparison.turn_count:
        old = comparison.turn_count
        comparison.turn_count = both
        comparison.save(update_fields=["turn_count", "updated_at"])
        record(
            None,
            "comparison.turn_finished",
            comparison,
            old={"turn_count": old},
            new={"turn_count": both},
            reason="both runs finished a follow-up turn",
        )
    return comparison


def candidates_awaiting_comparison() -> list[int]:
    """Turn-1 candidates of partnered runs that are both done but were never compared: what a
    worker that died before handing a candidate on left behind (the recovery sweep hands them
    on again). A run that was ever in a comparison, a voided one too, is not awaiting one."""
    in_a, in_b = Comparison.objects.values("run_a_id"), Comparison.objects.values("run_b_id")
    runs = (
        Run.objects.filter(partner__isnull=False, pk__lt=F("partner_id"))
        .filter(turns__number=1, turns__status=TurnStatus.DONE, turns__candidate__isnull=False)
        .filter(
            partner__turns__number=1,
            partner__turns__status=TurnStatus.DONE,
            partner__turns__candidate__isnull=False,
        )
        .exclude(Q(pk__in=in_a) | Q(pk__in=in_b))
        .exclude(Q(partner_id__in=in_a) | Q(partner_id__in=in_b))
    )
    return list(
        Candidate.objects.filter(turn__run__in=runs, turn__number=1).values_list("pk", flat=True)
    )


def comparison_for_new_candidate(sender: object, *, candidate: Candidate, **kwargs: object) -> None:
    """Receiver of agents' `candidate_ready`: create or advance the comparison of its run."""
    with transaction.atomic():
        turn_finished(candidate.turn)
