"""Chance-corrected agreement coefficients with their standard errors (Gwet 2014's framework).

Every coefficient here has the form (pa - pe) / (1 - pe): pa is the observed agreement, pe the
agreement expected by chance, and the coefficients differ only in pe. Weighted versions credit
near misses with a weight matrix w (1 on the diagonal). Standard errors are Gwet's linearised
("jackknife-like") variances over units, as in the irrCAC package; where no closed form is
implemented (Krippendorff's alpha) the interval is a percentile bootstrap over units. Data are
raters x units with NaN for "did not rate" (agreement.reliability_matrix builds them). Methods,
references and what the figures mean: docs/statistics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.stats import t as student_t

from marlin.analytics.agreement import AgreementError, krippendorff_alpha

FloatArray = npt.NDArray[np.float64]
Categories = Sequence[float] | npt.NDArray[np.float64]
Weights = Literal["identity", "linear", "quadratic"]
Method = Literal[
    "percent", "fleiss", "gwet", "brennan_prediger", "conger", "cohen", "scott", "krippendorff"
]
DEFAULT_BOOTSTRAP_ROUNDS = 500


@dataclass(frozen=True)
class Coefficient:
    name: str  # "Fleiss' kappa", "Gwet's AC2", ...
    value: float
    pa: float  # observed (weighted) agreement
    pe: float  # chance agreement
    se: float | None  # linearised standard error; None when only a bootstrap interval exists
    lower: float  # confidence interval, clipped to [-1, 1]
    upper: float
    interval: str  # "t" (value ± t·se) or "bootstrap" (percentiles over resampled units)
    units: int  # units that entered the coefficient
    weights: str


def weight_matrix(categories: Categories, kind: Weights = "identity") -> FloatArray:
    """Agreement weights between category values (Gwet 2014, ch. 3; Cohen 1968).

    linear: 1 - |x_k - x_l| / (max - min); quadratic: 1 - (x_k - x_l)^2 / (max - min)^2.
    Numeric categories are used as values, so unused categories still set the range.
    """
    x: FloatArray = np.asarray(categories, dtype=np.float64)
    eye: FloatArray = np.eye(len(x), dtype=np.float64)
    if kind == "identity":
        return eye
    span = float(x.max() - x.min()) if len(x) else 0.0
    if span == 0:
        return eye
    diff: FloatArray = np.abs(x[:, None] - x[None, :]) / span
    if kind == "linear":
        return 1.0 - diff
    if kind == "quadratic":
        return 1.0 - diff**2
    raise AgreementError(f"weights must be identity, linear or quadratic; got {kind!r}")


def _categories(data: FloatArray, categories: Categories | None) -> FloatArray:
    present: FloatArray = np.unique(data[~np.isnan(data)])
    if categories is None:
        return present
    cats: FloatArray = np.asarray(categories, dtype=np.float64)
    if not np.all(np.isin(present, cats)):
        raise AgreementError("the ratings hold values outside the given categories")
    return cats


def _as_data(data: npt.ArrayLike) -> FloatArray:
    arr: FloatArray = np.asarray(data, dtype=np.float64)
    if arr.ndim != 2:
        raise AgreementError("ratings must be a 2-d array: raters x units")
    return arr


def unit_counts(data: npt.ArrayLike, categories: Categories | None = None) -> FloatArray:
    """r_ik: how many raters put unit i in category k, for units rated at least once."""
    arr = _as_data(data)
    cats = _categories(arr, categories)
    counts: FloatArray = np.stack([(arr == c).sum(axis=0) for c in cats], axis=1).astype(np.float64)
    rated: FloatArray = counts[counts.sum(axis=1) >= 1]
    return rated


def _observed(counts: FloatArray, w: FloatArray) -> tuple[float, FloatArray, int, int]:
    """pa, the per-unit agreement pa_i (0 for units rated once), n units and n2 pairable units."""
    r = counts.sum(axis=1)
    weighted = counts @ w.T  # r*_ik = sum_l w_kl r_il
    pairable = r >= 2
    n2 = int(pairable.sum())
    if n2 == 0:
        raise AgreementError("no unit was rated by two or more raters")
    pa_i = np.zeros(len(r))
    pa_i[pairable] = np.sum(counts * (weighted - 1), axis=1)[pairable] / (
        r[pairable] * (r[pairable] - 1)
    )
    return float(pa_i[pairable].mean()), pa_i, len(r), n2


def _t_interval(value: float, se: float, n: int, confidence: float) -> tuple[float, float]:
    q = float(student_t.ppf(1 - (1 - confidence) / 2, max(n - 1, 1)))
    return max(-1.0, value - q * se), min(1.0, value + q * se)


def _result(
    name: str,
    pa: float,
    pe: float,
    terms: FloatArray,
    n: int,
    weights: str,
    confidence: float,
) -> Coefficient:
    """Coefficient with Gwet's variance (1 / (n (n-1))) * sum_i (term_i - coefficient)^2."""
    if pe >= 1:
        raise AgreementError(f"{name} is undefined: chance agreement is 1 (one category only)")
    value = (pa - pe) / (1 - pe)
    se = float(np.sqrt(np.sum((terms - value) ** 2) / (n * (n - 1)))) if n > 1 else float("nan")
    lower, upper = _t_interval(value, se, n, confidence)
    return Coefficient(name, value, pa, pe, se, lower, upper, "t", n, weights)


def percent_agreement_per_unit(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Per unit, the share of pairs of its ratings that agree; then the mean over units."""
    counts = unit_counts(data, categories)
    w = weight_matrix(_categories(_as_data(data), categories), weights)
    pa, pa_i, n, n2 = _observed(counts, w)
    return _result("Percent agreement (per unit)", pa, 0.0, (n / n2) * pa_i, n, weights, confidence)


def _pi(counts: FloatArray) -> FloatArray:
    """pi_k: mean over units (rated at least once) of the share of the unit's ratings in k."""
    pi: FloatArray = np.mean(counts / counts.sum(axis=1)[:, None], axis=0)
    return pi


def fleiss_kappa(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Fleiss' (1971) kappa, generalised to missing ratings and weights (Gwet 2014, §5)."""
    counts = unit_counts(data, categories)
    w = weight_matrix(_categories(_as_data(data), categories), weights)
    pa, pa_i, n, n2 = _observed(counts, w)
    pi = _pi(counts)
    pe = float(pi @ w @ pi)
    if pe >= 1:
        raise AgreementError("Fleiss' kappa is undefined: every rating is in one category")
    value = (pa - pe) / (1 - pe)
    r = counts.sum(axis=1)
    terms = (n / n2) * (pa_i - pe * (r >= 2)) / (1 - pe)
    pi_w = (w @ pi + w.T @ pi) / 2
    pe_i = (counts @ pi_w) / r
    terms = terms - 2 * (1 - value) * (pe_i - pe) / (1 - pe)
    return _result("Fleiss' kappa", pa, pe, terms, n, weights, confidence)


def gwet_ac(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Gwet's AC1 (identity weights) or AC2 (any other weights), Gwet (2008, 2014)."""
    cats = _categories(_as_data(data), categories)
    q = len(cats)
    if q < 2:
        raise AgreementError("Gwet's AC needs at least two categories")
    counts = unit_counts(data, categories)
    w = weight_matrix(cats, weights)
    pa, pa_i, n, n2 = _observed(counts, w)
    pi = _pi(counts)
    tw = float(w.sum())
    pe = tw * float(np.sum(pi * (1 - pi))) / (q * (q - 1))
    value = (pa - pe) / (1 - pe)
    r = counts.sum(axis=1)
    terms = (n / n2) * (pa_i - pe * (r >= 2)) / (1 - pe)
    pe_i = (tw / (q * (q - 1))) * (counts @ (1 - pi)) / r
    terms = terms - 2 * (1 - value) * (pe_i - pe) / (1 - pe)
    name = "Gwet's AC1" if weights == "identity" else "Gwet's AC2"
    return _result(name, pa, pe, terms, n, weights, confidence)


def brennan_prediger(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Brennan & Prediger (1981): chance agreement from uniform use of the q categories."""
    cats = _categories(_as_data(data), categories)
    q = len(cats)
    counts = unit_counts(data, categories)
    w = weight_matrix(cats, weights)
    pa, pa_i, n, n2 = _observed(counts, w)
    pe = float(w.sum()) / q**2
    r = counts.sum(axis=1)
    terms = (n / n2) * (pa_i - pe * (r >= 2)) / (1 - pe)
    return _result("Brennan-Prediger", pa, pe, terms, n, weights, confidence)


def _conger_value(data: FloatArray, cats: FloatArray, w: FloatArray) -> tuple[float, float, float]:
    counts = unit_counts(data, cats)
    pa, _, _, _ = _observed(counts, w)
    rated = ~np.isnan(data)  # raters x units
    n_g = rated.sum(axis=1)
    if np.any(n_g == 0):
        data = data[n_g > 0]
        rated, n_g = rated[n_g > 0], n_g[n_g > 0]
    r = data.shape[0]
    if r < 2:
        raise AgreementError("Conger's kappa needs at least two raters")
    p_gk = np.stack([(data == c).sum(axis=1) / n_g for c in cats], axis=1)  # raters x q
    p_k = p_gk.mean(axis=0)
    s2 = (p_gk.T @ p_gk - r * np.outer(p_k, p_k)) / (r - 1)
    pe = float(np.sum(w * (np.outer(p_k, p_k) - s2 / r)))
    if pe >= 1:
        raise AgreementError("Conger's kappa is undefined: every rating is in one category")
    return (pa - pe) / (1 - pe), pa, pe


def bootstrap_units(
    statistic: Callable[[FloatArray], float],
    data: npt.ArrayLike,
    *,
    rounds: int = DEFAULT_BOOTSTRAP_ROUNDS,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """Percentile bootstrap of statistic over units (columns) drawn with replacement.

    Returns (lower, upper, standard deviation of the replicates). Replicates where the statistic
    is undefined (say, every resampled rating in one category) are dropped.
    """
    arr = _as_data(data)
    rng = np.random.default_rng(seed)
    n = arr.shape[1]
    reps = []
    for _ in range(rounds):
        cols = rng.integers(0, n, size=n)
        try:
            reps.append(statistic(arr[:, cols]))
        except AgreementError:
            continue
    if len(reps) < max(10, rounds // 2):
        raise AgreementError("too few units for a bootstrap interval")
    values = np.asarray(reps)
    alpha = (1 - confidence) / 2
    return (
        float(np.quantile(values, alpha)),
        float(np.quantile(values, 1 - alpha)),
        float(values.std(ddof=1)),
    )


def conger_kappa(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Conger (1980): Cohen's kappa for several raters, each rater's own category shares.

    Variance: Gwet's (2014) linearisation, which also carries how each unit moves the raters'
    category shares p_gk (the lambda terms below), as irrCAC computes it.
    """
    arr = _as_data(data)
    arr = arr[:, ~np.all(np.isnan(arr), axis=0)]  # units nobody rated carry nothing
    arr = arr[~np.all(np.isnan(arr), axis=1)]  # nor do raters who rated nothing
    cats = _categories(arr, categories)
    w = weight_matrix(cats, weights)
    value, pa, pe = _conger_value(arr, cats, w)
    raters, n = arr.shape
    rated = ~np.isnan(arr)
    n_g = rated.sum(axis=1).astype(float)
    p_gk = np.stack([(arr == c).sum(axis=1) / n_g for c in cats], axis=1)  # raters x q
    eps = rated.T.astype(float)  # units x raters
    lam = np.zeros((n, raters))
    for k in range(len(cats)):
        lam_k = np.zeros((n, raters))
        for m, c in enumerate(cats):
            delta = (arr.T == c).astype(float)
            lam_k += w[k, m] * (delta - (eps - n_g[None, :] / n) * p_gk[None, :, m])
        lam_k *= (n / n_g)[None, :]
        lam += lam_k * (raters * p_gk[:, k].mean() - p_gk[None, :, k])
    pe_i = lam.sum(axis=1) / (raters * (raters - 1))
    counts = unit_counts(arr, cats)
    _, pa_i, _, n2 = _observed(counts, w)
    r = counts.sum(axis=1)
    terms = (n / n2) * (pa_i - pe * (r >= 2)) / (1 - pe)
    terms = terms - 2 * (1 - value) * (pe_i - pe) / (1 - pe)
    return _result("Conger's kappa", pa, pe, terms, n, weights, confidence)


def krippendorff_alpha_interval(
    data: npt.ArrayLike,
    level: Literal["nominal", "ordinal", "interval", "ratio"] = "ordinal",
    categories: Categories | None = None,
    confidence: float = 0.95,
    *,
    rounds: int = DEFAULT_BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> Coefficient:
    """Krippendorff's alpha (agreement.krippendorff_alpha) with a bootstrap over units."""
    arr = _as_data(data)
    value = krippendorff_alpha(arr, level, categories)
    lower, upper, _ = bootstrap_units(
        lambda d: krippendorff_alpha(d, level, categories),
        arr,
        rounds=rounds,
        seed=seed,
        confidence=confidence,
    )
    n = int(np.sum(np.sum(~np.isnan(arr), axis=0) >= 2))
    return Coefficient(
        "Krippendorff's alpha", value, float("nan"), float("nan"), None, lower, upper,
        "bootstrap", n, level,
    )  # fmt: skip


# --- two raters: contingency tables -------------------------------------------------------


def contingency_table(data: npt.ArrayLike, categories: Categories | None = None) -> FloatArray:
    """q x q counts of (rater 1's category, rater 2's) over units both rated; data is 2 x units."""
    arr = _as_data(data)
    if arr.shape[0] != 2:
        raise AgreementError(f"a contingency table needs exactly two raters; got {arr.shape[0]}")
    cats = _categories(arr, categories)
    both = ~np.isnan(arr).any(axis=0)
    a = np.searchsorted(cats, arr[0, both])
    b = np.searchsorted(cats, arr[1, both])
    table = np.zeros((len(cats), len(cats)))
    np.add.at(table, (a, b), 1)
    return table


def _table_coefficient(
    name: str,
    table: npt.ArrayLike,
    weights: Weights,
    confidence: float,
    chance: Literal["cohen", "scott"],
) -> Coefficient:
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise AgreementError("a contingency table must be square: categories x categories")
    n = float(t.sum())
    if n < 2:
        raise AgreementError("a contingency table needs at least two rated units")
    w = weight_matrix(np.arange(1, t.shape[0] + 1), weights)
    p = t / n
    row, col = p.sum(axis=1), p.sum(axis=0)
    pa = float(np.sum(w * p))
    if chance == "cohen":
        pe = float(row @ w @ col)
        left, right = w @ col, w.T @ row
    else:
        pi = (row + col) / 2
        pe = float(pi @ w @ pi)
        left, right = w @ pi, w.T @ pi
    if pe >= 1:
        raise AgreementError(f"{name} is undefined: both raters used one category only")
    value = (pa - pe) / (1 - pe)
    # Fleiss, Cohen & Everitt (1969) for kappa; Gwet (2014, §2.5) for the general form.
    inner = w - (1 - value) * (left[:, None] + right[None, :])
    var = (float(np.sum(p * inner**2)) - (pa - 2 * (1 - value) * pe) ** 2) / (n * (1 - pe) ** 2)
    se = float(np.sqrt(max(var, 0.0)))
    lower, upper = _t_interval(value, se, int(n), confidence)
    return Coefficient(name, value, pa, pe, se, lower, upper, "t", int(n), weights)


def cohen_kappa_table(
    table: npt.ArrayLike, weights: Weights = "identity", confidence: float = 0.95
) -> Coefficient:
    """Cohen's (1960) kappa, or weighted kappa (Cohen 1968), from a q x q contingency table."""
    return _table_coefficient("Cohen's kappa", table, weights, confidence, "cohen")


def scott_pi_table(
    table: npt.ArrayLike, weights: Weights = "identity", confidence: float = 0.95
) -> Coefficient:
    """Scott's (1955) pi: like kappa, with chance from the two raters' pooled shares."""
    return _table_coefficient("Scott's pi", table, weights, confidence, "scott")


def cohen_kappa(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    """Cohen's kappa of two raters (2 x units data) on the units both rated."""
    return cohen_kappa_table(contingency_table(data, categories), weights, confidence)


def scott_pi(
    data: npt.ArrayLike,
    categories: Categories | None = None,
    weights: Weights = "identity",
    confidence: float = 0.95,
) -> Coefficient:
    return scott_pi_table(contingency_table(data, categories), weights, confidence)


def fleiss_category_kappas(
    data: npt.ArrayLike, categories: Categories | None = None
) -> dict[float, float]:
    """Fleiss (1971) eq. 13: kappa for each category, with the same number of raters per unit."""
    counts = unit_counts(data, categories)
    cats = _categories(_as_data(data), categories)
    m = counts.sum(axis=1)
    if np.any(m != m[0]) or m[0] < 2:
        raise AgreementError("per-category kappa needs the same number (>= 2) of raters per unit")
    k = m[0]
    p = counts.sum(axis=0) / counts.sum()
    out = {}
    for j, c in enumerate(cats):
        denom = len(counts) * k * (k - 1) * p[j] * (1 - p[j])
        out[float(c)] = (
            float("nan")
            if denom == 0
            else 1 - float(np.sum(counts[:, j] * (k - counts[:, j]))) / denom
        )
    return out


def agreement_table(
    data: npt.ArrayLike,
    categories: Categories,
    *,
    rounds: int = DEFAULT_BOOTSTRAP_ROUNDS,
    seed: int = 0,
) -> list[Coefficient | tuple[str, str]]:
    """Every coefficient for one raters x units set on an ordered scale; (name, why) if undefined.

    The unweighted ones treat the categories as nominal; the quadratic-weighted ones credit near
    misses on an ordered scale.
    """
    arr = _as_data(data)
    cats = list(categories)
    calls: list[tuple[str, Callable[[], Coefficient]]] = [
        ("Percent agreement (per unit)", lambda: percent_agreement_per_unit(arr, cats)),
        ("Fleiss' kappa", lambda: fleiss_kappa(arr, cats)),
        ("Fleiss' kappa (quadratic)", lambda: fleiss_kappa(arr, cats, "quadratic")),
        ("Conger's kappa", lambda: conger_kappa(arr, cats)),
        ("Gwet's AC1", lambda: gwet_ac(arr, cats)),
        ("Gwet's AC2 (quadratic)", lambda: gwet_ac(arr, cats, "quadratic")),
        ("Brennan-Prediger", lambda: brennan_prediger(arr, cats)),
        (
            "Krippendorff's alpha (ordinal)",
            lambda: krippendorff_alpha_interval(arr, "ordinal", cats, rounds=rounds, seed=seed),
        ),
    ]
    if arr.shape[0] == 2:
        calls += [
            ("Cohen's kappa", lambda: cohen_kappa(arr, cats)),
            ("Cohen's kappa (linear)", lambda: cohen_kappa(arr, cats, "linear")),
            ("Cohen's kappa (quadratic)", lambda: cohen_kappa(arr, cats, "quadratic")),
            ("Scott's pi", lambda: scott_pi(arr, cats)),
        ]
    out: list[Coefficient | tuple[str, str]] = []
    for label, call in calls:
        try:
            out.append(call())
        except AgreementError as exc:
            out.append((label, str(exc)))
    return out
