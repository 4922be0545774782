"""How sure a leaderboard is: standard errors, ties as half a win, provisional agents, power.

Works on bt.PairCounts and the fitted log-strengths; plain numpy/scipy, no Django. Methods and
what each figure does and does not mean: docs/statistics.md ("How sure is a ranking").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from marlin.analytics.bt import ELO_PER_LOG, PairCounts, Ranking, rank

FloatArray = npt.NDArray[np.float64]
TieModel = Literal["davidson", "half"]
TIE_MODELS: dict[str, str] = {
    "davidson": "Davidson model (a tie is its own outcome)",
    "half": "ties counted as half a win for each side (arena style)",
}
DEFAULT_MIN_COMPARISONS = 10


def ties_as_half_wins(counts: PairCounts) -> PairCounts:
    """The same comparisons with each tie split into half a win for each side, no ties left."""
    return PairCounts(counts.agents, counts.wins + counts.ties / 2, np.zeros_like(counts.ties))


def rank_with(
    counts: PairCounts, tie_model: TieModel, *, rounds: int = 1000, seed: int | None = 0
) -> Ranking:
    """bt.rank under the chosen treatment of ties."""
    if tie_model not in TIE_MODELS:
        raise ValueError(f"tie model must be one of {', '.join(TIE_MODELS)}; got {tie_model!r}")
    data = ties_as_half_wins(counts) if tie_model == "half" else counts
    return rank(data, rounds=rounds, seed=seed)


def fisher_information(counts: PairCounts, theta: FloatArray, nu: float) -> FloatArray:
    """Expected information of the Davidson model at (theta, log nu); plain BT when nu == 0.

    Per pair the outcome is a three-way multinomial whose log-odds are (d/2, -d/2, log nu) with
    d = theta_i - theta_j, so its information is n * J' (diag p - p p') J with J the Jacobian of
    those log-odds in (theta_i, theta_j, log nu). Parameters: theta (K), then log nu if nu > 0.
    """
    k = len(counts.agents)
    with_ties = nu > 0
    size = k + 1 if with_ties else k
    info = np.zeros((size, size))
    iu, ju = np.triu_indices(k, k=1)
    n = counts.totals[iu, ju]
    seen = n > 0
    iu, ju, n = iu[seen], ju[seen], n[seen]
    d = theta[iu] - theta[ju]
    half = d / 2
    m = np.maximum(np.abs(half), math.log(nu) if with_ties else -np.inf)
    e_w, e_l = np.exp(half - m), np.exp(-half - m)
    e_t = nu * np.exp(-m) if with_ties else np.zeros_like(d)
    total = e_w + e_l + e_t
    p = np.stack([e_w, e_l, e_t], axis=1) / total[:, None]  # pairs x 3
    cov = p[:, :, None] * (np.eye(3)[None] - p[:, None, :])  # diag p - p p'
    jac = np.array([[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # outcome x param
    block = n[:, None, None] * np.einsum("oa,pob,bc->pac", jac, cov, jac)  # pairs x 3 x 3
    index = np.stack([iu, ju, np.full_like(iu, k)], axis=1)
    params = 3 if with_ties else 2
    for a in range(params):
        for b in range(params):
            np.add.at(info, (index[:, a], index[:, b]), block[:, a, b])
    return info


def standard_errors(counts: PairCounts, theta: FloatArray, nu: float) -> FloatArray:
    """Covariance of the centred log-strengths (K x K) from the inverse information.

    The likelihood does not change when every strength moves by the same amount, so the
    information is singular along that direction; its pseudo-inverse is the covariance under the
    constraint sum(theta) = 0, the centring the leaderboard reports.
    """
    k = len(counts.agents)
    info = fisher_information(counts, theta, nu)
    # pinv(I) = inv(I + u u') - u u' for the unit vector u of that direction: one LU solve
    # instead of an eigendecomposition (which is 100x slower with BLAS threads on a busy host).
    u = np.zeros(len(info))
    u[:k] = 1 / math.sqrt(k)
    try:
        cov = np.linalg.inv(info + np.outer(u, u)) - np.outer(u, u)
    except np.linalg.LinAlgError:  # singular beyond the translation: take the pseudo-inverse
        cov = np.asarray(np.linalg.pinv(info, hermitian=True), dtype=np.float64)
    out: FloatArray = np.asarray(cov[:k, :k], dtype=np.float64)
    return out


@dataclass(frozen=True)
class Certainty:
    """Per agent (in the ranking's order): standard error and why a place is provisional."""

    se: list[float]  # standard error of the score (Elo-like points); inf when unbounded
    provisional: list[str]  # "" or the reason the agent's place is provisional
    covariance: FloatArray  # of the log-strengths, ranking order


def certainty(
    counts: PairCounts,
    ranking: Ranking,
    *,
    tie_model: TieModel = "davidson",
    min_comparisons: int = DEFAULT_MIN_COMPARISONS,
) -> Certainty:
    """Standard errors for a ranking fitted on counts, and provisional flags."""
    data = ties_as_half_wins(counts) if tie_model == "half" else counts
    order = [data.agents.index(a.agent) for a in ranking.agents]
    # The ranking's own estimates, in the counts' agent order: the SEs describe what is shown.
    by_agent = {a.agent: a.log_strength for a in ranking.agents}
    theta = np.array([by_agent[name] for name in data.agents], dtype=np.float64)
    cov = standard_errors(data, theta, ranking.tie_parameter)[np.ix_(order, order)]
    se: list[float] = []
    provisional: list[str] = []
    for i, agent in enumerate(ranking.agents):
        unbounded = math.isinf(agent.lower) or math.isinf(agent.upper)
        se.append(math.inf if unbounded else ELO_PER_LOG * math.sqrt(max(cov[i, i], 0.0)))
        reasons = []
        if agent.comparisons < min_comparisons:
            reasons.append(f"only {agent.comparisons} comparisons (fewer than {min_comparisons})")
        if math.isinf(agent.upper):
            reasons.append(
                "no finite upper bound: never lost or tied to an agent outside its group"
            )
        if math.isinf(agent.lower):
            reasons.append("no finite lower bound: never beat or tied an agent outside its group")
        provisional.append("; ".join(reasons))
    return Certainty(se=se, provisional=provisional, covariance=cov)


@dataclass(frozen=True)
class SeparationEstimate:
    upper_rank: int  # the better of the two adjacent ranks, 1-based
    gap: float  # estimated score difference (points)
    se: float  # its standard error (points)
    z: float  # gap / se
    more_comparisons: int | None  # about this many more decided comparisons; None: cannot tell
    separated: bool  # the 95% test already separates them


def comparisons_to_separate(
    ranking: Ranking,
    cov: FloatArray,
    upper_rank: int,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
) -> SeparationEstimate:
    """About how many more decided comparisons separate rank r from rank r+1.

    Assumes the estimated gap is the true one and that new comparisons are spread over the
    agents as the existing ones are, so every variance shrinks as 1/N. The gap is then told
    apart from zero by a two-sided test at `confidence` with probability `power` once
    gap / se >= z_{1-(1-confidence)/2} + z_{power}, i.e. N_needed = N (se (z_a + z_b) / gap)^2.
    """
    if not 1 <= upper_rank < len(ranking.agents):
        raise ValueError(f"upper_rank must lie in 1..{len(ranking.agents) - 1}")
    i, j = upper_rank - 1, upper_rank
    a, b = ranking.agents[i], ranking.agents[j]
    gap = a.score - b.score
    var = cov[i, i] + cov[j, j] - 2 * cov[i, j]
    se = ELO_PER_LOG * math.sqrt(max(var, 0.0))
    z_alpha = float(norm.ppf(1 - (1 - confidence) / 2))
    z_power = float(norm.ppf(power))
    unbounded = any(math.isinf(x) for x in (a.lower, a.upper, b.lower, b.upper))
    if unbounded or se == 0 or not math.isfinite(se):
        return SeparationEstimate(upper_rank, gap, se, math.inf, None, False)
    z = gap / se
    if gap <= 0:
        return SeparationEstimate(upper_rank, gap, se, z, None, False)
    n = ranking.n_comparisons
    needed = n * (se * (z_alpha + z_power) / gap) ** 2
    return SeparationEstimate(
        upper_rank, gap, se, z, max(0, math.ceil(needed - n)), bool(z >= z_alpha)
    )
