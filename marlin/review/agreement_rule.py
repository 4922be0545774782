"""The project's agreement rule and the decision rule, as plain Python (no Django).

Ratings use the 7-point scale of marlin.tasks.rubric: -3 (A much better) .. 0 (tie) .. 3
(B much better); None means "not applicable". See docs/workflow.md for the rules in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

Ratings = Mapping[str, int | None]


@dataclass(frozen=True)
class Verdict:
    """One judgment as the rule sees it: the overall preference and the per-criterion ratings."""

    overall: int
    ratings: Ratings = field(default_factory=dict)


@dataclass(frozen=True)
class Agreement:
    agrees: bool
    reasons: tuple[str, ...] = ()


def direction(value: int) -> int:
    """-1 prefers A, 0 is a tie, 1 prefers B."""
    return (value > 0) - (value < 0)


def direction_label(value: int) -> str:
    return {-1: "A", 0: "tie", 1: "B"}[direction(value)]


def _steps_apart(first: int | None, second: int | None) -> int:
    # "Not applicable" counts as a tie here: a rater who finds a criterion irrelevant and one who
    # sees a strong preference on it disagree as much as a tie and that preference would.
    return abs((first or 0) - (second or 0))


def pair_agreement(first: Verdict, second: Verdict, max_steps: int) -> Agreement:
    """Two judgments agree when their overall preferences point the same way (both A, both B,
    or both exactly a tie) and no criterion, the overall one included, is more than `max_steps`
    scale steps apart. Criteria only one of the two rated (different rubric versions) are
    skipped."""
    reasons: list[str] = []
    if direction(first.overall) != direction(second.overall):
        reasons.append(
            f"overall preferences point different ways "
            f"({direction_label(first.overall)} vs {direction_label(second.overall)})"
        )
    elif _steps_apart(first.overall, second.overall) > max_steps:
        reasons.append(
            f"overall is {_steps_apart(first.overall, second.overall)} steps apart "
            f"(at most {max_steps} allowed)"
        )
    for key in sorted(set(first.ratings) & set(second.ratings)):
        apart = _steps_apart(first.ratings[key], second.ratings[key])
        if apart > max_steps:
            reasons.append(f"{key} is {apart} steps apart (at most {max_steps} allowed)")
    return Agreement(not reasons, tuple(reasons))


def judgments_agree(verdicts: Sequence[Verdict], max_steps: int) -> Agreement:
    """Every pair must agree; the reasons name the pairs (1-based, in the order given)."""
    reasons: list[str] = []
    for (i, first), (j, second) in combinations(enumerate(verdicts, start=1), 2):
        result = pair_agreement(first, second, max_steps)
        reasons.extend(f"judgments {i} and {j}: {reason}" for reason in result.reasons)
    return Agreement(not reasons, tuple(reasons))


def median_toward_zero(values: Sequence[int]) -> int:
    """The median; with an even count, the mean of the two middle values rounded toward zero
    (toward a tie), so that a decision is never stronger than the judgments behind it."""
    if not values:
        raise ValueError("the median of no values is undefined")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    total = ordered[middle - 1] + ordered[middle]
    return direction(total) * (abs(total) // 2)


def decide(verdicts: Sequence[Verdict]) -> Verdict:
    """The decision from agreeing judgments: per value, the median rounded toward zero, over the
    judgments that rated it; a criterion nobody rated stays not applicable."""
    if not verdicts:
        raise ValueError("a decision needs at least one judgment")
    keys = sorted({key for verdict in verdicts for key in verdict.ratings})
    ratings: dict[str, int | None] = {}
    for key in keys:
        rated = [r for v in verdicts if (r := v.ratings.get(key)) is not None]
        ratings[key] = median_toward_zero(rated) if rated else None
    return Verdict(median_toward_zero([v.overall for v in verdicts]), ratings)


def is_accepted(judgment_overall: int, decision_overall: int) -> bool:
    """A judgment is accepted when its overall preference points the way the decision does."""
    return direction(judgment_overall) == direction(decision_overall)
