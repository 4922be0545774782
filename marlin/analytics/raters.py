"""Rater quality: a Bradley-Terry/Davidson model with a skill, a side bias and a tie propensity
per expert, fitted on individual judgments (in the spirit of crowd-kit's NoisyBT, with ties).

For a judgment by expert e of agent a (shown as side A) against agent b (side B):

    d = s_e * (theta_a - theta_b) + beta_e,   s_e = exp(kappa_e)
    P(A better) ∝ exp(d / 2),  P(B better) ∝ exp(-d / 2),  P(tie) ∝ nu_e = exp(lambda_e)

s_e (skill) says how sharply the expert's verdicts follow the agents' strengths: 1 is the panel's
typical expert, 0 would be coin flips. beta_e (bias) is the log-odds of preferring side A between
equal agents; nu_e is the expert's tie propensity. theta, fitted with every judgment weighted by
its expert's skill and corrected for side bias, is the skill-weighted leaderboard. Plain numpy and
scipy; methods and caveats in docs/statistics.md ("Rater quality").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom, norm

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# Gaussian priors (as ridge penalties): strengths ~ N(0, 10^2) keeps a never-beaten agent finite;
# log-skill, bias and log tie propensity ~ N(0, 1.5^2) shrink experts with few judgments toward
# the typical expert, which is what one wants from 5 judgments and nearly nothing from 500.
RIDGE_THETA = 0.005
RIDGE_EXPERT = 0.22
MIN_JUDGMENTS = 2


class RaterModelError(ValueError):
    """Judgments the rater model cannot be fitted on; the message says why."""


@dataclass(frozen=True)
class ExpertQuality:
    expert: str
    judgments: int
    skill: float  # s_e; the geometric mean over experts is 1
    skill_lower: float  # 95% Wald interval, on the log scale then exponentiated
    skill_upper: float
    bias: float  # beta_e, log-odds of preferring side A between equal agents
    bias_lower: float
    bias_upper: float
    prefer_a_when_equal: float  # P(A) / (P(A) + P(B)) between equal agents: 1 / (1 + e^-beta)
    tie_propensity: float  # P(tie) between equal agents with no bias


@dataclass(frozen=True)
class AgentStrength:
    agent: str
    theta: float  # log-strength on the skill-1 scale, centred
    se: float


@dataclass(frozen=True)
class RaterFit:
    experts: list[ExpertQuality]
    agents: list[AgentStrength]  # best first: the skill-weighted leaderboard
    n_judgments: int
    converged: bool


def _unpack(params: FloatArray, k: int, e: int) -> tuple[FloatArray, ...]:
    return params[:k], params[k : k + e], params[k + e : k + 2 * e], params[k + 2 * e :]


def _negloglik(
    params: FloatArray,
    a: IntArray,
    b: IntArray,
    who: IntArray,
    outcome: IntArray,
    k: int,
    e: int,
) -> tuple[float, FloatArray]:
    """Penalised negative log-likelihood and gradient; outcome 0 = A, 1 = B, 2 = tie."""
    theta, kappa, beta, lam = _unpack(params, k, e)
    skill = np.exp(kappa[who])
    diff = theta[a] - theta[b]
    half = 0.5 * (skill * diff + beta[who])
    tie_lin = lam[who]
    m = np.maximum(np.abs(half), tie_lin)
    e_a, e_b, e_t = np.exp(half - m), np.exp(-half - m), np.exp(tie_lin - m)
    total = e_a + e_b + e_t
    p_a, p_b, p_t = e_a / total, e_b / total, e_t / total
    log_total = m + np.log(total)
    is_a, is_b, is_t = outcome == 0, outcome == 1, outcome == 2
    ll = float(np.sum(np.where(is_a, half, 0) - np.where(is_b, half, 0)))
    ll += float(np.sum(np.where(is_t, tie_lin, 0)) - np.sum(log_total))
    # d ll / d half = (1[A] - 1[B]) - (p_a - p_b); d ll / d tie_lin = 1[T] - p_t.
    g_half = (is_a.astype(float) - is_b) - (p_a - p_b)
    g_tie = is_t.astype(float) - p_t
    g_theta = np.bincount(a, 0.5 * g_half * skill, k) - np.bincount(b, 0.5 * g_half * skill, k)
    g_kappa = np.bincount(who, 0.5 * g_half * skill * diff, e)
    g_beta = np.bincount(who, 0.5 * g_half, e)
    g_lam = np.bincount(who, g_tie, e)
    ll -= RIDGE_THETA * float(theta @ theta)
    ll -= RIDGE_EXPERT * float(kappa @ kappa + beta @ beta + lam @ lam)
    grad = np.concatenate(
        [
            g_theta - 2 * RIDGE_THETA * theta,
            g_kappa - 2 * RIDGE_EXPERT * kappa,
            g_beta - 2 * RIDGE_EXPERT * beta,
            g_lam - 2 * RIDGE_EXPERT * lam,
        ]
    )
    return -ll, -grad


def _hessian(params: FloatArray, args: tuple[object, ...], step: float = 1e-5) -> FloatArray:
    """Observed information: central differences of the analytic gradient."""
    size = len(params)
    out = np.empty((size, size))
    for i in range(size):
        bump = np.zeros(size)
        bump[i] = step
        g_plus = _negloglik(params + bump, *args)[1]  # type: ignore[arg-type]
        g_minus = _negloglik(params - bump, *args)[1]  # type: ignore[arg-type]
        out[i] = (g_plus - g_minus) / (2 * step)
    sym: FloatArray = (out + out.T) / 2
    return sym


def fit_raters(
    agents: Sequence[str],
    experts: Sequence[str],
    a_idx: npt.ArrayLike,
    b_idx: npt.ArrayLike,
    expert_idx: npt.ArrayLike,
    outcome: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> RaterFit:
    """Fit the model on judgments: indices into agents (sides A, B) and experts, and outcomes
    1 (A better), 0 (B better) or 0.5 (tie), as in bt.pair_counts_from_arrays."""
    a = np.asarray(a_idx, dtype=np.int64)
    b = np.asarray(b_idx, dtype=np.int64)
    who = np.asarray(expert_idx, dtype=np.int64)
    y = np.asarray(outcome, dtype=float)
    k, e = len(agents), len(experts)
    if not (a.shape == b.shape == who.shape == y.shape):
        raise RaterModelError("a_idx, b_idx, expert_idx and outcome must have the same length")
    if len(y) < MIN_JUDGMENTS or k < 2 or e < 1:
        raise RaterModelError(
            f"the rater model needs two agents and at least {MIN_JUDGMENTS} judgments; "
            f"got {k} agents, {len(y)} judgments"
        )
    if not np.all(np.isin(y, (0.0, 0.5, 1.0))):
        raise RaterModelError("outcome must be 1 (A better), 0 (B better) or 0.5 (tie)")
    graph = csr_matrix((np.ones(len(a)), (a, b)), shape=(k, k))
    n_groups, _ = connected_components(graph, directed=False)
    if n_groups > 1:
        raise RaterModelError(
            f"the judgments split the agents into {n_groups} groups never compared with each "
            "other; the model needs one connected comparison graph"
        )
    code = np.where(y == 1.0, 0, np.where(y == 0.0, 1, 2)).astype(np.int64)
    args = (a, b, who, code, k, e)
    x0 = np.zeros(k + 3 * e)
    res = minimize(
        _negloglik,
        x0,
        jac=True,
        args=args,
        method="L-BFGS-B",
        options={"maxiter": 5000, "gtol": 1e-7},
    )
    params = res.x
    theta, kappa, beta, lam = _unpack(params, k, e)
    # The ridge makes the penalised information positive definite: an LU inverse suffices (an
    # eigendecomposition costs 100x more with BLAS threads on a busy host).
    hessian = _hessian(params, args)
    try:
        cov = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        cov = np.asarray(np.linalg.pinv(hessian, hermitian=True), dtype=np.float64)
    z = float(norm.ppf(1 - (1 - confidence) / 2))
    # Report skills relative to the panel's geometric mean (the scale is not identified apart
    # from the ridge): theta * exp(mean kappa) and kappa - mean kappa give the same likelihood.
    # Standard errors by the delta method on functions that do not move along those two
    # unidentified directions (shifting every theta; rescaling theta against every kappa).
    shift = float(kappa.mean())
    theta_c = (theta - theta.mean()) * math.exp(shift)
    grads = np.zeros((k, len(params)))
    grads[:, :k] = (np.eye(k) - 1.0 / k) * math.exp(shift)
    grads[:, k : k + e] = theta_c[:, None] / e
    se_theta = np.sqrt(np.clip(np.einsum("ip,pq,iq->i", grads, cov, grads), 0, None))
    contrast = np.eye(e) - 1.0 / e
    cov_kappa = contrast @ cov[k : k + e, k : k + e] @ contrast.T
    counts = np.bincount(who, minlength=e)
    out_experts = []
    for i, name in enumerate(experts):
        se_k = math.sqrt(max(cov_kappa[i, i], 0.0))
        se_b = math.sqrt(max(cov[k + e + i, k + e + i], 0.0))
        kap = kappa[i] - shift
        nu = math.exp(lam[i])
        out_experts.append(
            ExpertQuality(
                expert=name,
                judgments=int(counts[i]),
                skill=math.exp(kap),
                skill_lower=math.exp(kap - z * se_k),
                skill_upper=math.exp(kap + z * se_k),
                bias=float(beta[i]),
                bias_lower=float(beta[i] - z * se_b),
                bias_upper=float(beta[i] + z * se_b),
                prefer_a_when_equal=1 / (1 + math.exp(-beta[i])),
                tie_propensity=nu / (2 + nu),
            )
        )
    order = np.argsort(-theta_c, kind="stable")
    out_agents = [AgentStrength(agents[i], float(theta_c[i]), float(se_theta[i])) for i in order]
    return RaterFit(out_experts, out_agents, len(y), bool(res.success))


def median_interval(
    values: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """Median and a distribution-free interval from order statistics (binomial, p = 1/2).

    With fewer than 6 values no 95% interval of this kind exists; the range is returned then.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        raise RaterModelError("no values")
    median = float(np.median(x))
    lo = int(binom.ppf((1 - confidence) / 2, n, 0.5))  # values below the lower bound
    if lo < 1:
        return median, float(x[0]), float(x[-1])
    return median, float(x[lo - 1]), float(x[n - lo])
