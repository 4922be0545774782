"""Active pair selection for a project: the Django side that feeds marlin.analytics.selection.

It reads the project's decided comparisons (the leaderboard's outcomes) and the expert minutes
measured per comparison (work sessions' active time, per task kind), fits the strengths, and
plans pairs. ``plan_pairs`` is the planner marlin.agents.pairing calls when the project's
pair selection is "active" (registered in AnalyticsConfig.ready, as pairing sits a layer below).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from django.db.models import Sum

from marlin.agents.models import Agent, Provider
from marlin.agents.pairing import Pair
from marlin.analytics import selection
from marlin.analytics.bt import PairCounts, pair_counts_from_arrays
from marlin.analytics.queries import DecisionFilters, outcomes_for
from marlin.review.models import WorkSession
from marlin.tasks.models import Project, Task

# Until a project has measured time, a comparison is taken to cost about an hour of experts.
DEFAULT_MINUTES = 60.0


def expected_minutes(project: Project) -> tuple[dict[str, float], float]:
    """Mean expert minutes per comparison (judgments, reviews and adjudications together) per
    task kind, and over the whole project, from server-measured active time."""
    rows = (
        WorkSession.objects.filter(comparison__project=project)
        .values("comparison_id", "comparison__task__kind")
        .annotate(active=Sum("active_ms"))
    )
    per_kind: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        per_kind[row["comparison__task__kind"]].append(row["active"] / 60_000)
    every = [m for values in per_kind.values() for m in values if m > 0]
    overall = float(np.mean(every)) if every else DEFAULT_MINUTES
    by_kind = {}
    for kind, values in per_kind.items():
        positive = [m for m in values if m > 0]
        if positive:
            by_kind[kind] = float(np.mean(positive))
    return by_kind, overall


def decided_counts(project: Project, pool: Sequence[int]) -> PairCounts | None:
    """Pair counts of the decided comparisons between agents of the pool; None when there are
    none (active selection then falls back to uniform)."""
    outcomes = outcomes_for(project, DecisionFilters())
    ids = np.asarray(outcomes.agent_ids, dtype=np.int64)
    index = {agent: i for i, agent in enumerate(pool)}
    if not len(outcomes.a_idx):
        return None
    a = ids[outcomes.a_idx]
    b = ids[outcomes.b_idx]
    keep = np.isin(a, list(index)) & np.isin(b, list(index))
    if not keep.any():
        return None
    return pair_counts_from_arrays(
        [str(agent) for agent in pool],
        [index[int(x)] for x in a[keep]],
        [index[int(x)] for x in b[keep]],
        outcomes.outcome[keep],
    )


# Why a target's picks look as they do, in a sentence for the project's selection page.
WHY: dict[str, str] = {
    "width": "one more decision of two agents whose strengths are uncertain and close adds the "
    "most information (Fisher information of the Davidson model).",
    "swap": "a decision between neighbours in the ranking whose order is still in doubt lowers "
    "the chance that they are shown the wrong way round the most.",
    "order": "a decision, or a few, between two agents whose order is in doubt is the one most "
    "likely to put a wrongly ordered pair right (a knowledge-gradient value).",
}


def target_of(project: Project) -> selection.Target:
    """The project's selection target, checked against the ones selection knows."""
    target = project.selection_target
    if target not in selection.TARGETS:
        raise ValueError(
            f"unknown selection target {target!r}: one of {', '.join(selection.TARGETS)}"
        )
    return cast(selection.Target, target)


def plan_pairs(
    project: Project,
    pool: list[int],
    counts: Mapping[Pair, int],
    tasks: Sequence[Task],
    avoid: Sequence[set[Pair]],
    seed: int | None,
) -> list[tuple[Pair, str]] | None:
    """One pair per task, each the best value per expected expert minute (or, for a tenth of
    them, a uniform pick), counting the earlier ones of the batch; None before any decision."""
    pool = sorted(pool)
    if len(pool) < 2:
        return None
    decided = decided_counts(project, pool)
    if decided is None:
        return None
    model = selection.fitted_model(decided)
    target = target_of(project)
    first, second = selection.all_pairs(len(pool))
    keys = [(pool[i], pool[j]) for i, j in zip(first.tolist(), second.tolist(), strict=True)]
    by_kind, overall = expected_minutes(project)
    rng = np.random.default_rng(seed)
    out: list[tuple[Pair, str]] = []
    for task, avoided in zip(tasks, avoid, strict=True):
        allowed = np.array([key not in avoided for key in keys])
        if not allowed.any():  # as the uniform sampler: a repeat only when nothing else is left
            allowed[:] = True
        minutes = by_kind.get(task.kind, overall)
        pick = selection.choose(
            model, first, second, np.full(first.size, minutes), rng, allowed=allowed, target=target
        )
        i, j = int(first[pick.index]), int(second[pick.index])
        model = selection.update(model, i, j)
        pair = (pool[i], pool[j]) if rng.random() < 0.5 else (pool[j], pool[i])
        out.append((pair, "active: " + selection.describe(pick, target, minutes)))
    return out


@dataclass(frozen=True)
class NextPair:
    first: str
    second: str
    value: float
    per_hour: float
    decided: int  # decided comparisons of this pair so far


@dataclass(frozen=True)
class Preview:
    mode: str
    decided: int
    minutes_by_kind: dict[str, float]
    minutes_overall: float
    pairs: list[NextPair]
    note: str


def preview(project: Project, n: int = 10) -> Preview:
    """The pairs active selection would choose next (without the random exploration picks), and
    why, for the project page."""
    pool = sorted(
        project.agent_pool.filter(is_active=True)
        .exclude(provider=Provider.IMPORT)
        .values_list("pk", flat=True)
    )
    by_kind, overall = expected_minutes(project)
    decided = decided_counts(project, pool) if len(pool) >= 2 else None
    mode = project.pair_selection
    if decided is None:
        note = (
            "No decided comparisons between agents of the pool yet, so tasks are paired "
            "uniformly (the least-compared pair) until the first decisions arrive."
        )
        return Preview(mode, 0, by_kind, overall, [], note)
    model = selection.fitted_model(decided)
    target = target_of(project)
    first, second = selection.all_pairs(len(pool))
    rng = np.random.default_rng(0)
    picks = selection.plan(
        model, first, second, np.full(first.size, overall), n, rng, explore=0.0, target=target
    )
    names = {a.pk: a.name for a in Agent.objects.filter(pk__in=pool)}
    totals = decided.totals
    pairs = [
        NextPair(
            first=names[pool[int(first[p.index])]],
            second=names[pool[int(second[p.index])]],
            value=p.value,
            per_hour=p.per_minute * 60,
            decided=int(totals[first[p.index], second[p.index]]),
        )
        for p in picks
    ]
    note = (
        f"Each pair below {selection.TARGETS[target]} per expert minute, given the "
        f"{decided.n_comparisons} decided comparisons: "
        + WHY[target]
        + " Each pick counts the ones above it, so the list spreads over the pool. A share of "
        f"{selection.DEFAULT_EXPLORE:.0%} of real picks is uniform at random."
    )
    if mode != "active":
        note = (
            "This project pairs uniformly; with active selection the next pairs would be: " + note
        )
    return Preview(mode, decided.n_comparisons, by_kind, overall, pairs, note)
