"""The agreement and decision rules, as plain Python (no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marlin.review.agreement_rule import (
    Verdict,
    decide,
    direction,
    is_accepted,
    judgments_agree,
    median_toward_zero,
    pair_agreement,
)


def test_same_direction_within_the_step_limit_agrees() -> None:
    result = pair_agreement(Verdict(-3, {"correctness": -3}), Verdict(-1, {"correctness": -1}), 2)
    assert result.agrees and result.reasons == ()


def test_opposite_directions_disagree_and_say_so() -> None:
    result = pair_agreement(Verdict(-1), Verdict(1), 3)
    assert not result.agrees
    assert result.reasons == ("overall preferences point different ways (A vs B)",)


def test_a_tie_only_agrees_with_a_tie() -> None:
    assert pair_agreement(Verdict(0), Verdict(0), 2).agrees
    slight = pair_agreement(Verdict(0), Verdict(-1), 2)
    assert not slight.agrees and "A" in slight.reasons[0] and "tie" in slight.reasons[0]


def test_a_criterion_too_far_apart_disagrees() -> None:
    result = pair_agreement(Verdict(-2, {"security": -3}), Verdict(-2, {"security": 0}), 2)
    assert result.reasons == ("security is 3 steps apart (at most 2 allowed)",)


def test_not_applicable_counts_as_a_tie_when_comparing() -> None:
    assert pair_agreement(Verdict(-1, {"security": None}), Verdict(-1, {"security": 2}), 2).agrees
    assert not pair_agreement(
        Verdict(-1, {"security": None}), Verdict(-1, {"security": 3}), 2
    ).agrees


def test_criteria_only_one_rubric_version_has_are_skipped() -> None:
    assert pair_agreement(Verdict(-1, {"old_only": -3}), Verdict(-1, {"new_only": 3}), 0).agrees


def test_every_pair_must_agree() -> None:
    result = judgments_agree([Verdict(-1), Verdict(-2), Verdict(1)], 2)
    assert not result.agrees
    assert [r.split(":")[0] for r in result.reasons] == ["judgments 1 and 3", "judgments 2 and 3"]


def test_median_rounds_toward_a_tie() -> None:
    assert median_toward_zero([-2, -1]) == -1
    assert median_toward_zero([2, 3]) == 2
    assert median_toward_zero([-3, -1, -2]) == -2
    assert median_toward_zero([0, 0]) == 0
    with pytest.raises(ValueError):
        median_toward_zero([])


def test_decision_takes_medians_and_keeps_not_applicable_when_nobody_rated() -> None:
    result = decide(
        [Verdict(-2, {"c": -3, "s": None, "m": 1}), Verdict(-1, {"c": -1, "s": None, "m": None})]
    )
    assert result == Verdict(-1, {"c": -2, "m": 1, "s": None})


def test_a_judgment_is_accepted_when_it_points_the_way_of_the_decision() -> None:
    assert is_accepted(-3, -1) and is_accepted(0, 0) and is_accepted(2, 1)
    assert not is_accepted(-1, 0) and not is_accepted(1, -1)


@given(st.sampled_from([-1, 0, 1]), st.lists(st.integers(1, 3), min_size=1, max_size=7))
def test_the_decision_of_agreeing_judgments_keeps_their_direction(
    way: int, sizes: list[int]
) -> None:
    same_way = [way * size for size in sizes]
    result = decide([Verdict(v) for v in same_way])
    assert direction(result.overall) == way
    assert min(same_way) <= result.overall <= max(same_way)
