"""Style control: the Davidson model with per-comparison covariates (patch size differences)."""

from __future__ import annotations

import numpy as np
import pytest

from marlin.analytics.bt import BTError
from marlin.analytics.style import fit_with_covariates


def simulate_with_style(
    theta: np.ndarray, gamma: np.ndarray, nu: float, n: int, seed: int
) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    k = len(theta)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    # Stronger agents write longer patches here, so size and strength are confounded.
    x_a = np.stack([theta[a] + rng.normal(4, 1, n), rng.poisson(3, n)], axis=1).astype(float)
    x_b = np.stack([theta[b] + rng.normal(4, 1, n), rng.poisson(3, n)], axis=1).astype(float)
    half = 0.5 * (theta[a] - theta[b] + (x_a - x_b) @ gamma)
    denom = np.exp(half) + np.exp(-half) + nu
    u = rng.random(n)
    p_a, p_t = np.exp(half) / denom, nu / denom
    outcome = np.where(u < p_a, 1.0, np.where(u < p_a + p_t, 0.5, 0.0))
    return a, b, outcome, x_a, x_b


def test_it_recovers_style_coefficients_and_separates_them_from_strength() -> None:
    theta = np.array([0.6, 0.2, 0.0, -0.3, -0.5])
    gamma = np.array([0.5, -0.1])
    a, b, y, x_a, x_b = simulate_with_style(theta, gamma, 0.6, 60_000, seed=1)
    ids = [f"agent-{i}" for i in range(5)]
    fit = fit_with_covariates(ids, a, b, y, x_a, x_b, rounds=0)
    for name, true in zip(fit.coefficients, gamma, strict=True):
        assert abs(fit.coefficients[name] - true) < 4 * fit.std_errors[name] + 0.01
        assert 0 < fit.std_errors[name] < 0.05
    assert fit.tie_parameter == pytest.approx(0.6, abs=0.05)
    controlled = {s.agent: s for s in fit.agents}
    true_centred = theta - theta.mean()
    score = np.array([controlled[i].score for i in ids])
    est = (score - 1000) / (400 / np.log(10))
    assert np.max(np.abs(est - true_centred)) < 0.05
    # The plain fit credits size to the agents; the controlled spread is the true one.
    plain_spread = controlled["agent-0"].plain_score - controlled["agent-4"].plain_score
    assert plain_spread > controlled["agent-0"].score - controlled["agent-4"].score
    assert all(s.lower < s.score < s.upper for s in fit.agents)


def test_without_covariate_differences_it_matches_the_plain_ranking() -> None:
    theta = np.array([0.5, 0.0, -0.5])
    a, b, y, _, _ = simulate_with_style(theta, np.zeros(2), 0.3, 5_000, seed=2)
    same = np.ones((len(a), 2))
    fit = fit_with_covariates(["x", "y", "z"], a, b, y, same, same, rounds=0)
    for s in fit.agents:
        assert s.score == pytest.approx(s.plain_score, abs=0.05)
        assert s.rank == s.plain_rank
    assert fit.plain.agents[0].agent == "x"


def test_it_rejects_covariates_of_the_wrong_shape_or_with_nan() -> None:
    a, b, y = np.array([0, 1]), np.array([1, 0]), np.array([1.0, 0.0])
    with pytest.raises(BTError, match=r"covariates must be \(2, 2\) arrays"):
        fit_with_covariates(["p", "q"], a, b, y, np.ones((3, 2)), np.ones((3, 2)), rounds=0)
    bad = np.array([[1.0, np.nan], [1.0, 2.0]])
    with pytest.raises(BTError, match="NaN or infinite"):
        fit_with_covariates(["p", "q"], a, b, y, bad, np.ones((2, 2)), rounds=0)
