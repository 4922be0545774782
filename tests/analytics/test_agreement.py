"""Agreement statistics against the `krippendorff` package and published textbook values."""

from __future__ import annotations

import csv
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from marlin.analytics.agreement import (
    AgreementError,
    expert_agreement,
    krippendorff_alpha,
    percent_agreement,
    reliability_matrix,
    side_bias,
)

AGREEMENT = Path("/work/shared/realdata/agreement")
needs = pytest.mark.skipif(
    not AGREEMENT.is_dir(), reason="shared real data (/work/shared/realdata/agreement) is absent"
)
LEVELS = ["nominal", "ordinal", "interval", "ratio"]


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(2, 5).flatmap(
        lambda raters: st.lists(
            st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=raters, max_size=raters),
            min_size=2,
            max_size=15,
        )
    ),
    level=st.sampled_from(["nominal", "ordinal", "interval"]),
)
def test_alpha_matches_the_krippendorff_package_on_random_7_point_data(
    data: list[list[int | None]], level: str
) -> None:
    matrix = np.array(data, dtype=float).T  # raters x units
    pairable = np.sum(~np.isnan(matrix), axis=0) >= 2
    values = np.unique(matrix[:, pairable][~np.isnan(matrix[:, pairable])])
    assume(values.size >= 2)
    ours = krippendorff_alpha(matrix, level)
    theirs = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-9)


@needs
def test_alpha_reproduces_krippendorffs_2011_worked_example() -> None:
    data = np.genfromtxt(AGREEMENT / "krippendorff2011_4coders_12units.csv", delimiter=",")
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
    # 12 units; published alpha (3 decimals) per level of measurement.
    published = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}
    for level, value in published.items():
        ours = krippendorff_alpha(data, level)  # type: ignore[arg-type]
        assert ours == pytest.approx(value, abs=5e-4), level
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ours == pytest.approx(theirs, abs=1e-12)


@needs
@pytest.mark.parametrize(
    ("name", "transpose", "skip_cols"),
    [
        ("krippendorff_wikipedia_3coders_15units.csv", False, 0),
        ("fleiss1971_diagnoses_30subjects_6raters.csv", True, 1),
        ("irrCAC_gwet/raw_4raters.csv", True, 1),
        ("irrCAC_gwet/raw_5observers.csv", True, 1),
    ],
)
def test_alpha_matches_the_package_on_published_rating_sets(
    name: str, transpose: bool, skip_cols: int
) -> None:
    with (AGREEMENT / name).open(newline="") as f:
        rows = list(csv.reader(f))
    if transpose:
        rows = rows[1:]
    cells = [[float(c) if c else np.nan for c in r[skip_cols:]] for r in rows]
    data = np.array(cells).T if transpose else np.array(cells)
    for level in LEVELS[:3]:
        ours = krippendorff_alpha(data, level)  # type: ignore[arg-type]
        theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        assert ours == pytest.approx(theirs, abs=1e-12), level


def test_alpha_is_one_for_perfect_agreement_and_rejects_data_without_variation() -> None:
    assert krippendorff_alpha(np.array([[1, 2, 3, -3], [1, 2, 3, -3]], dtype=float)) == 1.0
    with pytest.raises(AgreementError, match="every pairable value is the same"):
        krippendorff_alpha(np.array([[2, 2], [2, 2]], dtype=float))
    with pytest.raises(AgreementError, match="no unit was rated by two or more raters"):
        krippendorff_alpha(np.array([[1, np.nan], [np.nan, 2]]))
    with pytest.raises(AgreementError, match="level must be"):
        krippendorff_alpha(np.array([[1, 2], [1, 3]], dtype=float), "cardinal")  # type: ignore[arg-type]


def test_percent_agreement_counts_matching_pairs_within_units() -> None:
    # Unit 1: three raters agree (3 of 3 pairs); unit 2: 2-1 split (1 of 3); unit 3: one rating.
    data = np.array([[1, 2, 0], [1, 2, np.nan], [1, -1, np.nan]], dtype=float)
    assert percent_agreement(data) == pytest.approx(4 / 6)


def test_reliability_matrix_builds_raters_by_units_and_refuses_double_ratings() -> None:
    raters, units, data = reliability_matrix(
        [("alice", "c1", -2), ("bob", "c1", -1), ("alice", "c2", None), ("bob", "c2", 3)]
    )
    assert raters == ["alice", "bob"] and units == ["c1", "c2"]
    np.testing.assert_array_equal(data, np.array([[-2, np.nan], [-1, 3]]))
    with pytest.raises(AgreementError, match="rated unit 'c1' twice"):
        reliability_matrix([("alice", "c1", 1), ("alice", "c1", 2)])


def test_expert_agreement_compares_directions_and_scale_distance_with_decisions() -> None:
    decisions = {"c1": -2, "c2": 0, "c3": 3, "c4": None}
    judgments = [
        ("alice", "c1", -3),  # same direction, distance 1
        ("alice", "c2", 1),  # tie decided, alice preferred B: mismatch, distance 1
        ("alice", "c3", 3),  # match, distance 0
        ("alice", "c4", 2),  # no decision yet: left out
        ("bob", "c1", 2),  # opposite direction, distance 4
        ("bob", "c3", None),  # not applicable: left out
    ]
    result = {r.expert: r for r in expert_agreement(judgments, decisions)}
    assert (result["alice"].judgments, result["alice"].matches) == (3, 2)
    assert result["alice"].agreement == pytest.approx(2 / 3)
    assert result["alice"].mean_abs_distance == pytest.approx(2 / 3)
    assert (result["bob"].judgments, result["bob"].matches, result["bob"].mean_abs_distance) == (
        1,
        0,
        4.0,
    )
    with pytest.raises(AgreementError, match="integers -3..3 or None; got 7"):
        expert_agreement([("alice", "c1", 7)], decisions)


def test_side_bias_flags_an_expert_who_almost_always_prefers_a() -> None:
    judgments = [("alice", -2)] * 9 + [("alice", 1), ("alice", 0), ("alice", None)]
    judgments += [("bob", -1), ("bob", 1)] * 5 + [("carol", 0)]
    result = {r.expert: r for r in side_bias(judgments)}
    alice = result["alice"]
    assert (alice.decided, alice.prefer_a) == (10, 9)
    assert alice.p_value == pytest.approx(22 / 1024)  # exact two-sided binomial: 2 * 11 / 2^10
    assert alice.lower < 0.9 < alice.upper and alice.lower > 0.5
    bob = result["bob"]
    assert bob.share_a == 0.5 and bob.p_value == pytest.approx(1.0)
    assert result["carol"].decided == 0 and np.isnan(result["carol"].share_a)
