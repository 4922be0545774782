"""Checks as weak labels (marlin.analytics.weak_labels): the Dawid-Skene label model."""

from __future__ import annotations

import numpy as np
import pytest

from marlin.analytics import weak_labels as wl


def _simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Decisions and votes of three labelling functions of known accuracy and coverage."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.4, 0.4, 0.2])
    # (coverage when decisive, accuracy when it votes) per function
    spec = [(0.6, 0.9), (0.4, 0.65), (0.05, 0.95)]
    votes = np.zeros((n, len(spec)), dtype=np.int64)
    for f, (cover, acc) in enumerate(spec):
        fires = rng.random(n) < np.where(y == wl.TIE, cover / 2, cover)
        right = rng.random(n) < acc
        side = np.where(y == wl.TIE, rng.integers(0, 2, n), y)
        chosen = np.where(right, side, 1 - side)
        votes[fires, f] = np.where(chosen[fires] == wl.FIRST, wl.VOTE_FIRST, wl.VOTE_SECOND)
    return votes, y


def test_the_fitted_model_recovers_the_accuracy_of_each_function() -> None:
    votes, y = _simulate(4000, 0)
    model = wl.fit(votes, y)
    # P(vote first | decision first) / P(any vote | decision first) is the function's accuracy.
    for f, acc in enumerate([0.9, 0.65, 0.95]):
        c = model.confusion[f, wl.FIRST]
        assert c[wl.VOTE_FIRST] / (c[wl.VOTE_FIRST] + c[wl.VOTE_SECOND]) == pytest.approx(
            acc, abs=0.06
        )
    # Symmetric by construction: the sides are shown in random order.
    np.testing.assert_allclose(
        model.confusion[:, wl.FIRST, wl.VOTE_FIRST], model.confusion[:, wl.SECOND, wl.VOTE_SECOND]
    )


def test_undecided_comparisons_are_used_and_predictions_are_calibrated() -> None:
    votes, y = _simulate(3000, 1)
    labels = y.copy()
    labels[300:] = wl.UNKNOWN  # only a tenth decided
    model = wl.fit(votes, labels)
    assert model.iterations > 1
    proba = wl.predict_proba(model, votes[300:])
    top = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    covered = wl.decisive(votes[300:])
    assert np.mean(top[covered] == y[300:][covered]) > 0.7
    sure = covered & (conf > 0.85)
    assert sure.sum() > 100
    assert np.mean(top[sure] == y[300:][sure]) == pytest.approx(conf[sure].mean(), abs=0.06)


def test_report_is_cross_validated_and_triage_routes_only_confident_decisive_ones() -> None:
    votes, y = _simulate(2000, 2)
    report = wl.evaluate(votes, y, threshold=0.85)
    assert 0.6 < report.coverage < 0.8
    assert report.accuracy > 0.7
    assert report.calibration_error < 0.05
    assert 0 < report.triage_share < report.coverage
    assert report.triage_accuracy > 0.85
    assert sum(n for _, _, n in report.bins) == round(report.coverage * 2000)
    proba = np.array([[0.95, 0.03, 0.02], [0.02, 0.03, 0.95], [0.95, 0.03, 0.02]])
    votes3 = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    assert wl.triage(proba, votes3, 0.9).tolist() == [True, False, False]


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(wl.LabelModelError, match="vote must be"):
        wl.fit(np.array([[3]]))
    with pytest.raises(wl.LabelModelError, match="one entry per comparison"):
        wl.fit(np.array([[1], [2]]), np.array([0]))
    with pytest.raises(wl.LabelModelError, match="at least 5 decided"):
        wl.evaluate(np.array([[1], [2]]), np.array([0, 1]))
    model = wl.fit(np.array([[1, 0], [2, 1]]), np.array([0, 1]))
    with pytest.raises(wl.LabelModelError, match="2 labelling functions"):
        wl.predict_proba(model, np.array([[1]]))
    with pytest.raises(wl.LabelModelError, match="threshold"):
        wl.triage(np.zeros((1, 3)), np.array([[1]]), 0.5)
