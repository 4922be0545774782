"""Inter-rater agreement and rater-quality statistics for judgments on the 7-point scale.

The scale is the integers -3..3: negative means side A is better, 0 a tie, positive B better;
None means "not applicable" and is left out. Methods and references: docs/statistics.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest

Level = Literal["nominal", "ordinal", "interval", "ratio"]
SCALE = tuple(range(-3, 4))
FloatArray = npt.NDArray[np.float64]
# Whatever the caller identifies raters, units, experts and comparisons by (ids, names).
R = TypeVar("R", bound=Hashable)
U = TypeVar("U", bound=Hashable)
E = TypeVar("E", bound=Hashable)
C = TypeVar("C", bound=Hashable)


class AgreementError(ValueError):
    """Input that no agreement statistic can be computed on; the message says why."""


def reliability_matrix(
    ratings: Iterable[tuple[R, U, float | None]],
) -> tuple[list[R], list[U], FloatArray]:
    """Turn (rater, unit, value) triples into raters x units with NaN where nobody rated."""
    cells: dict[tuple[R, U], float] = {}
    raters: dict[R, None] = {}
    units: dict[U, None] = {}
    for rater, unit, value in ratings:
        raters.setdefault(rater, None)
        units.setdefault(unit, None)
        if value is None:
            continue
        if (rater, unit) in cells:
            raise AgreementError(f"rater {rater!r} rated unit {unit!r} twice; keep one rating")
        cells[(rater, unit)] = float(value)
    r_index = {r: i for i, r in enumerate(raters)}
    u_index = {u: i for i, u in enumerate(units)}
    data = np.full((len(raters), len(units)), np.nan)
    for (rater, unit), value in cells.items():
        data[r_index[rater], u_index[unit]] = value
    return list(raters), list(units), data


def _value_counts(
    data: npt.ArrayLike, value_domain: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray]:
    """Units x values count matrix over pairable units (two or more values), and the values."""
    data = np.asarray(data, dtype=float)
    if data.ndim != 2:
        raise AgreementError("reliability data must be a 2-d array: raters x units")
    present = data[~np.isnan(data)]
    values = np.unique(present) if value_domain is None else np.asarray(value_domain, dtype=float)
    if value_domain is not None and not np.all(np.isin(present, values)):
        raise AgreementError("the data hold values outside value_domain")
    counts = np.stack([(data == v).sum(axis=0) for v in values], axis=1).astype(float)
    counts = counts[counts.sum(axis=1) >= 2]
    return counts, values


def _distance(values: FloatArray, marginals: FloatArray, level: Level) -> FloatArray:
    """Squared difference function delta^2 of Krippendorff (2011) for each pair of values."""
    vc, vk = values[:, None], values[None, :]
    if level == "nominal":
        unequal: npt.NDArray[np.bool_] = vc != vk  # numpy types != on arrays as Any
        return unequal.astype(np.float64)
    if level == "interval":
        return (vc - vk) ** 2
    if level == "ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            d = ((vc - vk) / (vc + vk)) ** 2
        return np.nan_to_num(d)
    if level == "ordinal":
        # Ranks count how many pairable values lie between c and k, half of the end points.
        cum = np.cumsum(marginals)
        lo = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
        hi = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
        between = cum[hi] - cum[lo] + marginals[lo]
        return (between - (marginals[:, None] + marginals[None, :]) / 2) ** 2
    raise AgreementError(f"level must be nominal, ordinal, interval or ratio; got {level!r}")


def krippendorff_alpha(
    data: npt.ArrayLike, level: Level = "ordinal", value_domain: Iterable[float] | None = None
) -> float:
    """Krippendorff's alpha from the coincidence matrix of raters x units data (NaN = missing)."""
    counts, values = _value_counts(data, None if value_domain is None else np.array(value_domain))
    if counts.shape[0] == 0:
        raise AgreementError("no unit was rated by two or more raters; alpha is undefined")
    m_u = counts.sum(axis=1)
    # o_ck = sum over units of (ordered c-k pairs from different raters) / (m_u - 1).
    weighted = counts / (m_u - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    marginals = coincidence.sum(axis=1)
    n: np.float64 = marginals.sum()
    delta = _distance(values, marginals, level)
    observed = float(np.sum(coincidence * delta))
    expected = float(marginals @ delta @ marginals) / (n - 1)
    if expected == 0:
        raise AgreementError("every pairable value is the same; alpha is undefined")
    return 1.0 - observed / expected


def percent_agreement(data: npt.ArrayLike) -> float:
    """Share of pairs of ratings of the same unit (by different raters) that are equal."""
    counts, _ = _value_counts(data, None)
    if counts.shape[0] == 0:
        raise AgreementError("no unit was rated by two or more raters")
    m_u = counts.sum(axis=1)
    return float(np.sum(counts * (counts - 1)) / np.sum(m_u * (m_u - 1)))


@dataclass(frozen=True)
class ExpertAgreement(Generic[E]):
    expert: E
    judgments: int  # judgments with both a rating and a decision
    matches: int  # same direction (A better, tie, B better) as the decision
    agreement: float  # matches / judgments
    mean_abs_distance: float  # mean |rating - decision| on the -3..3 scale


@dataclass(frozen=True)
class SideBias(Generic[E]):
    expert: E
    decided: int  # judgments that preferred a side (ties and None left out)
    prefer_a: int
    share_a: float
    lower: float  # Wilson interval for the share preferring A
    upper: float
    p_value: float  # two-sided exact binomial test of share_a = 0.5


def _check_scale(value: int | None) -> int | None:
    if value is not None and value not in SCALE:
        raise AgreementError(f"ratings must be integers -3..3 or None; got {value!r}")
    return value


def expert_agreement(
    judgments: Iterable[tuple[E, C, int | None]],
    decisions: Mapping[C, int | None],
) -> list[ExpertAgreement[E]]:
    """Per expert: how often their (expert, comparison, rating) matched the final decision."""
    per_expert: dict[E, list[tuple[int, int]]] = defaultdict(list)
    for expert, comparison, rating in judgments:
        decision = _check_scale(decisions.get(comparison))
        rating = _check_scale(rating)
        if rating is None or decision is None:
            continue
        per_expert[expert].append((rating, decision))
    out = []
    for expert, pairs in per_expert.items():
        arr = np.array(pairs)
        matches = int(np.sum(np.sign(arr[:, 0]) == np.sign(arr[:, 1])))
        out.append(
            ExpertAgreement(
                expert=expert,
                judgments=len(arr),
                matches=matches,
                agreement=matches / len(arr),
                mean_abs_distance=float(np.mean(np.abs(arr[:, 0] - arr[:, 1]))),
            )
        )
    return out


def side_bias(
    judgments: Iterable[tuple[E, int | None]], confidence: float = 0.95
) -> list[SideBias[E]]:
    """Per expert: share of non-tie (expert, rating) judgments that preferred side A, and a test."""
    counts: dict[E, list[int]] = defaultdict(lambda: [0, 0])
    for expert, rating in judgments:
        rating = _check_scale(rating)
        if rating is None or rating == 0:
            counts.setdefault(expert, [0, 0])
            continue
        counts[expert][0 if rating < 0 else 1] += 1
    out = []
    for expert, (a, b) in counts.items():
        n = a + b
        if n == 0:
            out.append(SideBias(expert, 0, 0, float("nan"), 0.0, 1.0, 1.0))
            continue
        test = binomtest(a, n, 0.5)
        ci = test.proportion_ci(confidence_level=confidence, method="wilson")
        out.append(SideBias(expert, n, a, a / n, float(ci.low), float(ci.high), float(test.pvalue)))
    return out
