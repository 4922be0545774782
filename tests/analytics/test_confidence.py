"""Standard errors, ties as half a win, provisional agents and the power estimate."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from marlin.analytics.bt import ELO_PER_LOG, PairCounts, fit_davidson, pair_counts_from_arrays
from marlin.analytics.confidence import (
    certainty,
    comparisons_to_separate,
    fisher_information,
    rank_with,
    standard_errors,
    ties_as_half_wins,
)

REALDATA = Path("/work/shared/realdata/pairwise")


def simulate(strengths: list[float], n: int, nu: float, seed: int) -> PairCounts:
    """n Davidson comparisons between random pairs of agents with the given log-strengths."""
    rng = np.random.default_rng(seed)
    k = len(strengths)
    theta = np.array(strengths)
    a = rng.integers(0, k, size=n)
    b = (a + rng.integers(1, k, size=n)) % k
    half = (theta[a] - theta[b]) / 2
    w, l_, t = np.exp(half), np.exp(-half), np.full(n, nu)
    u = rng.random(n) * (w + l_ + t)
    outcome = np.where(u < w, 1.0, np.where(u < w + l_, 0.0, 0.5))
    return pair_counts_from_arrays([f"a{i}" for i in range(k)], a, b, outcome)


def loglik(counts: PairCounts, params: np.ndarray) -> float:
    """Davidson log-likelihood written out per pair, independently of the code under test."""
    k = len(counts.agents)
    theta, nu = params[:k], math.exp(params[k])
    total = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            h = (theta[i] - theta[j]) / 2
            denom = math.exp(h) + math.exp(-h) + nu
            total += counts.wins[i, j] * (h - math.log(denom))
            total += counts.wins[j, i] * (-h - math.log(denom))
            total += counts.ties[i, j] * (math.log(nu) - math.log(denom))
    return total


def test_information_equals_the_negative_hessian_of_the_log_likelihood() -> None:
    counts = simulate([0.8, 0.2, -0.3, -0.7], 400, 0.6, seed=1)
    theta, nu = fit_davidson(counts, ridge=0.0)
    params = np.append(theta, math.log(nu))
    h = 1e-4
    size = len(params)
    hessian = np.zeros((size, size))
    for a in range(size):
        for b in range(size):
            e_a, e_b = np.eye(size)[a] * h, np.eye(size)[b] * h
            hessian[a, b] = (
                loglik(counts, params + e_a + e_b)
                - loglik(counts, params + e_a - e_b)
                - loglik(counts, params - e_a + e_b)
                + loglik(counts, params - e_a - e_b)
            ) / (4 * h * h)
    # For this exponential-family model observed and expected information coincide.
    np.testing.assert_allclose(fisher_information(counts, theta, nu), -hessian, atol=2e-3)


def test_standard_errors_agree_with_the_bootstrap() -> None:
    counts = simulate([1.0, 0.5, 0.0, -0.5, -1.0], 1500, 0.5, seed=2)
    ranking = rank_with(counts, "davidson", rounds=300, seed=3)
    sure = certainty(counts, ranking)
    for agent, se in zip(ranking.agents, sure.se, strict=True):
        # The bootstrap's central 95% is about 2 * 1.96 standard errors wide.
        width = (agent.upper - agent.lower) / (2 * 1.96)
        assert se == pytest.approx(width, rel=0.2), agent.agent
        assert sure.provisional[ranking.agents.index(agent)] == ""


def test_the_sum_to_zero_covariance_has_rows_summing_to_zero() -> None:
    counts = simulate([0.3, 0.0, -0.3], 300, 0.0, seed=4)
    theta, nu = fit_davidson(counts)
    assert nu == 0.0  # no ties simulated: plain Bradley-Terry
    cov = standard_errors(counts, theta, nu)
    np.testing.assert_allclose(cov.sum(axis=1), 0.0, atol=1e-9)
    assert np.all(np.diag(cov) > 0)


def test_half_wins_turn_each_tie_into_half_a_win_for_both() -> None:
    counts = PairCounts(
        ["x", "y"], np.array([[0.0, 3.0], [1.0, 0.0]]), np.array([[0.0, 2.0], [2.0, 0.0]])
    )
    half = ties_as_half_wins(counts)
    np.testing.assert_array_equal(half.wins, [[0, 4], [2, 0]])
    assert half.ties.sum() == 0 and half.n_comparisons == counts.n_comparisons == 6
    ranking = rank_with(counts, "half", rounds=0)
    assert ranking.tie_parameter == 0.0
    # Plain BT with 4 points of 6 for x: p = 2/3, so the log-odds gap is log 2.
    gap = ranking.agents[0].log_strength - ranking.agents[1].log_strength
    assert ranking.agents[0].agent == "x" and gap == pytest.approx(math.log(2), abs=1e-3)
    with pytest.raises(ValueError, match="tie model must be one of davidson, half"):
        rank_with(counts, "coin")  # type: ignore[arg-type]


@pytest.mark.skipif(not REALDATA.is_dir(), reason="shared real data is absent")
def test_both_tie_treatments_on_springalls_contests_rank_alike() -> None:
    with (REALDATA / "bradleyterry2" / "springall_contests.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "springall_contests.csv is empty"
    a_key, b_key = "row", "col"
    agents = sorted({r[a_key] for r in rows} | {r[b_key] for r in rows})
    index = {a: i for i, a in enumerate(agents)}
    wins = np.zeros((len(agents), len(agents)))
    ties = np.zeros_like(wins)
    for r in rows:
        i, j = index[r[a_key]], index[r[b_key]]
        wins[i, j] += float(r["win"])
        wins[j, i] += float(r["loss"])
        ties[i, j] += float(r["tie"])
        ties[j, i] += float(r["tie"])
    counts = PairCounts(agents, wins, ties)
    davidson = rank_with(counts, "davidson", rounds=0)
    half = rank_with(counts, "half", rounds=0)
    assert davidson.tie_parameter > 0 and half.tie_parameter == 0
    assert [a.agent for a in davidson.agents][:2] == [a.agent for a in half.agents][:2]


def test_few_comparisons_and_unbounded_agents_are_provisional() -> None:
    # c never lost: no finite upper bound; d played twice only.
    wins = np.zeros((4, 4))
    wins[0, 1], wins[1, 0] = 8, 6
    wins[2, 0], wins[2, 1] = 7, 7
    wins[3, 0], wins[0, 3] = 1, 1
    counts = PairCounts(["a", "b", "c", "d"], wins, np.zeros((4, 4)))
    ranking = rank_with(counts, "davidson", rounds=50)
    sure = certainty(counts, ranking, min_comparisons=5)
    reasons = dict(zip([a.agent for a in ranking.agents], sure.provisional, strict=True))
    assert "no finite upper bound" in reasons["c"] and "lower" not in reasons["c"]
    assert "only 2 comparisons" in reasons["d"]
    # With c out of reach, the others' scores (centred) have no finite lower bound.
    assert "no finite lower bound" in reasons["a"] and "only" not in reasons["a"]
    se = dict(zip([a.agent for a in ranking.agents], sure.se, strict=True))
    assert math.isinf(se["c"])
    # Two agents who beat each other, 14 comparisons: nothing provisional.
    enough = PairCounts(["a", "b"], np.array([[0.0, 8.0], [6.0, 0.0]]), np.zeros((2, 2)))
    both = rank_with(enough, "davidson", rounds=20)
    assert certainty(enough, both).provisional == ["", ""]


def test_power_estimate_is_about_right_for_two_agents() -> None:
    """Predict N for 80% power, then check by simulation that about 80% of runs separate."""
    gap = 0.4
    pilot = simulate([gap / 2, -gap / 2], 100, 0.0, seed=5)
    ranking = rank_with(pilot, "davidson", rounds=0)
    cov = certainty(pilot, ranking).covariance
    estimate = comparisons_to_separate(ranking, cov, 1)
    assert estimate.more_comparisons is not None and estimate.more_comparisons > 0
    # Plan with the true gap so the check measures the formula, not the pilot's luck.
    p = 1 / (1 + math.exp(-gap))
    planned = math.ceil((1.96 + 0.8416) ** 2 / (gap**2 * p * (1 - p)))
    separated = 0
    trials = 300
    rng = np.random.default_rng(6)
    for _ in range(trials):
        won = rng.binomial(planned, p)
        p_hat = won / planned
        se = math.sqrt(1 / (planned * p_hat * (1 - p_hat)))
        separated += abs(math.log(p_hat / (1 - p_hat))) / se >= 1.96
    assert 0.72 <= separated / trials <= 0.88
    # The estimate from the pilot follows the same formula with the pilot's gap and n.
    pilot_gap = ranking.agents[0].log_strength - ranking.agents[1].log_strength
    expected = 100 * (estimate.se / ELO_PER_LOG * (1.96 + 0.8416) / pilot_gap) ** 2 - 100
    assert estimate.more_comparisons == pytest.approx(expected, abs=2)


def test_a_clear_gap_is_already_separated() -> None:
    counts = simulate([1.5, -1.5], 400, 0.0, seed=7)
    ranking = rank_with(counts, "davidson", rounds=0)
    estimate = comparisons_to_separate(ranking, certainty(counts, ranking).covariance, 1)
    assert estimate.separated and estimate.more_comparisons == 0 and estimate.z > 5
    with pytest.raises(ValueError, match="upper_rank must lie in 1..1"):
        comparisons_to_separate(ranking, certainty(counts, ranking).covariance, 2)
