"""The vectorised Newton fit and bootstrap agree with a plain per-round L-BFGS-B fit.

The reference below is the implementation Marlin used before the fit was vectorised (one scipy
L-BFGS-B call per bootstrap round on the K x K table, with bounds); the bootstrap draws are the
same multinomial redraws, so scores, intervals and rank ranges must agree to solver tolerance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from marlin.analytics.bt import (
    ELO_BASE,
    ELO_PER_LOG,
    LOG_NU_BOUNDS,
    THETA_BOUNDS,
    PairCounts,
    fit_davidson,
    pair_counts,
    pair_counts_from_arrays,
    rank,
)

REALDATA = Path("/work/shared/realdata/pairwise")


def reference_negloglik(
    params: np.ndarray,
    wins: np.ndarray,
    ties: np.ndarray,
    totals: np.ndarray,
    ridge: float,
    with_ties: bool,
) -> tuple[float, np.ndarray]:
    k = wins.shape[0]
    theta = params[:k]
    log_nu = params[k] if with_ties else -np.inf
    ti, tj = theta[:, None], theta[None, :]
    tie_lin = log_nu + 0.5 * (ti + tj)
    m = np.maximum(np.maximum(ti, tj), tie_lin)
    denom = np.exp(ti - m) + np.exp(tj - m) + np.exp(tie_lin - m)
    log_denom = m + np.log(denom)
    p_win, p_tie = np.exp(ti - m) / denom, np.exp(tie_lin - m) / denom
    ll = float(np.sum(wins.sum(axis=1) * theta) - 0.5 * np.sum(totals * log_denom))
    grad_theta = wins.sum(axis=1) - np.sum(totals * p_win, axis=1)
    grad = np.empty_like(params)
    if with_ties:
        ll += 0.5 * float(np.sum(ties * tie_lin)) - ridge * float(log_nu) ** 2
        grad_theta += 0.5 * (ties.sum(axis=1) - np.sum(totals * p_tie, axis=1))
        grad[k] = 0.5 * float(np.sum(ties) - np.sum(totals * p_tie)) - 2 * ridge * log_nu
    ll -= ridge * float(theta @ theta)
    grad[:k] = grad_theta - 2 * ridge * theta
    return -ll, -grad


def reference_fit(
    counts: PairCounts, ridge: float = 1e-4, start: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    k = len(counts.agents)
    with_ties = bool(counts.ties.sum() > 0)
    n_params = k + 1 if with_ties else k
    x0 = np.zeros(n_params) if start is None else start[:n_params].copy()
    res = minimize(
        reference_negloglik,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[THETA_BOUNDS] * k + ([LOG_NU_BOUNDS] if with_ties else []),
        args=(counts.wins, counts.ties, counts.totals, ridge, with_ties),
        options={"maxiter": 5000, "gtol": 1e-10, "ftol": 1e-15},
    )
    theta = res.x[:k] - res.x[:k].mean()
    return theta, float(np.exp(res.x[k])) if with_ties else 0.0


def reference_bootstrap(counts: PairCounts, rounds: int, seed: int) -> np.ndarray:
    """Per-round refits on the same per-pair multinomial redraws rank() makes."""
    k = len(counts.agents)
    theta, nu = reference_fit(counts)
    start = np.append(theta, np.log(nu) if nu > 0 else 0.0)
    iu, ju = np.triu_indices(k, k=1)
    n = counts.totals[iu, ju]
    iu, ju, n = iu[n > 0], ju[n > 0], n[n > 0]
    cells = np.stack([counts.wins[iu, ju], counts.wins[ju, iu], counts.ties[iu, ju]], axis=1)
    draws = np.random.default_rng(seed).multinomial(
        n.astype(np.int64), cells / n[:, None], size=(rounds, len(n))
    )
    boot = np.empty((rounds, k))
    for r in range(rounds):
        wins, ties = np.zeros((k, k)), np.zeros((k, k))
        wins[iu, ju], wins[ju, iu] = draws[r, :, 0], draws[r, :, 1]
        ties[iu, ju] = ties[ju, iu] = draws[r, :, 2]
        boot[r], _ = reference_fit(PairCounts(counts.agents, wins, ties), start=start)
    return ELO_PER_LOG * boot + ELO_BASE


def assert_same_ranking(counts: PairCounts, rounds: int, seed: int, atol: float) -> None:
    ranking = rank(counts, rounds=rounds, seed=seed)
    theta, nu = reference_fit(counts)
    by_agent = {s.agent: s for s in ranking.agents}
    scores = np.array([by_agent[a].score for a in counts.agents])
    np.testing.assert_allclose(scores, ELO_PER_LOG * theta + ELO_BASE, atol=atol)
    assert ranking.tie_parameter == pytest.approx(nu, rel=1e-4, abs=1e-9)
    boot = reference_bootstrap(counts, rounds, seed)
    lower = np.array([by_agent[a].lower for a in counts.agents])
    upper = np.array([by_agent[a].upper for a in counts.agents])
    finite = np.isfinite(lower) & np.isfinite(upper)
    np.testing.assert_allclose(lower[finite], np.quantile(boot, 0.025, axis=0)[finite], atol=atol)
    np.testing.assert_allclose(upper[finite], np.quantile(boot, 0.975, axis=0)[finite], atol=atol)


def simulated(k: int, nu: float, per_pair: int, seed: int) -> PairCounts:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, k)
    iu, ju = np.triu_indices(k, k=1)
    a, b = np.repeat(iu, per_pair), np.repeat(ju, per_pair)
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + nu
    u = rng.random(a.size)
    p_a, p_t = np.exp(half) / denom, nu / denom
    outcome = np.where(u < p_a, 1.0, np.where(u < p_a + p_t, 0.5, 0.0))
    return pair_counts_from_arrays([f"agent-{i}" for i in range(k)], a, b, outcome)


def test_it_matches_per_round_lbfgsb_on_simulated_data_with_ties() -> None:
    assert_same_ranking(simulated(k=8, nu=0.5, per_pair=30, seed=3), rounds=60, seed=5, atol=1e-3)


def test_it_matches_plain_bradley_terry_without_ties_on_a_sparse_design() -> None:
    rng = np.random.default_rng(11)
    k = 12
    a = rng.integers(0, k, 400)
    b = (a + rng.integers(1, k, 400)) % k
    strength = np.linspace(-1.5, 1.5, k)
    outcome = (rng.random(400) < 1 / (1 + np.exp(strength[b] - strength[a]))).astype(float)
    counts = pair_counts_from_arrays([f"m{i}" for i in range(k)], a, b, outcome)
    assert counts.ties.sum() == 0
    assert_same_ranking(counts, rounds=60, seed=2, atol=1e-3)


def test_rounds_without_ties_when_the_data_have_a_few_fit_plain_bradley_terry() -> None:
    # One tie among 60 comparisons: many resamples have none, and those rounds fit nu = 0.
    outcomes = [("a", "b", 1.0)] * 12 + [("b", "a", 1.0)] * 8 + [("b", "c", 1.0)] * 11
    outcomes += [("c", "b", 1.0)] * 9 + [("a", "c", 1.0)] * 10 + [("c", "a", 1.0)] * 9
    outcomes += [("a", "c", 0.5)]
    counts = pair_counts(["a", "b", "c"], outcomes)
    assert_same_ranking(counts, rounds=80, seed=4, atol=1e-3)


def test_a_tie_parameter_beyond_its_bound_is_held_at_the_bound_as_before() -> None:
    # Every comparison a tie: only the ridge holds log(nu), near 13, above LOG_NU_BOUNDS[1].
    outcomes = [("a", "b", 0.5)] * 400 + [("b", "c", 0.5)] * 400 + [("a", "c", 0.5)] * 400
    counts = pair_counts(["a", "b", "c"], outcomes)
    theta, nu = fit_davidson(counts)
    ref_theta, ref_nu = reference_fit(counts)
    assert np.log(nu) == pytest.approx(LOG_NU_BOUNDS[1]) == np.log(ref_nu)
    np.testing.assert_allclose(theta, ref_theta, atol=1e-6)


def test_an_agent_that_never_lost_gets_the_same_ridge_held_estimate() -> None:
    outcomes = [("champ", "b", 1.0)] * 5 + [("c", "champ", 0.0)] * 4
    outcomes += [("b", "c", 1.0)] * 3 + [("b", "c", 0.0)] * 3 + [("b", "c", 0.5)]
    counts = pair_counts(["champ", "b", "c"], outcomes)
    theta, nu = fit_davidson(counts)
    ref_theta, ref_nu = reference_fit(counts)
    # The likelihood is nearly flat out there; both solvers stop within a few Elo points.
    np.testing.assert_allclose(theta, ref_theta, atol=0.05)
    assert theta[0] > 5  # far above the others, held finite by the ridge
    assert nu == pytest.approx(ref_nu, rel=1e-3)


@pytest.mark.skipif(not REALDATA.is_dir(), reason="shared real data is absent")
@pytest.mark.slow
def test_it_matches_per_round_lbfgsb_on_the_llmfao_judgments() -> None:
    with (REALDATA / "llmfao" / "crowd-comparisons.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    models = sorted({r["left"] for r in rows} | {r["right"] for r in rows})
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    counts = pair_counts(models, [(r["left"], r["right"], value[r["winner"]]) for r in rows])
    assert_same_ranking(counts, rounds=40, seed=0, atol=2e-3)
