"""Active pair selection: which task x pair to ask the experts about next.

Plain numpy; the Django side feeds it the project's pair counts, its fitted log-strengths and
the measured expert minutes per comparison of each task kind. Methods, their assumptions and
references: docs/statistics.md ("Choosing the next comparisons").

The value of one more decided comparison of agents i and j is how much it is expected to shrink
the uncertainty the leaderboard shows, computed from the Fisher information of the Davidson
model: the comparison adds w_ij x x' to the information (x = e_i - e_j, w_ij the information
about theta_i - theta_j in one outcome), so by Sherman-Morrison the covariance of the
log-strengths becomes C - w C x x' C / (1 + w x' C x). Two targets:

- "width": the sum over agents of the drop in standard deviation (interval widths are
  proportional to it);
- "swap": the drop in the summed probability that adjacent ranks are in the wrong order,
  Phi(-|gap| / sd(gap)) per adjacent pair, with the estimated gaps taken as true;
- "order": the expected drop in the number of agent pairs ranked in the wrong order, averaged
  over what new outcomes may do to the estimated gaps (a knowledge-gradient value): for each
  pair of agents, P(wrong order) = Phi(-|gap| / sd) now, and after m more comparisons the gap
  estimate moves by a normal amount of variance sd^2 - sd'^2 and its sd falls to sd'; a
  candidate's value is its best drop per comparison over m in LOOKAHEAD.

Value per expected expert minute ranks the candidates. A share ``explore`` of picks is uniform
over the allowed candidates, so every pair keeps being compared now and then (the model can be
wrong, and the bootstrap needs data on every part of the graph).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr, owens_t
from scipy.stats import norm

from marlin.analytics.bt import PairCounts, fit_davidson
from marlin.analytics.confidence import fisher_information

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Target = Literal["width", "swap", "order"]
TARGETS: dict[str, str] = {
    "width": "shrinks the leaderboard's intervals most",
    "swap": "most lowers the chance that neighbouring ranks are swapped",
    "order": "most lowers the expected number of agents ranked in the wrong order",
}
# A Gaussian prior on each log-strength (sd 2, i.e. about 350 Elo points): it keeps the
# covariance finite for agents with no comparisons yet, and weighs nothing once there are a few.
PRIOR_PRECISION = 0.25
DEFAULT_EXPLORE = 0.1
# The "order" target leaves out pairs of agents whose order is sure (P(wrong order) below this),
# and values a candidate by its best drop per comparison over this many comparisons of it.
SURELY_ORDERED = 1e-4
LOOKAHEAD = (1, 4, 16)


class SelectionError(ValueError):
    """Candidates that cannot be scored; the message says what to change."""


@dataclass(frozen=True)
class Model:
    """What the selection needs of a fitted leaderboard: strengths, tie parameter, covariance."""

    theta: FloatArray  # centred log-strengths, K
    nu: float  # Davidson's tie parameter (0: no ties)
    cov: FloatArray  # K x K covariance of theta


def outcome_information(
    theta: FloatArray, nu: float, first: IntArray, second: IntArray
) -> FloatArray:
    """Fisher information about theta_first - theta_second carried by one outcome of the pair.

    Davidson's outcome log-odds are (d/2, -d/2, log nu) with d the difference, so the information
    is the variance of the score 1/2 [first wins] - 1/2 [second wins].
    """
    half = 0.5 * (theta[first] - theta[second])
    m = np.abs(half)
    e_w, e_l = np.exp(half - m), np.exp(-half - m)
    e_t = nu * np.exp(-m)
    total = e_w + e_l + e_t
    p_w, p_l = e_w / total, e_l / total
    info: FloatArray = 0.25 * (p_w + p_l) - 0.25 * (p_w - p_l) ** 2
    return info


def model_of(counts: PairCounts, theta: FloatArray, nu: float) -> Model:
    """The covariance of theta from the information of the decided comparisons and the prior."""
    k = len(counts.agents)
    if theta.shape != (k,):
        raise SelectionError(f"theta has shape {theta.shape}; expected ({k},)")
    info = fisher_information(counts, theta, nu)[:k, :k] + PRIOR_PRECISION * np.eye(k)
    cov = np.linalg.inv(info)
    # Centre it as the leaderboard centres the strengths (they sum to zero).
    centre = np.eye(k) - 1.0 / k
    return Model(theta=theta, nu=nu, cov=centre @ cov @ centre)


def fitted_model(counts: PairCounts) -> Model:
    """The model of the decided comparisons with the strengths at their posterior mode under the
    same prior as the covariance (penalty PRIOR_PRECISION / 2 * theta^2).

    The leaderboard's own fit has an almost flat prior, so an agent that never lost gets a huge
    strength; plugged in here, every pair with it would carry almost no information and it would
    never be chosen again, however uncertain it is. The prior keeps it in play.
    """
    theta, nu = fit_davidson(counts, ridge=PRIOR_PRECISION / 2)
    return model_of(counts, theta, nu)


def values(
    model: Model, first: IntArray, second: IntArray, *, target: Target = "width"
) -> FloatArray:
    """Expected drop of the target uncertainty from one more decided comparison of each pair."""
    if target not in TARGETS:
        raise SelectionError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    if np.any(first == second):
        raise SelectionError("a candidate pairs an agent with itself")
    cov = model.cov
    w = outcome_information(model.theta, model.nu, first, second)
    cx = cov[:, first] - cov[:, second]  # K x P: C x for each candidate
    q = cx[first, np.arange(len(first))] - cx[second, np.arange(len(first))]  # x' C x
    shrink = w / (1.0 + w * q)
    if target == "width":
        var = np.clip(np.diag(cov), 0.0, None)
        after = np.clip(var[:, None] - shrink[None, :] * cx**2, 0.0, None)
        out: FloatArray = np.sum(np.sqrt(var)[:, None] - np.sqrt(after), axis=0)
        return out
    if target == "order":
        return _order_values(model, cx, w, q)
    order = np.argsort(-model.theta, kind="stable")
    upper, lower = order[:-1], order[1:]
    gap = np.abs(model.theta[upper] - model.theta[lower])
    y_var = cov[upper, upper] + cov[lower, lower] - 2 * cov[upper, lower]  # A
    y_cx = cx[upper] - cx[lower]  # A x P: y' C x
    after = np.clip(y_var[:, None] - shrink[None, :] * y_cx**2, 1e-12, None)
    before = norm.cdf(-gap / np.sqrt(np.clip(y_var, 1e-12, None)))
    out = np.sum(before[:, None] - norm.cdf(-gap[:, None] / np.sqrt(after)), axis=0)
    return out


def _order_values(model: Model, cx: FloatArray, w: FloatArray, q: FloatArray) -> FloatArray:
    """Drop of the expected number of agent pairs in the wrong order, per comparison, per
    candidate: the best over m in LOOKAHEAD of (the drop after m comparisons of the pair) / m.

    One comparison rarely moves an estimated gap across zero unless the gap is already near
    it, so a one-step value would never spend comparisons on a gap that needs a few of them
    (the value of information is not concave; Frazier and Powell 2010 take the best m, "KG(*)").
    """
    upper, lower = np.triu_indices(len(model.theta), k=1)
    gap = np.abs(model.theta[upper] - model.theta[lower])
    cov = model.cov
    var = np.clip(cov[upper, upper] + cov[lower, lower] - 2 * cov[upper, lower], 1e-12, None)
    keep = ndtr(-gap / np.sqrt(var)) > SURELY_ORDERED  # far apart: nothing will flip them
    gap, var = gap[keep], var[keep]
    ycx2 = (cx[upper[keep]] - cx[lower[keep]]) ** 2  # pairs x candidates: (y' C x)^2
    out: FloatArray = np.zeros(len(w))
    for m in LOOKAHEAD:
        out = np.maximum(out, _order_drop(gap, var, ycx2 * (m * w / (1 + m * w * q))) / m)
    return out


def _order_drop(gap: FloatArray, var: FloatArray, moved: FloatArray) -> FloatArray:
    """Per candidate: the summed drop of P(wrong order) over pairs of agents.

    For one pair of agents with estimated gap g >= 0 of sd S, new outcomes move the estimate to
    u ~ N(g, s^2) (s^2 = ``moved``) and leave sd S' (S^2 = S'^2 + s^2). The expected
    P(wrong order) after is E Phi(-|u| / S'); since E Phi(-u / S') = Phi(-g / S), the drop is
    E[(1 - 2 Phi(u / S')) 1(u < 0)] = Phi(-g / s) - 2 P(V <= u, u <= 0) with V ~ N(0, S'^2),
    a bivariate normal probability (corr -s / S at g / S and -g / s), in closed form through
    Owen's T function.
    """
    sd = np.sqrt(var)[:, None] * np.ones_like(moved)
    s = np.sqrt(np.clip(moved, 1e-24, sd**2 * (1 - 1e-9)))
    g = np.maximum(gap, 1e-9)[:, None] * np.ones_like(s)  # Owen's T needs h != 0
    # The estimate moves by about s: where the gap is more than 8 s away from 0 the order
    # cannot flip (the drop is below Phi(-8)), so only the rest is computed.
    near = g < 8 * s
    g, s, sd = g[near], s[near], sd[near]
    h, k, rho = g / sd, -g / s, -s / sd
    root = np.sqrt(1 - rho**2)
    # Phi2(h, k; rho) for h > 0 > k (Owen 1956): the -1/2 is the hk < 0 branch.
    both = (
        0.5 * ndtr(h)
        + 0.5 * ndtr(k)
        - owens_t(h, (k - rho * h) / (h * root))
        - owens_t(k, (h - rho * k) / (k * root))
        - 0.5
    )
    drop = np.zeros_like(moved)
    drop[near] = np.clip(ndtr(k) - 2 * both, 0.0, None)
    out: FloatArray = drop.sum(axis=0)
    return out


def update(model: Model, first: int, second: int) -> Model:
    """The model after one more (not yet decided) comparison of the pair: covariance only."""
    f = np.array([first])
    s = np.array([second])
    w = float(outcome_information(model.theta, model.nu, f, s)[0])
    cx = model.cov[:, first] - model.cov[:, second]
    q = cx[first] - cx[second]
    cov = model.cov - (w / (1.0 + w * q)) * np.outer(cx, cx)
    return Model(theta=model.theta, nu=model.nu, cov=cov)


@dataclass(frozen=True)
class Pick:
    index: int  # into the candidates
    explored: bool  # chosen by the uniform floor, not by its value
    value: float  # expected drop of the target per comparison
    per_minute: float  # value / expected expert minutes


def choose(
    model: Model,
    first: IntArray,
    second: IntArray,
    minutes: FloatArray,
    rng: np.random.Generator,
    *,
    allowed: BoolArray | None = None,
    target: Target = "width",
    explore: float = DEFAULT_EXPLORE,
) -> Pick:
    """One candidate: the best value per expert minute, or (with probability explore) a uniform
    pick among the allowed ones."""
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    minutes = np.asarray(minutes, dtype=float)
    if not (first.shape == second.shape == minutes.shape) or first.ndim != 1 or not first.size:
        raise SelectionError("first, second and minutes must be non-empty 1-d arrays of one length")
    if np.any(~np.isfinite(minutes)) or np.any(minutes <= 0):
        raise SelectionError("expected minutes must be positive numbers")
    if not 0.0 <= explore <= 1.0:
        raise SelectionError(f"explore must lie in 0..1; got {explore}")
    ok = np.ones(first.size, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    if not ok.any():
        raise SelectionError("no candidate is allowed (the blinding policy excludes them all)")
    value = values(model, first, second, target=target)
    per_minute = value / minutes
    explored = bool(rng.random() < explore)
    if explored:
        index = int(rng.choice(np.flatnonzero(ok)))
    else:
        # Among equal values (e.g. before any data), take a random one, not the first listed.
        score = np.where(ok, per_minute, -np.inf)
        best = np.flatnonzero(score >= score.max() - 1e-12 * max(abs(score.max()), 1.0))
        index = int(rng.choice(best))
    return Pick(index, explored, float(value[index]), float(per_minute[index]))


def plan(
    model: Model,
    first: IntArray,
    second: IntArray,
    minutes: FloatArray,
    n: int,
    rng: np.random.Generator,
    *,
    allowed: BoolArray | None = None,
    target: Target = "width",
    explore: float = DEFAULT_EXPLORE,
    repeat: bool = True,
) -> list[Pick]:
    """n picks in a row, each counting the ones before it as if already decided (their outcome
    is unknown, but their information is not), so a batch spreads over the pairs that need it.

    ``repeat=False`` takes each candidate at most once (ready comparisons in a queue).
    """
    ok = np.ones(len(first), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    ok = ok.copy()
    picks: list[Pick] = []
    for _ in range(n):
        if not ok.any():
            break
        pick = choose(
            model, first, second, minutes, rng, allowed=ok, target=target, explore=explore
        )
        picks.append(pick)
        model = update(model, int(first[pick.index]), int(second[pick.index]))
        if not repeat:
            ok[pick.index] = False
    return picks


def all_pairs(k: int) -> tuple[IntArray, IntArray]:
    """Every unordered pair of k agents, as two index arrays (i < j)."""
    if k < 2:
        raise SelectionError(f"choosing a pair needs at least two agents; got {k}")
    i, j = np.triu_indices(k, k=1)
    return i.astype(np.int64), j.astype(np.int64)


def describe(pick: Pick, target: Target, minutes: float) -> str:
    """Why a candidate was chosen, in a sentence for the project page."""
    if pick.explored:
        return "picked at random (the uniform exploration floor keeps every pair in play)"
    return (
        f"{TARGETS[target]} per expert minute: expected drop {pick.value:.3g} for about "
        f"{math.ceil(minutes)} expert minutes"
    )
