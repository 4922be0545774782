"""Active pair selection (marlin.analytics.selection): values, picks, exploration, constraints."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from marlin.analytics import selection
from marlin.analytics.bt import PairCounts, fit_davidson


def _counts(k: int, pairs: dict[tuple[int, int], int]) -> PairCounts:
    wins = np.zeros((k, k))
    for (a, b), n in pairs.items():
        wins[a, b] += n / 2
        wins[b, a] += n / 2
    return PairCounts([f"a{i}" for i in range(k)], wins, np.zeros((k, k)))


def test_update_matches_refitting_the_information() -> None:
    # The rank-one update must equal the covariance recomputed with the comparison counted.
    theta = np.array([0.8, 0.1, -0.3, -0.6])
    before = selection.model_of(_counts(4, {(0, 1): 4, (1, 2): 4, (2, 3): 4}), theta, 0.4)
    updated = selection.update(before, 0, 3)
    recomputed = selection.model_of(
        _counts(4, {(0, 1): 4, (1, 2): 4, (2, 3): 4, (0, 3): 1}), theta, 0.4
    )
    # Fisher information of the tie parameter couples in slightly; the theta block dominates.
    np.testing.assert_allclose(updated.cov, recomputed.cov, atol=2e-3)
    assert np.trace(updated.cov) < np.trace(before.cov)


def test_an_unseen_pair_between_well_measured_ones_is_worth_more_than_a_repeat() -> None:
    theta = np.zeros(4)
    model = selection.model_of(_counts(4, {(0, 1): 30, (2, 3): 30, (1, 2): 1}), theta, 0.3)
    first, second = selection.all_pairs(4)
    value = selection.values(model, first, second)
    by_pair = dict(zip(zip(first.tolist(), second.tolist(), strict=True), value, strict=True))
    assert by_pair[(0, 3)] > by_pair[(0, 1)]
    assert by_pair[(1, 2)] > by_pair[(2, 3)]
    assert np.all(value > 0)


def test_a_lopsided_pair_is_worth_less_than_an_even_one() -> None:
    theta = np.array([3.0, 0.0, 0.1, -3.1])
    model = selection.model_of(_counts(4, {p: 2 for p in [(0, 1), (1, 2), (2, 3)]}), theta, 0.3)
    w = selection.outcome_information(theta, 0.3, np.array([0, 1]), np.array([3, 2]))
    assert w[0] < w[1] / 5
    swap = selection.values(model, np.array([0, 1]), np.array([3, 2]), target="swap")
    assert swap[1] > swap[0]


def test_choose_prefers_value_per_minute_and_respects_the_blinding_mask() -> None:
    theta = np.zeros(3)
    model = selection.model_of(_counts(3, {(0, 1): 1, (1, 2): 1, (0, 2): 1}), theta, 0.3)
    first = np.array([0, 1, 0])
    second = np.array([1, 2, 2])
    rng = np.random.default_rng(0)
    # Equal values: the cheap candidate wins.
    pick = selection.choose(model, first, second, np.array([60.0, 20.0, 60.0]), rng, explore=0)
    assert pick.index == 1 and not pick.explored
    allowed = np.array([True, False, True])
    for _ in range(50):
        pick = selection.choose(
            model, first, second, np.array([60.0, 20.0, 60.0]), rng, allowed=allowed, explore=0.5
        )
        assert pick.index != 1


def test_the_exploration_floor_picks_uniformly() -> None:
    k = 6
    theta = np.linspace(-1, 1, k)
    model = selection.model_of(_counts(k, {(0, 1): 50}), theta, 0.3)
    first, second = selection.all_pairs(k)
    rng = np.random.default_rng(1)
    picks = [
        selection.choose(model, first, second, np.ones(first.size), rng, explore=1.0)
        for _ in range(3000)
    ]
    assert all(p.explored for p in picks)
    seen = np.bincount([p.index for p in picks], minlength=first.size)
    assert seen.min() > 3000 / first.size * 0.6
    greedy = selection.choose(model, first, second, np.ones(first.size), rng, explore=0.0)
    assert (int(first[greedy.index]), int(second[greedy.index])) != (0, 1)


def test_a_plan_spreads_over_pairs_and_can_take_each_candidate_once() -> None:
    k = 5
    model = selection.model_of(_counts(k, {}), np.zeros(k), 0.3)
    first, second = selection.all_pairs(k)
    rng = np.random.default_rng(2)
    picks = selection.plan(model, first, second, np.ones(first.size), 10, rng, explore=0)
    assert len({p.index for p in picks}) == 10  # every pair once before any twice
    once = selection.plan(
        model, first, second, np.ones(first.size), 20, rng, explore=0.5, repeat=False
    )
    assert len(once) == 10 and len({p.index for p in once}) == 10


def test_bad_input_is_refused_with_a_clear_message() -> None:
    model = selection.model_of(_counts(3, {(0, 1): 1}), np.zeros(3), 0.0)
    rng = np.random.default_rng(0)
    one = np.array([0])
    two = np.array([1])
    with pytest.raises(selection.SelectionError, match="positive"):
        selection.choose(model, one, two, np.array([0.0]), rng)
    with pytest.raises(selection.SelectionError, match="blinding"):
        selection.choose(model, one, two, np.array([5.0]), rng, allowed=np.array([False]))
    with pytest.raises(selection.SelectionError, match="itself"):
        selection.values(model, one, one)
    with pytest.raises(selection.SelectionError, match="target"):
        selection.values(model, one, two, target="depth")  # type: ignore[arg-type]
    with pytest.raises(selection.SelectionError, match="shape"):
        selection.model_of(_counts(3, {}), np.zeros(2), 0.0)
    with pytest.raises(selection.SelectionError, match="two agents"):
        selection.all_pairs(1)


def test_an_agent_that_never_lost_stays_in_play() -> None:
    # Agent 0 beat everyone: the flat fit sends its strength far up and its pairs look worthless;
    # the selection's own fit (the covariance's prior) keeps them worth choosing.
    k = 4
    wins = np.zeros((k, k))
    wins[0, 1:] = 3
    wins[1, 2] = wins[2, 1] = wins[2, 3] = wins[3, 2] = wins[1, 3] = wins[3, 1] = 5
    counts = PairCounts([f"a{i}" for i in range(k)], wins, np.zeros((k, k)))
    flat_theta, nu = fit_davidson(counts)
    flat = selection.model_of(counts, flat_theta, nu)
    fitted = selection.fitted_model(counts)
    first, second = np.array([0, 1]), np.array([1, 2])
    flat_values = selection.values(flat, first, second)
    fitted_values = selection.values(fitted, first, second)
    assert flat_values[0] < 0.25 * flat_values[1]
    assert fitted_values[0] > 2 * fitted_values[1]


def test_the_order_value_of_two_agents_is_the_expected_drop_of_their_misorder_chance() -> None:
    # Two agents: P(wrong order) is Phi(-g / S) now; after m more outcomes the gap estimate
    # moves by N(0, S^2 - S'^2) and its sd falls to S'. Integrate that by quadrature for each m
    # of the look-ahead; the value is the best drop per comparison.
    theta = np.array([0.2, -0.2])
    model = selection.model_of(_counts(2, {(0, 1): 6}), theta, 0.4)
    value = selection.values(model, np.array([0]), np.array([1]), target="order")[0]
    var = model.cov[0, 0] + model.cov[1, 1] - 2 * model.cov[0, 1]
    w = selection.outcome_information(theta, 0.4, np.array([0]), np.array([1]))[0]
    gap = 0.4

    def drop(m: int) -> float:
        var_after = var - m * w * var**2 / (1 + m * w * var)
        moved = np.sqrt(var - var_after)

        def after(z: float) -> float:
            return float(norm.cdf(-abs(gap + moved * z) / np.sqrt(var_after)) * norm.pdf(z))

        return float(norm.cdf(-gap / np.sqrt(var)) - quad(after, -10, 10, points=[-gap / moved])[0])

    per_comparison = [drop(m) / m for m in selection.LOOKAHEAD]
    assert value > 0
    assert value == pytest.approx(max(per_comparison), rel=1e-3)
    # One outcome alone is worth less per comparison than a few here (the gap is 0.46 sd wide).
    assert per_comparison[0] < max(per_comparison)


def test_the_order_target_spends_the_next_comparison_where_the_order_is_in_doubt() -> None:
    # Agents 1 and 2 are 0.05 apart; every other neighbour is 2 apart (about 350 Elo points):
    # only their order is in doubt, so the order target compares them.
    theta = np.array([2.0, 0.05, 0.0, -2.05])
    pairs = {p: 4 for p in [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]}
    model = selection.model_of(_counts(4, pairs), theta, 0.3)
    first, second = selection.all_pairs(4)
    pick = selection.choose(
        model,
        first,
        second,
        np.ones(first.size),
        np.random.default_rng(0),
        target="order",
        explore=0.0,
    )
    assert (int(first[pick.index]), int(second[pick.index])) == (1, 2)
    value = selection.values(model, first, second, target="order")
    assert value[pick.index] > 3 * np.sort(value)[-2]


def test_the_floor_keeps_lopsided_pairs_in_a_plan() -> None:
    # The order target alone would never compare agents 0 and 3 here; a floor of 20% uniform
    # picks does, and about 20% of a long plan is exploration.
    theta = np.array([2.0, 0.05, 0.0, -2.05])
    model = selection.model_of(_counts(4, {(0, 1): 4, (1, 2): 4, (2, 3): 4}), theta, 0.3)
    first, second = selection.all_pairs(4)
    rng = np.random.default_rng(5)
    greedy = selection.plan(
        model, first, second, np.ones(first.size), 60, rng, target="order", explore=0.0
    )
    lopsided = int(np.flatnonzero((first == 0) & (second == 3))[0])
    assert lopsided not in {p.index for p in greedy}
    picks = selection.plan(
        model, first, second, np.ones(first.size), 600, rng, target="order", explore=0.2
    )
    explored = sum(p.explored for p in picks)
    assert 0.15 * 600 < explored < 0.25 * 600  # binomial(600, 0.2): sd about 10
    assert lopsided in {p.index for p in picks if p.explored}
