"""Fits on published paired-comparison data from /work/shared/realdata (skipped when absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from marlin.analytics.bt import PairCounts, fit_davidson, pair_counts, predicted_matrix, rank

REALDATA = Path("/work/shared/realdata/pairwise")
needs = pytest.mark.skipif(
    not REALDATA.is_dir(), reason="shared real data (/work/shared/realdata/pairwise) is absent"
)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def assert_score_equations_hold(counts: PairCounts, theta: np.ndarray, nu: float) -> None:
    """At the MLE, each agent's expected points (win 1, tie 1/2) equal its observed points."""
    p = predicted_matrix(theta, nu)
    np.fill_diagonal(p, 0.0)
    expected = np.sum(counts.totals * p, axis=1)
    observed = counts.wins.sum(axis=1) + 0.5 * counts.ties.sum(axis=1)
    np.testing.assert_allclose(expected, observed, atol=1e-3 * counts.totals.sum(axis=1).max())


@needs
def test_baseball_matches_agrestis_published_bradley_terry_estimates() -> None:
    rows = read_csv(REALDATA / "bradleyterry2" / "baseball.csv")
    teams = sorted({r["home.team"] for r in rows})
    outcomes = []
    for r in rows:
        outcomes += [(r["home.team"], r["away.team"], 1.0)] * int(r["home.wins"])
        outcomes += [(r["home.team"], r["away.team"], 0.0)] * int(r["away.wins"])
    counts = pair_counts(teams, outcomes)
    theta, nu = fit_davidson(counts, ridge=0.0)
    assert nu == 0.0  # no ties in these data: plain Bradley-Terry
    # Agresti (2002), Categorical Data Analysis, Table 10.11 column 3 (also BradleyTerry2's test
    # suite): log-abilities relative to Baltimore, rounded to two decimals.
    relative = {t: theta[i] - theta[teams.index("Baltimore")] for i, t in enumerate(teams)}
    published = {
        "Cleveland": 0.68,
        "Boston": 1.11,
        "New York": 1.25,
        "Toronto": 1.29,
        "Detroit": 1.44,
        "Milwaukee": 1.58,
    }
    for team, value in published.items():
        assert relative[team] == pytest.approx(value, abs=0.006), team
    assert_score_equations_hold(counts, theta, nu)


@needs
def test_springall_contests_with_ties_satisfy_the_davidson_likelihood_equations() -> None:
    rows = read_csv(REALDATA / "bradleyterry2" / "springall_contests.csv")
    ids = sorted({r["row"] for r in rows} | {r["col"] for r in rows}, key=int)
    outcomes = []
    for r in rows:
        outcomes += [(r["row"], r["col"], 1.0)] * int(r["win"])
        outcomes += [(r["row"], r["col"], 0.0)] * int(r["loss"])
        outcomes += [(r["row"], r["col"], 0.5)] * int(r["tie"])
    counts = pair_counts(ids, outcomes)
    theta, nu = fit_davidson(counts, ridge=0.0)
    assert nu > 0
    assert_score_equations_hold(counts, theta, nu)
    # The tie equation: expected ties equal observed ties.
    half = 0.5 * (theta[:, None] - theta[None, :])
    p_tie = nu / (np.exp(half) + np.exp(-half) + nu)
    np.fill_diagonal(p_tie, 0.0)
    assert np.sum(counts.totals * p_tie) == pytest.approx(counts.ties.sum(), rel=1e-3)


@needs
@pytest.mark.slow
def test_llmfao_crowd_judgments_rank_59_models_with_left_right_tie_outcomes() -> None:
    rows = read_csv(REALDATA / "llmfao" / "crowd-comparisons.csv")
    models = sorted({r["left"] for r in rows} | {r["right"] for r in rows})
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    counts = pair_counts(models, [(r["left"], r["right"], value[r["winner"]]) for r in rows])
    ranking = rank(counts, rounds=100, seed=0)
    assert len(ranking.agents) == len(models) == 59
    assert ranking.n_comparisons == len(rows) == 8931
    assert ranking.tie_parameter > 0.5  # 39% of these judgments are ties
    by_model = {s.agent: s.log_strength for s in ranking.agents}
    theta = np.array([by_model[m] for m in models])
    assert_score_equations_hold(counts, theta, ranking.tie_parameter)
    for s in ranking.agents:
        assert s.lower <= s.score <= s.upper
