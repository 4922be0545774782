"""Bradley-Terry / Davidson fits on data simulated from known strengths and tie parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marlin.analytics.bt import (
    ELO_PER_LOG,
    BTError,
    DisconnectedComparisons,
    fit_davidson,
    pair_counts,
    pair_counts_from_arrays,
    rank,
)


def simulate(
    theta: np.ndarray, nu: float, per_pair: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair compared per_pair times under the Davidson model, sides in random order."""
    k = len(theta)
    iu, ju = np.triu_indices(k, k=1)
    a = np.repeat(iu, per_pair)
    b = np.repeat(ju, per_pair)
    swap = rng.random(a.size) < 0.5
    a, b = np.where(swap, b, a), np.where(swap, a, b)
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + nu
    p_a, p_t = np.exp(half) / denom, nu / denom
    u = rng.random(a.size)
    outcome = np.where(u < p_a, 1.0, np.where(u < p_a + p_t, 0.5, 0.0))
    return a, b, outcome


def names(k: int) -> list[str]:
    return [f"agent-{i}" for i in range(k)]


@settings(max_examples=25, deadline=None)
@given(
    theta=st.lists(st.floats(-2, 2), min_size=3, max_size=6),
    nu=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_it_recovers_known_strengths_and_tie_parameter(
    theta: list[float], nu: float, seed: int
) -> None:
    true = np.array(theta) - np.mean(theta)
    rng = np.random.default_rng(seed)
    counts = pair_counts_from_arrays(names(len(true)), *simulate(true, nu, 2000, rng))
    est, nu_hat = fit_davidson(counts)
    assert np.max(np.abs(est - true)) < 0.2
    assert abs(nu_hat - nu) < 0.15
    # Agents further apart than the estimation error come out in the right order.
    gaps = true[:, None] - true[None, :]
    clear = gaps > 0.4
    assert np.all((est[:, None] - est[None, :])[clear] > 0)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from([0.0, 0.5, 1.0])),
        max_size=60,
    )
)
def test_pair_counts_and_its_vectorised_form_agree(rows: list[tuple[int, int, float]]) -> None:
    rows = [r for r in rows if r[0] != r[1]]
    ids = names(5)
    slow = pair_counts(ids, [(ids[a], ids[b], o) for a, b, o in rows])
    arr = np.array(rows, dtype=float).reshape(-1, 3)
    fast = pair_counts_from_arrays(ids, arr[:, 0].astype(int), arr[:, 1].astype(int), arr[:, 2])
    np.testing.assert_array_equal(slow.wins, fast.wins)
    np.testing.assert_array_equal(slow.ties, fast.ties)
    np.testing.assert_array_equal(slow.ties, slow.ties.T)
    assert slow.n_comparisons == len(rows)


def test_it_counts_ties_half_in_the_win_rate_and_reports_nu() -> None:
    counts = pair_counts(
        ["a", "b"], [("a", "b", 1.0), ("a", "b", 0.5), ("b", "a", 0.5), ("b", "a", 1.0)]
    )
    ranking = rank(counts, rounds=0)
    by_name = {s.agent: s for s in ranking.agents}
    assert by_name["a"].ties == 2 and by_name["a"].wins == 1 and by_name["a"].losses == 1
    assert ranking.win_rate[0, 1] == pytest.approx(0.5)
    # One win each and two ties of four: the Davidson MLE of nu is 2 (P(tie) = nu / (2 + nu)).
    assert ranking.tie_parameter == pytest.approx(2.0, rel=1e-3)
    assert by_name["a"].score == pytest.approx(by_name["b"].score, abs=1e-3)


def test_predicted_probabilities_are_complementary() -> None:
    rng = np.random.default_rng(3)
    true = np.array([1.0, 0.0, -0.5, -0.5])
    ranking = rank(pair_counts_from_arrays(names(4), *simulate(true, 0.7, 300, rng)), rounds=0)
    p = ranking.predicted
    off = ~np.eye(4, dtype=bool)
    np.testing.assert_allclose((p + p.T)[off], 1.0)
    assert np.all(np.isnan(np.diag(p)))


def test_an_agent_that_never_lost_gets_a_finite_top_score_and_an_open_upper_bound() -> None:
    outcomes = [("champ", "b", 1.0)] * 5 + [("c", "champ", 0.0)] * 4
    outcomes += [("b", "c", 1.0)] * 3 + [("b", "c", 0.0)] * 3 + [("b", "c", 0.5)]
    ranking = rank(pair_counts(["champ", "b", "c"], outcomes), rounds=200, seed=1)
    top = ranking.agents[0]
    assert top.agent == "champ" and top.rank == 1 and top.losses == 0
    assert np.isfinite(top.score) and top.score > ranking.agents[1].score
    assert top.upper == np.inf and top.rank_lower == 1
    assert all(np.isfinite(s.upper) for s in ranking.agents[1:])
    # Scores are centred, so the open gap to champ also leaves b and c without a lower bound,
    # while their order between themselves stays finite on both sides.
    assert np.isfinite(top.lower)
    assert all(s.lower == -np.inf for s in ranking.agents[1:])
    assert all(s.rank_upper == 3 and s.rank_lower >= 2 for s in ranking.agents[1:])


def test_an_agent_that_never_won_gets_an_open_lower_bound_and_the_last_rank_bound() -> None:
    outcomes = [("a", "loser", 1.0)] * 3 + [("b", "loser", 1.0)] * 2
    outcomes += [("a", "b", 1.0), ("a", "b", 0.0)]
    ranking = rank(pair_counts(["a", "b", "loser"], outcomes), rounds=50)
    last = ranking.agents[-1]
    assert last.agent == "loser" and last.lower == -np.inf and last.rank_upper == 3


def test_it_rejects_disconnected_comparison_graphs_naming_the_groups() -> None:
    outcomes = [("a", "b", 1.0), ("b", "a", 1.0), ("c", "d", 0.5), ("d", "e", 1.0)]
    with pytest.raises(DisconnectedComparisons) as info:
        rank(pair_counts(["a", "b", "c", "d", "e"], outcomes))
    assert info.value.components == [["c", "d", "e"], ["a", "b"]]
    assert "{c, d, e}" in str(info.value) and "{a, b}" in str(info.value)
    assert "not comparable" in str(info.value)


def test_it_rejects_fewer_than_two_agents_and_empty_data() -> None:
    with pytest.raises(BTError, match="at least two agents"):
        rank(pair_counts(["solo"], []))
    with pytest.raises(BTError, match="no comparisons"):
        rank(pair_counts(["a", "b"], []))


def test_it_rejects_unknown_agents_self_comparisons_and_bad_outcomes() -> None:
    with pytest.raises(BTError, match="'zed', which is not in agent_ids"):
        pair_counts(["a", "b"], [("a", "zed", 1.0)])
    with pytest.raises(BTError, match="compared with itself"):
        pair_counts(["a", "b"], [("a", "a", 1.0)])
    with pytest.raises(BTError, match=r"0.5 \(tie\); got 2.0"):
        pair_counts(["a", "b"], [("a", "b", 2.0)])


def test_the_bootstrap_is_reproducible_with_a_seed_and_varies_with_another() -> None:
    rng = np.random.default_rng(7)
    counts = pair_counts_from_arrays(names(5), *simulate(np.linspace(-1, 1, 5), 0.5, 40, rng))
    first = rank(counts, rounds=100, seed=11)
    again = rank(counts, rounds=100, seed=11)
    other = rank(counts, rounds=100, seed=12)
    assert first.agents == again.agents
    assert [(s.lower, s.upper) for s in first.agents] != [(s.lower, s.upper) for s in other.agents]
    assert first.rounds == 100 and first.seed == 11
    for s in first.agents:
        assert s.lower <= s.score <= s.upper
        assert s.rank_lower <= s.rank <= s.rank_upper


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_true_strength_in_most_samples() -> None:
    true = np.array([0.8, 0.3, 0.0, -0.4, -0.7])
    true -= true.mean()
    true_score = ELO_PER_LOG * true + 1000
    hits, total = 0, 0
    for seed in range(25):
        rng = np.random.default_rng(seed)
        counts = pair_counts_from_arrays(names(5), *simulate(true, 0.4, 60, rng))
        ranking = rank(counts, rounds=100, seed=seed)
        for s in ranking.agents:
            i = int(s.agent.split("-")[1])
            hits += s.lower <= true_score[i] <= s.upper
            total += 1
    # Nominal 95%; over 125 agent-intervals a sound procedure lands near 0.95, rarely below 0.85.
    assert hits / total >= 0.85, f"coverage {hits / total:.2f}"
