"""Style control: the Davidson/Bradley-Terry model with covariates that vary per comparison.

As in LMArena's style control, the linear predictor is theta_a - theta_b + gamma . (x_a - x_b), with
x the size of each side's patch (log lines changed, files touched). Covariates differ per
comparison, so the fit runs on one row per comparison, vectorised; see docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from marlin.analytics.bt import (
    DEFAULT_RIDGE,
    ELO_BASE,
    ELO_PER_LOG,
    LOG_NU_BOUNDS,
    THETA_BOUNDS,
    BTError,
    Ranking,
    pair_counts_from_arrays,
    rank,
    ranks_of,
)


@dataclass(frozen=True)
class ControlledScore:
    agent: str
    score: float  # Elo-like score once the covariates are held equal
    lower: float  # Wald interval from the observed information (see docs/statistics.md)
    upper: float
    rank: int
    plain_score: float
    plain_rank: int


@dataclass(frozen=True)
class StyleControlled:
    agents: list[ControlledScore]  # best controlled score first
    coefficients: dict[str, float]  # gamma: log-odds (Davidson scale) per unit of x_a - x_b
    std_errors: dict[str, float]
    tie_parameter: float
    n_comparisons: int
    plain: Ranking


def _covariate_terms(
    params: np.ndarray,
    k: int,
    m: int,
    a: np.ndarray,
    b: np.ndarray,
    dx: np.ndarray,
    with_ties: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per-comparison P(a wins), P(b wins), P(tie) and the log normaliser's sum."""
    theta, gamma = params[:k], params[k : k + m]
    log_nu = params[k + m] if with_ties else -np.inf
    half = 0.5 * (theta[a] - theta[b] + dx @ gamma)
    mx = np.maximum(np.abs(half), log_nu)
    e_a, e_b, e_t = np.exp(half - mx), np.exp(-half - mx), np.exp(log_nu - mx)
    s = e_a + e_b + e_t
    return e_a / s, e_b / s, e_t / s, float(np.sum(mx + np.log(s)))


def _covariate_negloglik(
    params: np.ndarray,
    k: int,
    m: int,
    a: np.ndarray,
    b: np.ndarray,
    dx: np.ndarray,
    y: np.ndarray,
    ridge: float,
    with_ties: bool,
) -> tuple[float, np.ndarray]:
    p_a, p_b, p_t, log_norm = _covariate_terms(params, k, m, a, b, dx, with_ties)
    y_a, y_b, y_t = (y == 1.0), (y == 0.0), (y == 0.5)
    theta, gamma = params[:k], params[k : k + m]
    half = 0.5 * (theta[a] - theta[b] + dx @ gamma)
    ll = float(np.sum(half * (y_a.astype(float) - y_b))) - log_norm
    g_d = 0.5 * ((y_a.astype(float) - y_b) - (p_a - p_b))
    grad = np.empty_like(params)
    grad[:k] = np.bincount(a, g_d, minlength=k) - np.bincount(b, g_d, minlength=k)
    grad[k : k + m] = dx.T @ g_d
    if with_ties:
        log_nu = params[k + m]
        ll += float(y_t.sum()) * log_nu
        grad[k + m] = float(y_t.sum() - p_t.sum())
    ll -= ridge * float(params @ params)
    grad -= 2 * ridge * params
    return -ll, -grad


def _covariate_information(
    params: np.ndarray,
    k: int,
    m: int,
    a: np.ndarray,
    b: np.ndarray,
    dx: np.ndarray,
    with_ties: bool,
) -> np.ndarray:
    """Observed information (= expected here) of the per-comparison Davidson model."""
    p_a, p_b, p_t, _ = _covariate_terms(params, k, m, a, b, dx, with_ties)
    w_dd = 0.25 * ((p_a + p_b) - (p_a - p_b) ** 2)
    w_dt = -0.5 * p_t * (p_a - p_b)
    n = k + m + (1 if with_ties else 0)
    info = np.zeros((n, n))
    cell = np.bincount(a * k + a, w_dd, k * k) + np.bincount(b * k + b, w_dd, k * k)
    cell -= np.bincount(a * k + b, w_dd, k * k) + np.bincount(b * k + a, w_dd, k * k)
    info[:k, :k] = cell.reshape(k, k)
    for c in range(m):
        col = np.bincount(a, w_dd * dx[:, c], k) - np.bincount(b, w_dd * dx[:, c], k)
        info[:k, k + c] = info[k + c, :k] = col
    info[k : k + m, k : k + m] = (dx * w_dd[:, None]).T @ dx
    if with_ties:
        t = k + m
        col = np.bincount(a, w_dt, k) - np.bincount(b, w_dt, k)
        info[:k, t] = info[t, :k] = col
        info[k : k + m, t] = info[t, k : k + m] = dx.T @ w_dt
        info[t, t] = float(np.sum(p_t * (1 - p_t)))
    return info


def fit_with_covariates(
    agent_ids: Sequence[str],
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    outcome: np.ndarray,
    covariates_a: np.ndarray,
    covariates_b: np.ndarray,
    *,
    names: Sequence[str] = ("log_lines_changed", "files_touched"),
    rounds: int = 1000,
    seed: int | None = 0,
    ridge: float = DEFAULT_RIDGE,
    confidence: float = 0.95,
) -> StyleControlled:
    """Davidson model with linear predictor theta_a - theta_b + gamma . (x_a - x_b).

    One row per comparison (vectorised); covariates_* are (N, m) arrays, e.g. log1p(lines
    changed) and files touched of each side's patch. The plain ranking (with its bootstrap of
    `rounds`) is returned beside the controlled one.
    """
    x_a = np.asarray(covariates_a, dtype=float)
    x_b = np.asarray(covariates_b, dtype=float)
    if x_a.ndim == 1:
        x_a, x_b = x_a[:, None], x_b[:, None]
    if x_a.shape != x_b.shape or x_a.shape[0] != len(a_idx) or x_a.shape[1] != len(names):
        raise BTError(
            f"covariates must be ({len(a_idx)}, {len(names)}) arrays matching the comparisons "
            f"and names; got {x_a.shape} and {x_b.shape}"
        )
    if not np.all(np.isfinite(x_a)) or not np.all(np.isfinite(x_b)):
        raise BTError("covariates contain NaN or infinite values; impute or drop those rows")
    counts = pair_counts_from_arrays(agent_ids, a_idx, b_idx, outcome)
    plain = rank(counts, rounds=rounds, seed=seed, ridge=ridge, confidence=confidence)
    k, m = len(agent_ids), x_a.shape[1]
    a = np.asarray(a_idx, dtype=np.int64)
    b = np.asarray(b_idx, dtype=np.int64)
    y = np.asarray(outcome, dtype=float)
    dx = x_a - x_b
    with_ties = bool(np.any(y == 0.5))
    by_agent = {s.agent: s for s in plain.agents}
    theta0 = np.array([by_agent[name].log_strength for name in agent_ids])
    x0 = np.concatenate([theta0, np.zeros(m), [np.log(plain.tie_parameter)] if with_ties else []])
    bounds = [THETA_BOUNDS] * k + [(None, None)] * m + ([LOG_NU_BOUNDS] if with_ties else [])
    res = minimize(
        _covariate_negloglik,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        args=(k, m, a, b, dx, y, ridge, with_ties),
        options={"maxiter": 5000, "gtol": 1e-7, "ftol": 1e-14},
    )
    info = _covariate_information(res.x, k, m, a, b, dx, with_ties)
    cov = np.linalg.inv(info + 2 * ridge * np.eye(len(res.x)))
    # Centre the strengths; the projection also removes the translation the likelihood ignores.
    centre = np.eye(k) - 1.0 / k
    theta = centre @ res.x[:k]
    se_theta = np.sqrt(np.clip(np.diag(centre @ cov[:k, :k] @ centre), 0, None))
    z = float(norm.ppf(0.5 + confidence / 2))
    score = ELO_PER_LOG * theta + ELO_BASE
    ranks = ranks_of(theta)
    agents = [
        ControlledScore(
            agent=agent_ids[i],
            score=float(score[i]),
            lower=float(score[i] - z * ELO_PER_LOG * se_theta[i]),
            upper=float(score[i] + z * ELO_PER_LOG * se_theta[i]),
            rank=int(ranks[i]),
            plain_score=by_agent[agent_ids[i]].score,
            plain_rank=by_agent[agent_ids[i]].rank,
        )
        for i in np.argsort(-theta, kind="stable")
    ]
    se_gamma = np.sqrt(np.clip(np.diag(cov)[k : k + m], 0, None))
    return StyleControlled(
        agents=agents,
        coefficients=dict(zip(names, map(float, res.x[k : k + m]), strict=True)),
        std_errors=dict(zip(names, map(float, se_gamma), strict=True)),
        tie_parameter=float(np.exp(res.x[k + m])) if with_ties else 0.0,
        n_comparisons=len(y),
        plain=plain,
    )
