"""Choosing the two agents of a task from a project's pool.

The sampler is plain Python: among all pairs of two different agents it takes one of those
compared least often so far (ties broken by a seeded RNG), so over many tasks every pair is
compared about equally often, and the same seed with the same history gives the same choices.
The Django part reads the history from the runs already started in pairs and starts two runs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

from django.db import transaction
from django.db.models import F

from marlin.accounts.models import User
from marlin.agents.actions import create_run, link_partners
from marlin.agents.models import Agent, Provider, Run
from marlin.audit.actions import record
from marlin.permissions import require_role
from marlin.tasks.models import Project, Task

Pair = tuple[int, int]
# A planner chooses the pairs of a batch of tasks: (project, pool, pair counts so far, tasks,
# pairs already run on each task, seed) -> one (pair, why) per task, or None to fall back to
# the uniform sampler. The active planner lives in marlin.analytics.active (it needs the
# leaderboard fit, a layer above) and registers itself here in the analytics app's ready().
PairPlanner = Callable[
    [Project, list[int], Mapping[Pair, int], Sequence[Task], Sequence[set[Pair]], int | None],
    list[tuple[Pair, str]] | None,
]
PLANNERS: dict[str, PairPlanner] = {}
UNIFORM_REASON = "uniform: a pair compared least often so far"


class PairingError(ValueError):
    """No pair can be chosen; the message says what to change."""


def pair_key(a: int, b: int) -> Pair:
    if a == b:
        raise PairingError(f"An agent cannot be compared with itself (agent {a}).")
    return (a, b) if a < b else (b, a)


def choose_pair(
    pool: Iterable[int],
    counts: Mapping[Pair, int],
    rng: random.Random,
    *,
    avoid: Iterable[Pair] = (),
) -> Pair:
    """A least-compared pair of two different agents of ``pool``, in random order.

    Pairs in ``avoid`` (e.g. already run on this task) are taken only when nothing else is left.
    """
    agents = sorted(set(pool))
    if len(agents) < 2:
        raise PairingError(
            f"The agent pool has {len(agents)} agent(s); add at least two to compare them."
        )
    pairs = list(combinations(agents, 2))
    avoided = set(avoid)
    fresh = [p for p in pairs if p not in avoided] or pairs
    fewest = min(counts.get(p, 0) for p in fresh)
    best = [p for p in fresh if counts.get(p, 0) == fewest]
    first, second = rng.choice(best)
    return (first, second) if rng.random() < 0.5 else (second, first)


class PairSampler:
    """Draws pairs one after another, counting as it goes (for batches and for tests)."""

    def __init__(
        self,
        pool: Sequence[int],
        counts: Mapping[Pair, int] | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.pool = list(pool)
        self.counts: Counter[Pair] = Counter(counts or {})
        self.rng = random.Random(seed)  # noqa: S311  # nosec B311 - fair and reproducible, not secret

    def draw(self, *, avoid: Iterable[Pair] = ()) -> Pair:
        pair = choose_pair(self.pool, self.counts, self.rng, avoid=avoid)
        self.counts[pair_key(*pair)] += 1
        return pair


def project_pair_counts(project: Project) -> Counter[Pair]:
    """How often each pair of agents was started together on this project's tasks."""

    rows = Run.objects.filter(
        task__project=project, partner__isnull=False, pk__lt=F("partner_id")
    ).values_list("agent_id", "partner__agent_id")
    counts: Counter[Pair] = Counter()
    for a, b in rows:
        if a != b:
            counts[pair_key(a, b)] += 1
    return counts


def _task_pairs(task: Any) -> set[Pair]:

    rows = Run.objects.filter(task=task, partner__isnull=False).values_list(
        "agent_id", "partner__agent_id"
    )
    return {pair_key(a, b) for a, b in rows if a != b}


def _pool(project: Project) -> list[int]:

    return list(
        project.agent_pool.filter(is_active=True)
        .exclude(provider=Provider.IMPORT)
        .values_list("pk", flat=True)
    )


def do_pair_task(actor: User, task: Any, *, seed: int | None = None) -> tuple[Any, Any]:
    """Choose two agents for the task and start a run of each (partners of each other)."""
    return do_pair_tasks(actor, task.project, [task], seed=seed)[0]


@transaction.atomic
def do_pair_tasks(
    actor: User, project: Project, tasks: Sequence[Task], *, seed: int | None = None
) -> list[tuple[Any, Any]]:
    """Pair several tasks of one project in order; one audit event for the batch."""

    require_role(actor, "author")
    # The project row serialises pairings, so two at once still see each other's counts.
    project = Project.objects.select_for_update().get(pk=project.pk)
    if any(task.project_id != project.pk for task in tasks):
        raise PairingError("Every task must belong to the project being paired.")
    sampler = PairSampler(_pool(project), project_pair_counts(project), seed=seed)
    agents = Agent.objects.in_bulk(sampler.pool)
    started = []
    chosen = []
    avoid = [_task_pairs(task) for task in tasks]
    planner = PLANNERS.get(project.pair_selection)
    planned = (
        planner(project, sampler.pool, sampler.counts, tasks, avoid, seed) if planner else None
    )
    for i, task in enumerate(tasks):
        if planned is None:
            (first_id, second_id), reason = sampler.draw(avoid=avoid[i]), UNIFORM_REASON
        else:
            (first_id, second_id), reason = planned[i]
        first = create_run(actor, task, agents[first_id])
        second = create_run(actor, task, agents[second_id])
        link_partners(first, second)
        started.append((first, second))
        chosen.append(
            {
                "task": task.pk,
                "agents": [str(agents[first_id]), str(agents[second_id])],
                "why": reason,
            }
        )
    record(actor, "project.pair_tasks", project, new={"seed": seed, "pairs": chosen})
    return started
