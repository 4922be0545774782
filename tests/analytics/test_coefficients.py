"""Chance-corrected agreement coefficients against published values on the sets they came with.

Sources of the expected numbers, each quoted where used:
- irrCAC (K. Gwet's R package, 1.0): its README / "overview" vignette prints every coefficient,
  standard error and interval for cac.raw4raters, cont3x3abstractors and distrib.6raters.
- SAS/STAT PROC FREQ (simple and weighted kappa with ASE) on a 3x3 table, as quoted in statsmodels.
- The weighted Cohen values for cont3x3abstractors and cont4x4diagnosis are irrCAC's outputs as
  recorded in the test suite of irrCAC's Python port (afergadis/irrCAC, test/unit/.../test_cohen.py
  and raw/test_gwet.py), three decimals.
- Fleiss (1971), "Measuring nominal scale agreement among many raters", Psychol. Bull. 76(5):
  30 patients, 6 psychiatrists, 5 diagnoses; overall kappa .430 and per-category kappas.
The data files are in /work/shared/realdata/agreement (README there); tests skip when absent.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from marlin.analytics.agreement import AgreementError
from marlin.analytics.coefficients import (
    Coefficient,
    agreement_table,
    brennan_prediger,
    cohen_kappa,
    cohen_kappa_table,
    conger_kappa,
    contingency_table,
    fleiss_category_kappas,
    fleiss_kappa,
    gwet_ac,
    krippendorff_alpha_interval,
    percent_agreement_per_unit,
    scott_pi_table,
    weight_matrix,
)

AGREEMENT = Path("/work/shared/realdata/agreement")
needs = pytest.mark.skipif(
    not AGREEMENT.is_dir(), reason="shared real data (/work/shared/realdata/agreement) is absent"
)


def raw(name: str, skip_cols: int) -> np.ndarray:
    """A units-by-raters CSV (header row) as raters x units with NaN for a missing rating."""
    with (AGREEMENT / name).open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[float(c) if c else np.nan for c in r[skip_cols:]] for r in rows]).T


def table(name: str) -> np.ndarray:
    with (AGREEMENT / name).open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[float(c) for c in r[1:]] for r in rows])


def from_distribution(counts: np.ndarray) -> np.ndarray:
    """Units x categories counts (same number of raters per unit) as raters x units data."""
    units = [np.repeat(np.arange(1, counts.shape[1] + 1), row.astype(int)) for row in counts]
    return np.array(units, dtype=float).T


def close(c: Coefficient, value: float, se: float | None, places: int) -> None:
    tol = 0.5 * 10**-places
    assert c.value == pytest.approx(value, abs=tol), c
    if se is not None:
        assert c.se == pytest.approx(se, abs=tol), c


@needs
def test_raw_4raters_matches_every_coefficient_irrcac_prints() -> None:
    # irrCAC README, "Computing agreement coefficients from raw ratings" (cac.raw4raters).
    data = raw("irrCAC_gwet/raw_4raters.csv", 1)
    pa = percent_agreement_per_unit(data)
    close(pa, 0.8181818, 0.12561, 5)
    assert (pa.lower, pa.upper) == (pytest.approx(0.542, abs=5e-4), 1.0)
    fleiss = fleiss_kappa(data)
    close(fleiss, 0.76117, 0.15302, 5)
    assert fleiss.pe == pytest.approx(0.2387153, abs=5e-8)
    assert fleiss.lower == pytest.approx(0.424, abs=5e-4)
    ac1 = gwet_ac(data)
    assert ac1.name == "Gwet's AC1"
    close(ac1, 0.77544, 0.14295, 5)
    assert ac1.pe == pytest.approx(0.1903212, abs=5e-8)
    assert ac1.lower == pytest.approx(0.461, abs=5e-4)
    close(brennan_prediger(data), 0.77273, 0.14472, 5)
    conger = conger_kappa(data)
    close(conger, 0.76282, 0.14917, 5)
    assert conger.pe == pytest.approx(0.2334252, abs=5e-8)
    assert (conger.lower, conger.upper) == (pytest.approx(0.435, abs=5e-4), 1.0)
    alpha = krippendorff_alpha_interval(data, "nominal")
    close(alpha, 0.74342, None, 5)
    assert alpha.lower < alpha.value <= alpha.upper


@needs
def test_gwets_ac2_with_linear_and_quadratic_weights() -> None:
    # irrCAC gwet.ac1.raw(cac.raw4raters, weights=...), as recorded by afergadis/irrCAC's tests.
    data = raw("irrCAC_gwet/raw_4raters.csv", 1)
    linear = gwet_ac(data, weights="linear")
    assert linear.name == "Gwet's AC2"
    close(linear, 0.859, 0.117, 3)
    assert (linear.pa, linear.pe) == (
        pytest.approx(0.939, abs=5e-4),
        pytest.approx(0.571, abs=5e-4),
    )
    quadratic = gwet_ac(data, weights="quadratic")
    close(quadratic, 0.914, 0.104, 3)
    assert quadratic.lower == pytest.approx(0.685, abs=5e-4)


@needs
def test_two_rater_tables_match_irrcac() -> None:
    abstractors = table("irrCAC_gwet/table_cont3x3abstractors.csv")
    # irrCAC README, "Computing agreement Coefficients from Contingency tables".
    close(cohen_kappa_table(abstractors), 0.7964094, 0.05891072, 7)
    close(scott_pi_table(abstractors), 0.7962397, 0.05905473, 7)
    kappa = cohen_kappa_table(abstractors)
    assert (kappa.lower, kappa.upper) == (
        pytest.approx(0.680, abs=5e-4),
        pytest.approx(0.913, abs=5e-4),
    )
    # Weighted kappa (Cohen 1968) with irrCAC's linear and quadratic weights.
    close(cohen_kappa_table(abstractors, "linear"), 0.843, None, 3)
    close(cohen_kappa_table(abstractors, "quadratic"), 0.892, None, 3)
    diagnosis = table("irrCAC_gwet/table_cont4x4diagnosis.csv")
    close(cohen_kappa_table(diagnosis), 0.432, 0.046, 3)
    close(cohen_kappa_table(diagnosis, "linear"), 0.407, 0.053, 3)
    close(cohen_kappa_table(diagnosis, "quadratic"), 0.383, 0.066, 3)


@needs
def test_distribution_of_6_raters_matches_irrcac() -> None:
    # irrCAC README, "...from the distribution of raters by subject & category" (distrib.6raters).
    counts = table("irrCAC_gwet/distrib_6raters.csv")
    data = from_distribution(counts)
    close(gwet_ac(data), 0.4448007, 0.08418757, 7)
    close(fleiss_kappa(data), 0.4139265, 0.08119291, 7)
    close(brennan_prediger(data), 0.4388889, 0.08312142, 7)
    assert percent_agreement_per_unit(data).value == pytest.approx(0.5511111, abs=5e-8)
    close(krippendorff_alpha_interval(data, "nominal"), 0.4204384, None, 7)


@needs
def test_fleiss_1971_diagnoses() -> None:
    data = raw("fleiss1971_diagnoses_30subjects_6raters.csv", 1)
    # Fleiss (1971), p. 381: overall kappa .430; per category (depression, personality disorder,
    # schizophrenia, neurosis, other) .245, .245, .520, .471, .566.
    close(fleiss_kappa(data), 0.430, None, 3)
    per_category = fleiss_category_kappas(data)
    for category, value in zip(
        [1.0, 2.0, 3.0, 4.0, 5.0], [0.245, 0.245, 0.520, 0.471, 0.566], strict=True
    ):
        assert per_category[category] == pytest.approx(value, abs=5e-4), category


def test_cohen_kappa_of_two_raters_uses_the_units_both_rated() -> None:
    data = np.array([[1, 2, 3, 1, np.nan, 2], [1, 2, 2, 1, 3, np.nan]])
    np.testing.assert_array_equal(
        contingency_table(data, [1, 2, 3]), [[2, 0, 0], [0, 1, 0], [0, 1, 0]]
    )
    kappa = cohen_kappa(data, [1, 2, 3])
    assert kappa.units == 4
    # pa = 3/4; rater 1 shares (1/2, 1/4, 1/4), rater 2 (1/2, 1/2, 0): pe = 1/4 + 1/8 = 3/8.
    assert kappa.value == pytest.approx((0.75 - 0.375) / (1 - 0.375))
    with pytest.raises(AgreementError, match="exactly two raters; got 3"):
        cohen_kappa(np.ones((3, 4)))


def test_weights_follow_the_category_values() -> None:
    w = weight_matrix([-3, -2, -1, 0, 1, 2, 3], "linear")
    assert w[0, 6] == 0.0 and w[0, 1] == pytest.approx(5 / 6) and w[3, 3] == 1.0
    q = weight_matrix([-3, 0, 3], "quadratic")
    np.testing.assert_allclose(q, [[1, 0.75, 0], [0.75, 1, 0.75], [0, 0.75, 1]])
    with pytest.raises(AgreementError, match="identity, linear or quadratic"):
        weight_matrix([1, 2], "cubic")  # type: ignore[arg-type]


def test_perfect_agreement_is_one_and_undefined_cases_say_why() -> None:
    data = np.array([[-3, 0, 2, 1], [-3, 0, 2, 1], [-3, 0, 2, np.nan]], dtype=float)
    for coefficient in (fleiss_kappa(data), gwet_ac(data), brennan_prediger(data)):
        assert coefficient.value == pytest.approx(1.0)
    with pytest.raises(AgreementError, match="no unit was rated by two or more raters"):
        fleiss_kappa(np.array([[1, np.nan], [np.nan, 2]]))
    with pytest.raises(AgreementError, match="one category"):
        fleiss_kappa(np.array([[1, 1], [1, 1]], dtype=float))
    with pytest.raises(AgreementError, match="outside the given categories"):
        fleiss_kappa(np.array([[1, 9], [1, 9]], dtype=float), [1, 2, 3])


def test_agreement_table_reports_every_coefficient_or_why_not() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(-3, 4, size=40)
    noisy = np.clip(truth[None, :] + rng.integers(-1, 2, size=(2, 40)), -3, 3).astype(float)
    rows = agreement_table(noisy, list(range(-3, 4)), rounds=100)
    names = [r.name if isinstance(r, Coefficient) else r[0] for r in rows]
    assert "Cohen's kappa" in names and "Gwet's AC1" in names and "Conger's kappa" in names
    for r in rows:
        assert isinstance(r, Coefficient), r
        assert -1 <= r.lower <= r.upper <= 1
    # Ratings that are at most one step apart agree far better with quadratic weights.
    by_name = {(r.name, r.weights): r for r in rows if isinstance(r, Coefficient)}
    assert (
        by_name[("Cohen's kappa", "quadratic")].value > by_name[("Cohen's kappa", "identity")].value
    )
    single = agreement_table(np.array([[1.0, 1.0], [1.0, 1.0]]), [-1, 0, 1], rounds=20)
    assert any(isinstance(r, tuple) and "one category" in r[1] for r in single)


def test_kappa_and_weighted_kappa_match_sas_proc_freq() -> None:
    # SAS/STAT PROC FREQ (AGREE) printout for a 3x3 table of 19 units, as quoted in statsmodels'
    # test_inter_rater.py: simple kappa 0.4842 (ASE 0.1380) and weighted kappa with Cicchetti-
    # Allison (linear) weights 0.4701 (ASE 0.1457). ASE is the Fleiss-Cohen-Everitt (1969) SE.
    table = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
    close(cohen_kappa_table(table), 0.4842, 0.1380, 4)
    close(cohen_kappa_table(table, "linear"), 0.4701, 0.1457, 4)


@needs
def test_congers_kappa_with_missing_ratings_weights_and_letter_categories() -> None:
    # irrCAC conger.kappa.raw as recorded by afergadis/irrCAC's test_conger.py (three decimals).
    observers = raw("irrCAC_gwet/raw_5observers.csv", 1)
    conger = conger_kappa(observers)
    close(conger, 0.469, 0.117, 3)
    assert (conger.lower, conger.upper) == (
        pytest.approx(0.219, abs=5e-4),
        pytest.approx(0.719, abs=5e-4),
    )
    close(gwet_ac(observers), 0.497, 0.122, 3)  # test_gwet.py, raw_5observers
    four = raw("irrCAC_gwet/raw_4raters.csv", 1)
    close(conger_kappa(four, weights="linear"), 0.814, 0.145, 3)
    close(conger_kappa(four, weights="quadratic"), 0.858, 0.144, 3)
    with (AGREEMENT / "irrCAC_gwet/raw_gender.csv").open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    letters = {"a": 1.0, "b": 2.0, "c": 3.0, "": np.nan}
    gender = np.array([[letters[x] for x in r[2:]] for r in rows]).T
    close(conger_kappa(gender), 0.166, 0.121, 3)
