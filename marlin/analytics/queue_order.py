"""The order of the annotators' queue, the weak labels and triage, refreshed by the worker.

``next`` claims the best waiting comparison in one statement ordered by ``Comparison.priority``
(marlin/review/queue.py); no statistics run inside it. This module computes those priorities
out of band, in the worker's periodic sweep (``refresh_all``), for each project whose
comparisons, decisions or checks changed since the last refresh:

- **Order.** Comparisons someone already took come first (a decision needs all its judgments).
  Then, with active pair selection and decided comparisons to learn from, the rest are planned
  one by one with marlin.analytics.selection: the comparison whose pair of agents most shrinks
  the leaderboard's intervals per expected expert minute (measured per task kind), each pick
  counting the earlier ones as decided, a share ``selection.DEFAULT_EXPLORE`` of picks uniform at
  random (the exploration floor). Past ``PLAN_LIMIT`` picks, and in uniform projects, oldest
  first. Priorities are 1 for the first and fall evenly towards 0, so projects mix evenly when
  an annotator takes work from all of them.
- **Weak labels** of undecided comparisons whose checks finished (the label model fitted on the
  project's comparisons, decided ones with their decision).
- **Triage** (project policy): a comparison whose checks finished is routed to one annotator
  with no review when the checks voted and the weak label is at least the project's threshold
  sure that one side wins, and the label model learnt from at least ``TRIAGE_MIN_DECIDED``
  decisions; otherwise to the full overlap and reviews. Until routed it waits out of the queue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db.models import Count, Max, Q, Sum

from marlin.analytics import selection, weak_labels
from marlin.analytics.active import decided_counts, expected_minutes, target_of
from marlin.analytics.weak_label_report import LABELLING_FUNCTIONS, comparison_votes
from marlin.checks.models import CheckResult
from marlin.review.models import Comparison, ComparisonState, Routing
from marlin.review.routing import (
    WeakLabel,
    do_route,
    release_pending,
    set_priorities,
    set_weak_labels,
)
from marlin.tasks.models import PairSelection, Project

PLAN_LIMIT = 300  # comparisons planned one by one; the rest wait oldest first
TRIAGE_MIN_DECIDED = 20
UNDECIDED = (
    ComparisonState.AWAITING_JUDGMENTS,
    ComparisonState.IN_REVIEW,
    ComparisonState.DISPUTED,
)
SIDES = {weak_labels.VOTE_FIRST: "A", weak_labels.VOTE_SECOND: "B"}

# Per process: what each project looked like at its last refresh (nothing changed: skip it).
_last_seen: dict[int, tuple[tuple[object, ...], tuple[object, ...]]] = {}


@dataclass(frozen=True)
class Refreshed:
    project: int
    ordered: int  # comparisons given a priority
    labelled: int  # weak labels stored
    routed: dict[str, int]  # routing -> comparisons routed now


def _fingerprints(project: Project) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """What the queue's order depends on, and what the weak labels and triage depend on (they
    read every candidate's patch, so they are not redone when only a place was taken)."""
    comparisons = Comparison.objects.filter(project=project).aggregate(
        n=Count("pk"),
        changed=Max("updated_at"),
        decided=Count("pk", filter=Q(state=ComparisonState.DECIDED)),
        taken=Sum("slots_taken", filter=Q(state=ComparisonState.AWAITING_JUDGMENTS)),
    )
    checks = CheckResult.objects.filter(candidate__turn__run__task__project=project).aggregate(
        n=Count("pk"), finished=Max("finished_at")
    )
    order = (
        comparisons["n"],
        comparisons["changed"],
        comparisons["decided"],
        comparisons["taken"],
        project.pair_selection,
    )
    labels = (
        comparisons["n"],
        comparisons["decided"],
        checks["n"],
        checks["finished"],
        project.triage,
        project.triage_threshold,
    )
    return order, labels


def refresh_all(*, seed: int | None = None) -> list[Refreshed]:
    """Refresh every active project with comparisons waiting or in review whose data changed."""
    out = []
    projects = Project.objects.filter(is_active=True, comparisons__state__in=UNDECIDED).distinct()
    for project in projects:
        order, labels = _fingerprints(project)
        seen_order, seen_labels = _last_seen.get(project.pk, (None, None))
        if (order, labels) == (seen_order, seen_labels):
            continue
        out.append(refresh_project(project, seed=seed, labels=labels != seen_labels))
        # Our own writes (routing) change the fingerprints; take them after them.
        _last_seen[project.pk] = _fingerprints(project)
    return out


def refresh_project(
    project: Project,
    *,
    seed: int | None = None,
    explore: float = selection.DEFAULT_EXPLORE,
    labels: bool = True,
) -> Refreshed:
    """Weak labels and triage (unless ``labels`` is False) and the queue's order for one
    project, now."""
    if not project.triage:
        release_pending(project.pk)
    labelled, routed = _label_and_route(project) if labels else (0, {})
    ordered = set_priorities(queue_order(project, seed=seed, explore=explore))
    return Refreshed(project.pk, ordered, labelled, routed)


# Weak labels and triage.


def _label_and_route(project: Project) -> tuple[int, dict[str, int]]:
    found = comparison_votes(project)
    if not found.ids:
        return 0, {}
    states = dict(Comparison.objects.filter(pk__in=found.ids).values_list("pk", "state"))
    routing = dict(Comparison.objects.filter(pk__in=found.ids).values_list("pk", "routing"))
    undecided = np.array(
        [states[pk] in UNDECIDED and not found.pending[n] for n, pk in enumerate(found.ids)],
        dtype=bool,
    )
    if not undecided.any():
        return 0, {}
    decided = int(np.sum(found.labels != weak_labels.UNKNOWN))
    model = weak_labels.fit(found.votes, found.labels)
    rows = np.flatnonzero(undecided)
    proba = weak_labels.predict_proba(model, found.votes[rows])
    labels: dict[int, WeakLabel] = {}
    routed: dict[str, int] = defaultdict(int)
    for n, row in enumerate(rows):
        pk = found.ids[row]
        label = _weak_label(found.votes[row], proba[n], decided)
        unrouted = routing[pk] in (Routing.NONE, Routing.PENDING)
        waiting = states[pk] == ComparisonState.AWAITING_JUDGMENTS and unrouted
        if project.triage and waiting:
            way, why = _route(found.votes[row], proba[n], decided, project.triage_threshold)
            if do_route(pk, way, why, label) is not None:
                routed[way] += 1
                continue
        labels[pk] = label
    return set_weak_labels(labels), dict(routed)


def _weak_label(votes: np.ndarray, proba: np.ndarray, decided: int) -> WeakLabel:
    fired = [
        f"{name}: {SIDES[int(vote)]}"
        for name, vote in zip(LABELLING_FUNCTIONS, votes, strict=True)
        if vote != weak_labels.ABSTAIN
    ]
    return WeakLabel(
        a=round(float(proba[weak_labels.FIRST]), 4),
        b=round(float(proba[weak_labels.SECOND]), 4),
        tie=round(float(proba[weak_labels.TIE]), 4),
        votes=fired,
        decided=decided,
    )


def _route(votes: np.ndarray, proba: np.ndarray, decided: int, threshold: float) -> tuple[str, str]:
    """single or full, and why in a sentence (for reviewers and admins, never annotators)."""
    sure = float(max(proba[weak_labels.FIRST], proba[weak_labels.SECOND]))
    if not weak_labels.decisive(votes[None, :])[0]:
        return Routing.FULL, "no check voted (uninformative): full overlap and review"
    if decided < TRIAGE_MIN_DECIDED:
        return Routing.FULL, (
            f"the label model has learnt from {decided} decided comparisons; triage needs "
            f"{TRIAGE_MIN_DECIDED}: full overlap and review"
        )
    if weak_labels.triage(proba[None, :], votes[None, :], threshold)[0]:
        return Routing.SINGLE, (
            f"checks decisive and the weak label {sure:.0%} sure of one side (threshold "
            f"{threshold:.0%}, label model from {decided} decided comparisons): one annotator, "
            "no review"
        )
    return Routing.FULL, (
        f"checks voted but the weak label is only {sure:.0%} sure of one side (threshold "
        f"{threshold:.0%}): full overlap and review"
    )


# The queue's order.


@dataclass(frozen=True)
class _Waiting:
    pk: int
    first: int  # agent ids
    second: int
    kind: str
    started: bool


def queue_order(
    project: Project, *, seed: int | None = None, explore: float = selection.DEFAULT_EXPLORE
) -> list[tuple[int, float, str]]:
    """(comparison id, priority, why) for every comparison of the project waiting for
    judgments, best first."""
    rows = (
        Comparison.objects.filter(project=project, state=ComparisonState.AWAITING_JUDGMENTS)
        .order_by("created_at", "pk")
        .values_list("pk", "run_a__agent_id", "run_b__agent_id", "task__kind", "slots_taken")
    )
    waiting = [_Waiting(pk, a, b, kind, taken > 0) for pk, a, b, kind, taken in rows]
    if not waiting:
        return []
    order: list[tuple[int, str]] = [
        (w.pk, "already taken by an annotator: finishing it first brings a decision sooner")
        for w in waiting
        if w.started
    ]
    rest = [w for w in waiting if not w.started]
    if project.pair_selection == PairSelection.ACTIVE:
        order += _planned(project, rest, seed=seed, explore=explore)
    else:
        order += [(w.pk, "uniform pair selection: oldest first") for w in rest]
    n = len(order)
    return [(pk, round((n - k) / n, 6), note) for k, (pk, note) in enumerate(order)]


def _planned(
    project: Project, rest: list[_Waiting], *, seed: int | None, explore: float
) -> list[tuple[int, str]]:
    agents = sorted({a for w in rest for a in (w.first, w.second)})
    decided = decided_counts(project, agents) if len(agents) >= 2 else None
    if decided is None:
        note = "no decided comparisons between these agents yet: oldest first"
        return [(w.pk, note) for w in rest]
    model = selection.fitted_model(decided)
    target = target_of(project)
    index = {agent: i for i, agent in enumerate(agents)}
    by_kind, overall = expected_minutes(project)
    # Candidates are (pair, task kind) groups; each holds its comparisons oldest first.
    groups: dict[tuple[int, int, str], list[int]] = defaultdict(list)
    for w in rest:
        i, j = sorted((index[w.first], index[w.second]))
        groups[(i, j, w.kind)].append(w.pk)
    keys = list(groups)
    first = np.array([k[0] for k in keys], dtype=np.int64)
    second = np.array([k[1] for k in keys], dtype=np.int64)
    minutes = np.array([by_kind.get(k[2], overall) for k in keys])
    left = np.array([len(groups[k]) for k in keys])
    taken = [0] * len(keys)
    rng = np.random.default_rng(seed)
    order: list[tuple[int, str]] = []
    for _ in range(min(PLAN_LIMIT, len(rest))):
        pick = selection.choose(
            model, first, second, minutes, rng, allowed=left > 0, target=target, explore=explore
        )
        g = pick.index
        order.append((groups[keys[g]][taken[g]], _why(pick, target, keys[g][2], float(minutes[g]))))
        taken[g] += 1
        left[g] -= 1
        model = selection.update(model, int(first[g]), int(second[g]))
    planned = {pk for pk, _ in order}
    later = "past the planned head of the queue: oldest first"
    return order + [(w.pk, later) for w in rest if w.pk not in planned]


def _why(pick: selection.Pick, target: selection.Target, kind: str, minutes: float) -> str:
    if pick.explored:
        return selection.describe(pick, target, minutes)
    return (
        f"{selection.describe(pick, target, minutes)} ({kind} tasks); "
        f"{pick.per_minute * 60:.3g} per expert hour"
    )


@dataclass(frozen=True)
class Next:
    public_id: str
    task: str
    kind: str
    first: str  # agent names (the page is for admins and authors)
    second: str
    priority: float
    why: str
    taken: int  # places taken


def next_in_queue(project: Project, n: int = 10) -> list[Next]:
    """The comparisons the queue hands out next (before languages and the pair cap, which
    depend on who asks), with why they come first."""
    rows = (
        Comparison.objects.filter(project=project, state=ComparisonState.AWAITING_JUDGMENTS)
        .select_related("task", "run_a__agent", "run_b__agent")
        .order_by("-priority", "created_at", "pk")[:n]
    )
    return [
        Next(
            c.public_id,
            c.task.title,
            c.task.kind,
            c.run_a.agent.name,
            c.run_b.agent.name,
            c.priority,
            c.priority_note or "not ordered yet: waits for the worker's next sweep (oldest first)",
            c.slots_taken,
        )
        for c in rows
    ]
