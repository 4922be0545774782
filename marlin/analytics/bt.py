"""Bradley-Terry rankings with ties (Davidson 1970), fitted on aggregated pair counts.

Everything here works on the K x K table of counts, so the cost of a fit (and of every bootstrap
refit) depends on the number of agents K, not on the number of comparisons. The methods, their
assumptions and references are written up in docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

# One log-strength unit on the Elo scale: a gap of 400 points means 10:1 odds (plain BT).
ELO_PER_LOG = 400.0 / np.log(10.0)
ELO_BASE = 1000.0
# Gaussian prior ridge * sum(theta^2 + log_nu^2): far weaker than one comparison, yet it keeps an
# agent that never lost (whose maximum-likelihood strength is +infinity) finite.
DEFAULT_RIDGE = 1e-4
# Bounds on log(nu) keep the optimiser away from overflow when a resample has no ties at all.
LOG_NU_BOUNDS = (-30.0, 10.0)
THETA_BOUNDS = (-50.0, 50.0)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class BTError(ValueError):
    """Input that cannot be ranked; the message says what to change."""


class DisconnectedComparisons(BTError):
    """The comparison graph has several components, whose strengths are not comparable."""

    def __init__(self, components: list[list[str]]) -> None:
        self.components = components
        groups = "; ".join("{" + ", ".join(c) + "}" for c in components)
        super().__init__(
            f"the comparisons split the agents into {len(components)} groups that were never "
            f"compared with each other: {groups}. Strengths across groups are not comparable; "
            "add comparisons that link the groups or rank each group on its own."
        )


@dataclass(frozen=True)
class PairCounts:
    """Aggregated outcomes: wins[i, j] = times agent i was preferred over j; ties symmetric."""

    agents: list[str]
    wins: FloatArray
    ties: FloatArray

    @property
    def totals(self) -> FloatArray:
        """Comparisons per unordered pair, as a symmetric K x K matrix."""
        return self.wins + self.wins.T + self.ties

    @property
    def n_comparisons(self) -> int:
        return int(round(self.wins.sum() + np.triu(self.ties).sum()))


@dataclass(frozen=True)
class AgentScore:
    agent: str
    score: float  # Elo-like: ELO_PER_LOG * log-strength + ELO_BASE (log-strengths sum to zero)
    lower: float  # 2.5th bootstrap percentile of score; -inf when the data give no lower bound
    upper: float  # 97.5th percentile; +inf for an agent (group) that never lost or tied outside
    rank: int  # 1 = best
    rank_lower: int  # best rank seen in the central 95% of bootstrap rounds
    rank_upper: int  # worst rank in the central 95% of bootstrap rounds
    comparisons: int
    wins: int
    losses: int
    ties: int
    log_strength: float


@dataclass(frozen=True)
class Ranking:
    agents: list[AgentScore]  # sorted best first; the matrices below use the same order
    tie_parameter: float  # Davidson's nu; 0.0 when the data hold no ties
    n_comparisons: int
    win_rate: FloatArray  # empirical share of wins of row over column, ties count half; NaN unseen
    predicted: FloatArray  # model P(row beats column) + half P(tie)
    rounds: int
    seed: int | None

    @property
    def labels(self) -> list[str]:
        return [a.agent for a in self.agents]


def pair_counts(agent_ids: Sequence[str], outcomes: Iterable[tuple[str, str, float]]) -> PairCounts:
    """Count (first, second, outcome) triples; outcome 1 = first wins, 0 = second wins, 0.5 =
    tie."""
    index = {a: i for i, a in enumerate(agent_ids)}
    if len(index) != len(agent_ids):
        raise BTError("agent_ids contains duplicates")
    a_idx: list[int] = []
    b_idx: list[int] = []
    result: list[float] = []
    for first, second, outcome in outcomes:
        for name in (first, second):
            if name not in index:
                raise BTError(f"comparison names agent {name!r}, which is not in agent_ids")
        a_idx.append(index[first])
        b_idx.append(index[second])
        result.append(outcome)
    return pair_counts_from_arrays(
        agent_ids,
        np.asarray(a_idx, dtype=np.int64),
        np.asarray(b_idx, dtype=np.int64),
        np.asarray(result, dtype=float),
    )


def pair_counts_from_arrays(
    agent_ids: Sequence[str], a_idx: npt.ArrayLike, b_idx: npt.ArrayLike, outcome: npt.ArrayLike
) -> PairCounts:
    """Vectorised pair_counts: integer index arrays into agent_ids and outcomes in {0, 0.5, 1}."""
    k = len(agent_ids)
    a_idx = np.asarray(a_idx, dtype=np.int64)
    b_idx = np.asarray(b_idx, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=float)
    if not (a_idx.shape == b_idx.shape == outcome.shape) or a_idx.ndim != 1:
        raise BTError("a_idx, b_idx and outcome must be 1-d arrays of the same length")
    if a_idx.size and (min(a_idx.min(), b_idx.min()) < 0 or max(a_idx.max(), b_idx.max()) >= k):
        raise BTError(f"agent indices must lie in 0..{k - 1}")
    if np.any(a_idx == b_idx):
        raise BTError("an agent cannot be compared with itself")
    bad = ~np.isin(outcome, (0.0, 0.5, 1.0))
    if np.any(bad):
        raise BTError(
            "outcome must be 1 (first wins), 0 (second wins) or 0.5 (tie); "
            f"got {float(outcome[bad][0])!r}"
        )
    cells = k * k
    wins = _count(a_idx * k + b_idx, outcome == 1.0, cells)
    wins += _count(b_idx * k + a_idx, outcome == 0.0, cells)
    ties = _count(a_idx * k + b_idx, outcome == 0.5, cells).reshape(k, k)
    return PairCounts(list(agent_ids), wins.reshape(k, k), ties + ties.T)


def _count(cell: IntArray, weights: BoolArray, cells: int) -> FloatArray:
    # Weighted bincount is float64 already (numpy's stubs say intp), so astype does not copy.
    return np.bincount(cell, weights=weights, minlength=cells).astype(np.float64, copy=False)


def check_connected(counts: PairCounts) -> None:
    """Raise a clear error unless at least two agents are linked into one comparison graph."""
    k = len(counts.agents)
    if k < 2:
        raise BTError(f"a ranking needs at least two agents; got {k}")
    if counts.n_comparisons == 0:
        raise BTError("there are no comparisons to rank")
    n_comp, labels = connected_components(_graph(counts.totals > 0), directed=False)
    if n_comp > 1:
        groups = [[counts.agents[i] for i in np.flatnonzero(labels == c)] for c in range(n_comp)]
        raise DisconnectedComparisons(sorted(groups, key=len, reverse=True))


def unbounded_sides(counts: PairCounts) -> tuple[BoolArray, BoolArray]:
    """Agents whose strength has no finite upper (resp. lower) bound in the likelihood.

    The maximum-likelihood estimate is finite iff the "beat or tied" graph is strongly connected
    (Zermelo 1929; Ford 1957; Hunter 2004). A strong component that nobody outside ever beat or tied
    can be pushed up without limit, one that never beat or tied anyone outside pushed down.
    """
    edges = (counts.wins + counts.ties) > 0  # i -> j: i beat or tied j
    n_comp, labels = connected_components(_graph(edges), directed=True, connection="strong")
    cross = labels[:, None] != labels[None, :]
    comp_in = np.zeros(n_comp, dtype=bool)
    comp_out = np.zeros(n_comp, dtype=bool)
    src, dst = np.nonzero(edges & cross)
    comp_out[labels[src]] = True
    comp_in[labels[dst]] = True
    if n_comp == 1:
        return np.zeros(len(labels), dtype=bool), np.zeros(len(labels), dtype=bool)
    return ~comp_in[labels], ~comp_out[labels]


def _graph(edges: BoolArray) -> csr_matrix[np.float64]:
    # csgraph works in float64 and would convert a boolean matrix itself.
    return csr_matrix(edges, dtype=np.float64)


def _negloglik(
    params: FloatArray,
    wins: FloatArray,
    ties: FloatArray,
    totals: FloatArray,
    ridge: float,
    with_ties: bool,
) -> tuple[float, FloatArray]:
    """Penalised Davidson negative log-likelihood and its gradient, summed over the K x K table."""
    k: int = wins.shape[0]
    theta = params[:k]
    log_nu = params[k] if with_ties else -np.inf
    ti = theta[:, None]
    tj = theta[None, :]
    tie_lin = log_nu + 0.5 * (ti + tj)
    m = np.maximum(np.maximum(ti, tj), tie_lin)
    e_i = np.exp(ti - m)
    e_j = np.exp(tj - m)
    e_t = np.exp(tie_lin - m)
    denom = e_i + e_j + e_t
    log_denom = m + np.log(denom)
    p_win = e_i / denom
    p_tie = e_t / denom
    # Each unordered pair appears twice in the symmetric matrices, hence the halves.
    ll = float(np.sum(wins.sum(axis=1) * theta) - 0.5 * np.sum(totals * log_denom))
    grad_theta = wins.sum(axis=1) - np.sum(totals * p_win, axis=1)
    grad = np.empty_like(params)
    if with_ties:
        ll += 0.5 * float(np.sum(ties * tie_lin))
        grad_theta += 0.5 * (ties.sum(axis=1) - np.sum(totals * p_tie, axis=1))
        grad[k] = 0.5 * float(np.sum(ties) - np.sum(totals * p_tie)) - 2 * ridge * log_nu
        ll -= ridge * log_nu**2
    ll -= ridge * float(theta @ theta)
    grad[:k] = grad_theta - 2 * ridge * theta
    return -ll, -grad


def fit_davidson(
    counts: PairCounts, *, ridge: float = DEFAULT_RIDGE, start: FloatArray | None = None
) -> tuple[FloatArray, float]:
    """Maximum (penalised) likelihood log-strengths, centred to sum to zero, and Davidson's nu.

    With no ties in the data the model reduces to plain Bradley-Terry and nu is 0.
    """
    k = len(counts.agents)
    with_ties = bool(counts.ties.sum() > 0)
    n_params = k + 1 if with_ties else k
    x0 = np.zeros(n_params) if start is None else np.asarray(start, dtype=float)[:n_params].copy()
    bounds = [THETA_BOUNDS] * k + ([LOG_NU_BOUNDS] if with_ties else [])
    res = minimize(
        _negloglik,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        args=(counts.wins, counts.ties, counts.totals, ridge, with_ties),
        options={"maxiter": 2000, "gtol": 1e-8, "ftol": 1e-14},
    )
    theta = res.x[:k] - res.x[:k].mean()
    nu = float(np.exp(res.x[k])) if with_ties else 0.0
    return theta, nu


def predicted_matrix(theta: FloatArray, nu: float) -> FloatArray:
    """Model P(row beats column) + half P(tie); the diagonal is NaN."""
    ti = theta[:, None]
    tj = theta[None, :]
    d = 0.5 * (ti - tj)
    # Dividing by sqrt(pi_i pi_j) gives P(i beats j) = e^{d} / (e^{d} + e^{-d} + nu).
    m = np.abs(d)
    win = np.exp(d - m) / (np.exp(d - m) + np.exp(-d - m) + nu * np.exp(-m))
    tie = nu * np.exp(-m) / (np.exp(d - m) + np.exp(-d - m) + nu * np.exp(-m))
    out = win + 0.5 * tie
    np.fill_diagonal(out, np.nan)
    return out


def _resample(
    counts: PairCounts, rounds: int, rng: np.random.Generator
) -> tuple[IntArray, IntArray, IntArray]:
    """(rounds, P, 3) multinomial redraws of (wins_ij, wins_ji, ties_ij) for each pair i<j seen."""
    iu, ju = np.triu_indices(len(counts.agents), k=1)
    n = counts.totals[iu, ju]
    seen = n > 0
    iu, ju, n = iu[seen], ju[seen], n[seen]
    cells = np.stack([counts.wins[iu, ju], counts.wins[ju, iu], counts.ties[iu, ju]], axis=1)
    probs = cells / n[:, None]
    draws = rng.multinomial(n.astype(np.int64), probs, size=(rounds, len(n)))
    return draws, iu, ju


def ranks_of(theta: FloatArray) -> IntArray:
    """Rank 1 = strongest; ties in strength share the better rank."""
    ranks: IntArray = 1 + np.sum(theta[None, :] > theta[:, None], axis=1)
    return ranks


def rank(
    counts: PairCounts,
    *,
    rounds: int = 1000,
    seed: int | None = 0,
    ridge: float = DEFAULT_RIDGE,
    confidence: float = 0.95,
) -> Ranking:
    """Fit the Davidson model and bootstrap percentile intervals for scores and ranks.

    The bootstrap resamples comparisons with replacement within each pair (a multinomial draw of
    the pair's outcomes with its total held fixed); each refit starts from the point estimate.
    """
    check_connected(counts)
    if rounds < 0:
        raise BTError("rounds must be >= 0")
    theta, nu = fit_davidson(counts, ridge=ridge)
    start = np.append(theta, np.log(nu) if nu > 0 else 0.0)
    k = len(counts.agents)
    boot = np.empty((rounds, k))
    if rounds:
        rng = np.random.default_rng(seed)
        draws, iu, ju = _resample(counts, rounds, rng)
        for r in range(rounds):
            wins = np.zeros((k, k))
            ties = np.zeros((k, k))
            wins[iu, ju] = draws[r, :, 0]
            wins[ju, iu] = draws[r, :, 1]
            ties[iu, ju] = draws[r, :, 2]
            ties[ju, iu] = draws[r, :, 2]
            boot[r], _ = fit_davidson(
                PairCounts(counts.agents, wins, ties), ridge=ridge, start=start
            )
    alpha = (1.0 - confidence) / 2
    score = ELO_PER_LOG * theta + ELO_BASE
    if rounds:
        boot_score = ELO_PER_LOG * boot + ELO_BASE
        lower = np.quantile(boot_score, alpha, axis=0)
        upper = np.quantile(boot_score, 1 - alpha, axis=0)
        boot_ranks = np.apply_along_axis(ranks_of, 1, boot)
        rank_lo = np.floor(np.quantile(boot_ranks, alpha, axis=0, method="lower"))
        rank_hi = np.ceil(np.quantile(boot_ranks, 1 - alpha, axis=0, method="higher"))
    else:
        lower, upper = score.copy(), score.copy()
        rank_lo = rank_hi = ranks_of(theta).astype(float)
    no_upper, no_lower = unbounded_sides(counts)
    upper = np.where(no_upper, np.inf, upper)
    lower = np.where(no_lower, -np.inf, lower)
    ranks = ranks_of(theta)
    # Unbounded agents can take any rank on their open side; report that rather than a false range.
    rank_lo = np.where(no_upper, 1, np.minimum(rank_lo, ranks))
    rank_hi = np.where(no_lower, k, np.maximum(rank_hi, ranks))

    order = np.argsort(-theta, kind="stable")
    totals = counts.totals
    wins_row = counts.wins.sum(axis=1)
    losses_row = counts.wins.sum(axis=0)
    ties_row = counts.ties.sum(axis=1)
    agents = [
        AgentScore(
            agent=counts.agents[i],
            score=float(score[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            rank=int(ranks[i]),
            rank_lower=int(rank_lo[i]),
            rank_upper=int(rank_hi[i]),
            comparisons=int(totals[i].sum()),
            wins=int(wins_row[i]),
            losses=int(losses_row[i]),
            ties=int(ties_row[i]),
            log_strength=float(theta[i]),
        )
        for i in order
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = (counts.wins + 0.5 * counts.ties) / totals
    np.fill_diagonal(rate, np.nan)
    return Ranking(
        agents=agents,
        tie_parameter=nu,
        n_comparisons=counts.n_comparisons,
        win_rate=rate[np.ix_(order, order)],
        predicted=predicted_matrix(theta, nu)[np.ix_(order, order)],
        rounds=rounds,
        seed=seed,
    )
