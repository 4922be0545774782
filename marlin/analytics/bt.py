"""Bradley-Terry rankings with ties (Davidson 1970), fitted on aggregated pair counts.

Everything here works on the K x K table of counts, so the cost of a fit (and of every bootstrap
refit) depends on the number of agents K, not on the number of comparisons. The methods, their
assumptions and references are written up in docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
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

# Newton's method stops a round once its largest step is below this (log-strength units, i.e.
# 4e-7 Elo points); a full step is capped so a trial point cannot leave the float range.
STEP_TOL = 1e-9
MAX_STEP = 10.0
MAX_NEWTON_STEPS = 200
# Bootstrap rounds first take cheap steps with the point estimate's Hessian (a fixed, already
# inverted matrix: no per-round assembly or solve); rounds it does not settle get Newton steps.
FIXED_HESSIAN_STEPS = 40
# Rounds are processed in blocks of about this many (round, pair) cells, so each array stays in
# the CPU cache and memory does not grow with the number of rounds.
BLOCK_CELLS = 1 << 16

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


def _seen_pairs(counts: PairCounts) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs i < j compared at least once, and their (wins_ij, wins_ji, ties_ij) as a (P, 3)."""
    first, second = np.triu_indices(len(counts.agents), k=1)
    seen = counts.totals[first, second] > 0
    first, second = first[seen], second[seen]
    cells = np.stack(
        [counts.wins[first, second], counts.wins[second, first], counts.ties[first, second]],
        axis=1,
    )
    return first.astype(np.int64), second.astype(np.int64), cells


@dataclass(frozen=True)
class _Design:
    """The comparison graph of one fit: agents, the pairs seen, and the sparse maps from per-pair
    values to per-agent sums (signed: +1 for the first agent of a pair, -1 for the second)."""

    k: int
    first: IntArray
    second: IntArray
    signed: csr_matrix[np.float64]  # (K, P)
    unsigned: csr_matrix[np.float64]  # (K, P)


def _design(k: int, first: IntArray, second: IntArray) -> _Design:
    p = len(first)
    rows = np.concatenate([first, second])
    cols = np.concatenate([np.arange(p), np.arange(p)])
    signed = csr_matrix(
        (np.concatenate([np.ones(p), -np.ones(p)]), (rows, cols)), shape=(k, p), dtype=np.float64
    )
    unsigned = csr_matrix((np.ones(2 * p), (rows, cols)), shape=(k, p), dtype=np.float64)
    return _Design(k, first, second, signed, unsigned)


def _per_agent(matrix: csr_matrix[np.float64], values: FloatArray) -> FloatArray:
    """(B, P) per-pair values to (B, K) per-agent sums: one sparse product, no Python loop."""
    out: FloatArray = np.asarray(matrix @ values.T).T
    return out


class _Counts(NamedTuple):
    """Per round and pair: comparisons n, wins of the first minus wins of the second, ties."""

    n: FloatArray
    margin: FloatArray
    ties: FloatArray

    @classmethod
    def of(cls, cells: FloatArray) -> _Counts:
        """From (R, P, 3) cells of (wins_ij, wins_ji, ties_ij)."""
        return cls(cells.sum(axis=2), cells[:, :, 0] - cells[:, :, 1], cells[:, :, 2].copy())

    def rows(self, index: IntArray | BoolArray) -> _Counts:
        return _Counts(self.n[index], self.margin[index], self.ties[index])


def _pair_terms(
    design: _Design, theta: FloatArray, log_nu: FloatArray, *, with_log: bool
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Per round and pair: P(first wins) - P(second wins), P(tie), and (with_log) the log of the
    normaliser log(e^{d/2} + e^{-d/2} + nu), d = theta_i - theta_j.

    Written with r_i = exp(theta_i / 2 - max): P(i wins) = r_i^2 / (r_i^2 + r_j^2 + nu r_i r_j):
    one exp per agent rather than three per pair, nothing above 1 so nothing overflows, and the
    arithmetic in place because this is the inner loop of every fit.
    """
    half = 0.5 * theta
    half -= half.max(axis=1, keepdims=True)
    root = np.exp(half)
    ri = root[:, design.first]
    rj = root[:, design.second]
    tie = ri * rj
    tie *= np.exp(log_nu)[:, None]
    ri *= ri
    rj *= rj
    denom = ri + rj
    denom += tie
    diff = ri
    diff -= rj
    diff /= denom
    tie /= denom
    if not with_log:
        return diff, tie, None
    log_z = np.log(denom, out=denom)
    log_z -= half[:, design.first]
    log_z -= half[:, design.second]
    return diff, tie, log_z


def _objective(
    design: _Design,
    theta: FloatArray,
    log_nu: FloatArray,
    counts: _Counts,
    ridge: float,
    free_nu: BoolArray,
) -> FloatArray:
    """Penalised Davidson negative log-likelihood per round (the rows of theta)."""
    _, _, log_z = _pair_terms(design, theta, log_nu, with_log=True)
    assert log_z is not None
    half_diff = 0.5 * (theta[:, design.first] - theta[:, design.second])
    value = np.sum(counts.n * log_z - counts.margin * half_diff, axis=1)
    finite = np.where(np.isfinite(log_nu), log_nu, 0.0)
    value -= counts.ties.sum(axis=1) * finite
    value += ridge * np.sum(theta * theta, axis=1)
    value += np.where(free_nu, ridge * finite**2, 0.0)
    out: FloatArray = value
    return out


def _gradient_hessian(
    design: _Design,
    theta: FloatArray,
    log_nu: FloatArray,
    counts: _Counts,
    ridge: float,
    free_nu: BoolArray,
    *,
    hessian: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """Gradient (B, K+1) of the objective in (theta, log nu), and the Hessian (B, K+1, K+1).

    Per pair the outcome is a three-way choice in d = (theta_i - theta_j) / 2 and log nu, so the
    second derivatives are the covariances of the outcome scores (1, -1, 0) and (0, 0, 1): the
    theta block is a weighted graph Laplacian, assembled with fancy indexing, not a loop.
    """
    diff, p_tie, _ = _pair_terms(design, theta, log_nu, with_log=False)
    k = design.k
    b = theta.shape[0]
    grad = np.empty((b, k + 1))
    residual = counts.n * diff
    residual -= counts.margin
    grad[:, :k] = 0.5 * _per_agent(design.signed, residual)
    grad[:, :k] += 2 * ridge * theta
    finite = np.where(np.isfinite(log_nu), log_nu, 0.0)
    tie_residual = np.sum(counts.n * p_tie, axis=1) - counts.ties.sum(axis=1)
    grad[:, k] = np.where(free_nu, tie_residual + 2 * ridge * finite, 0.0)
    if not hessian:
        return grad, None
    weight = 0.25 * counts.n * (1.0 - p_tie - diff * diff)
    cross = -0.5 * counts.n * diff * p_tie
    hess = np.zeros((b, k + 1, k + 1))
    hess[:, design.first, design.second] = -weight
    hess[:, design.second, design.first] = -weight
    diagonal = _per_agent(design.unsigned, weight) + 2 * ridge
    idx = np.arange(k)
    hess[:, idx, idx] = diagonal
    column = _per_agent(design.signed, cross)
    hess[:, :k, k] = column
    hess[:, k, :k] = column
    tie_curvature = np.sum(counts.n * p_tie * (1.0 - p_tie), axis=1) + 2 * ridge
    hess[:, k, k] = np.where(free_nu, tie_curvature, 1.0)
    hess[:, :k, k] *= free_nu[:, None]
    hess[:, k, :k] *= free_nu[:, None]
    # The likelihood ignores a common shift of all theta; keeping theta centred (below) removes
    # that direction, and this term makes the matrix invertible along it even with ridge = 0.
    hess[:, :k, :k] += 1.0 / k
    return grad, hess


def _newton(
    design: _Design,
    theta: FloatArray,
    log_nu: FloatArray,
    counts: _Counts,
    ridge: float,
    free_nu: BoolArray,
) -> tuple[FloatArray, FloatArray]:
    """Damped Newton on every round at once (the rows of theta), with a backtracking line search.

    The objective is convex in (theta, log nu) (a log-sum-exp of linear terms) and strictly so
    with the ridge, so Newton converges from any start; rounds leave the batch as they converge.
    """
    theta = theta.copy()
    log_nu = log_nu.copy()
    k = design.k
    active = np.arange(theta.shape[0])
    for _ in range(MAX_NEWTON_STEPS):
        if active.size == 0:
            break
        th, ln, fr = theta[active], log_nu[active], free_nu[active]
        cs = counts.rows(active)
        grad, hess = _gradient_hessian(design, th, ln, cs, ridge, fr, hessian=True)
        assert hess is not None
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        size = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, MAX_STEP / np.maximum(size, MAX_STEP))[:, None]
        before = _objective(design, th, ln, cs, ridge, fr)
        slope = np.sum(grad * step, axis=1)
        alpha = np.ones(active.size)
        pending = np.ones(active.size, dtype=bool)
        new_th, new_ln = th.copy(), ln.copy()
        for _ in range(60):
            rows = np.flatnonzero(pending)
            trial_th = th[rows] - alpha[rows, None] * step[rows, :k]
            trial_th -= trial_th.mean(axis=1, keepdims=True)
            trial_ln = np.where(fr[rows], ln[rows] - alpha[rows] * step[rows, k], ln[rows])
            sub = cs.rows(rows)
            after = _objective(design, trial_th, trial_ln, sub, ridge, fr[rows])
            # Armijo, with slack for rounding once the decrease is below float resolution.
            ok = after <= before[rows] - 1e-4 * alpha[rows] * slope[rows] + 1e-12 * np.abs(
                before[rows]
            )
            new_th[rows[ok]], new_ln[rows[ok]] = trial_th[ok], trial_ln[ok]
            pending[rows[ok]] = False
            if not pending.any():
                break
            alpha[pending] *= 0.5
        theta[active], log_nu[active] = new_th, new_ln
        moved = np.where(pending, 0.0, alpha * size)
        active = active[moved > STEP_TOL]
    return theta, log_nu


def _fixed_hessian(
    design: _Design,
    theta: FloatArray,
    log_nu: FloatArray,
    counts: _Counts,
    ridge: float,
    free_nu: BoolArray,
    inverse: tuple[FloatArray, FloatArray],
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Steps x -= H0^-1 grad(x) with the point estimate's inverse Hessian H0^-1, for rounds that
    start near the point estimate: each step is one gradient and a (B, K+1) x (K+1, K+1) product.

    The steps shrink geometrically while a round's Hessian is close to H0. A round whose steps
    shrink by less than half (a resample far from the data, e.g. an agent that lost every
    resampled comparison) stops where it is and is left to Newton; returns the converged rounds.
    """
    theta = theta.copy()
    log_nu = log_nu.copy()
    k = design.k
    full, theta_only = inverse
    done = np.zeros(theta.shape[0], dtype=bool)
    slow = np.zeros(theta.shape[0], dtype=bool)
    last = np.full(theta.shape[0], np.inf)
    for _ in range(FIXED_HESSIAN_STEPS):
        rows = np.flatnonzero(~done & ~slow)
        if rows.size == 0:
            break
        cs = counts.rows(rows)
        fr = free_nu[rows]
        grad, _ = _gradient_hessian(design, theta[rows], log_nu[rows], cs, ridge, fr, hessian=False)
        step = grad @ full
        step[~fr, :k] = grad[~fr, :k] @ theta_only
        step[~fr, k] = 0.0
        size = np.abs(step).max(axis=1)
        shrinking = np.isfinite(size) & (size < 0.5 * last[rows])
        slow[rows[~shrinking]] = True
        go, step, size = rows[shrinking], step[shrinking], size[shrinking]
        theta[go] -= step[:, :k]
        theta[go] -= theta[go].mean(axis=1, keepdims=True)
        log_nu[go] = np.where(free_nu[go], log_nu[go] - step[:, k], log_nu[go])
        last[go] = size
        done[go[size <= STEP_TOL]] = True
    return theta, log_nu, done


def _solve(
    design: _Design,
    cells: FloatArray,
    start_theta: FloatArray,
    start_log_nu: float,
    ridge: float,
    inverse: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Fit every round of cells (B, P, 3) at once; returns theta (B, K), centred, and log nu
    (B,): -inf for a round without ties (plain Bradley-Terry), held within LOG_NU_BOUNDS.

    With inverse (the point estimate's inverse Hessian) rounds first take fixed-Hessian steps.
    """
    k = design.k
    counts = _Counts.of(cells)
    free: BoolArray = np.asarray(counts.ties.sum(axis=1) > 0)
    theta = np.broadcast_to(start_theta, (cells.shape[0], k)).copy()
    log_nu = np.where(free, start_log_nu, -np.inf)
    if inverse is not None:
        theta, log_nu, done = _fixed_hessian(design, theta, log_nu, counts, ridge, free, inverse)
    else:
        done = np.zeros(cells.shape[0], dtype=bool)
    rest = np.flatnonzero(~done)
    if rest.size:
        sub = counts.rows(rest)
        finite = np.all(np.isfinite(theta[rest]), axis=1, keepdims=True)
        start = np.where(finite, theta[rest], start_theta)
        theta[rest], log_nu[rest] = _newton(design, start, log_nu[rest], sub, ridge, free[rest])
    # Davidson's nu at a bound: the constrained optimum of a concave objective whose free
    # optimum lies outside the box sits on the box, so refit with log nu held there.
    out = free & ((log_nu < LOG_NU_BOUNDS[0]) | (log_nu > LOG_NU_BOUNDS[1]))
    if out.any():
        rows = np.flatnonzero(out)
        clipped = np.clip(log_nu[rows], *LOG_NU_BOUNDS)
        fixed = np.zeros(rows.size, dtype=bool)
        theta[rows], log_nu[rows] = _newton(
            design, theta[rows], clipped, counts.rows(rows), ridge, fixed
        )
    theta -= theta.mean(axis=1, keepdims=True)
    return theta, log_nu


def fit_davidson(
    counts: PairCounts, *, ridge: float = DEFAULT_RIDGE, start: FloatArray | None = None
) -> tuple[FloatArray, float]:
    """Maximum (penalised) likelihood log-strengths, centred to sum to zero, and Davidson's nu.

    With no ties in the data the model reduces to plain Bradley-Terry and nu is 0.
    """
    k = len(counts.agents)
    first, second, cells = _seen_pairs(counts)
    design = _design(k, first, second)
    if start is None:
        start = np.zeros(k + 1)
    start = np.asarray(start, dtype=float)
    theta, log_nu = _solve(
        design, cells[None], start[:k], float(start[k]) if len(start) > k else 0.0, ridge
    )
    nu = float(np.exp(log_nu[0])) if np.isfinite(log_nu[0]) else 0.0
    return theta[0], nu


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


def _inverse_hessian(
    design: _Design, cells: FloatArray, theta: FloatArray, log_nu: float, ridge: float
) -> tuple[FloatArray, FloatArray]:
    """H0^-1 at the point estimate for (theta, log nu), and for theta alone (rounds without
    ties, where nu is 0)."""
    counts = _Counts.of(cells[None])
    free = np.array([np.isfinite(log_nu)])
    _, hess = _gradient_hessian(
        design, theta[None], np.array([log_nu]), counts, ridge, free, hessian=True
    )
    assert hess is not None
    k = design.k
    full: FloatArray = np.linalg.inv(hess[0]).astype(np.float64, copy=False)
    if not free[0]:
        full[k, :] = 0.0
        full[:, k] = 0.0
    theta_only: FloatArray = np.linalg.inv(hess[0, :k, :k]).astype(np.float64, copy=False)
    return full, theta_only


def bootstrap_strengths(
    counts: PairCounts,
    theta: FloatArray,
    nu: float,
    *,
    rounds: int,
    seed: int | None,
    ridge: float = DEFAULT_RIDGE,
) -> FloatArray:
    """Log-strengths (rounds, K) refitted on per-pair multinomial resamples, all rounds at once.

    Every round starts from the point estimate (theta, nu); see _solve for how they are solved.
    """
    first, second, cells = _seen_pairs(counts)
    design = _design(len(counts.agents), first, second)
    log_nu = float(np.log(nu)) if nu > 0 else -np.inf
    inverse = _inverse_hessian(design, cells, theta, log_nu, ridge)
    start_log_nu = log_nu if nu > 0 else 0.0
    # Each pair's redraw is a multinomial of its outcomes with its total held fixed. Drawn block
    # by block (the generator's stream, hence the draws, are the same as in one call), so the
    # arrays stay small and in cache whatever the number of rounds.
    n = cells.sum(axis=1)
    trials = n.astype(np.int64)
    probs = cells / n[:, None]
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // max(len(first), (design.k + 1) ** 2 // 4, 1))
    boot = np.empty((rounds, design.k))
    for lo in range(0, rounds, block):
        size = min(block, rounds - lo)
        draws = rng.multinomial(trials, probs, size=(size, len(trials))).astype(np.float64)
        boot[lo : lo + size], _ = _solve(design, draws, theta, start_log_nu, ridge, inverse)
    return boot


def ranks_of(theta: FloatArray) -> IntArray:
    """Rank 1 = strongest; ties in strength share the better rank."""
    ranks: IntArray = 1 + np.sum(theta[None, :] > theta[:, None], axis=1)
    return ranks


def _ranks_of_rows(theta: FloatArray) -> IntArray:
    """ranks_of for each row, vectorised in blocks of rows that keep the (B, K, K) bounded."""
    rows, k = theta.shape
    out = np.empty((rows, k), dtype=np.int64)
    step = max(1, (1 << 22) // max(k * k, 1))
    for lo in range(0, rows, step):
        part = theta[lo : lo + step]
        out[lo : lo + step] = 1 + np.sum(part[:, None, :] > part[:, :, None], axis=2)
    return out


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
    k = len(counts.agents)
    boot = np.empty((0, k))
    if rounds:
        boot = bootstrap_strengths(counts, theta, nu, rounds=rounds, seed=seed, ridge=ridge)
    alpha = (1.0 - confidence) / 2
    score = ELO_PER_LOG * theta + ELO_BASE
    if rounds:
        boot_score = ELO_PER_LOG * boot + ELO_BASE
        lower = np.quantile(boot_score, alpha, axis=0)
        upper = np.quantile(boot_score, 1 - alpha, axis=0)
        boot_ranks = _ranks_of_rows(boot)
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
