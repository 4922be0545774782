"""The rater model recovers skills, side biases and strengths it was simulated with."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from marlin.analytics.raters import RaterModelError, fit_raters, median_interval

SKILLS = [2.0, 1.6, 1.0, 1.0, 1.0, 0.6, 0.35, 1.3]
BIASES = [0.0, 0.0, 1.0, 0.0, -0.7, 0.0, 0.0, 0.0]
TIES = [0.3, 0.3, 0.3, 1.0, 0.3, 0.3, 0.3, 0.1]


def simulate(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    theta = np.linspace(1.5, -1.5, 12)
    a = rng.integers(0, 12, size=n)
    b = (a + rng.integers(1, 12, size=n)) % 12
    who = rng.integers(0, len(SKILLS), size=n)
    skill, bias, nu = (np.array(x)[who] for x in (SKILLS, BIASES, TIES))
    half = (skill * (theta[a] - theta[b]) + bias) / 2
    w_a, w_b = np.exp(half), np.exp(-half)
    u = rng.random(n) * (w_a + w_b + nu)
    outcome = np.where(u < w_a, 1.0, np.where(u < w_a + w_b, 0.0, 0.5))
    return theta, a, b, who, outcome


def test_it_recovers_skills_biases_and_strengths() -> None:
    theta, a, b, who, outcome = simulate(6000, seed=11)
    fit = fit_raters(
        [f"agent{i}" for i in range(12)], [f"e{i}" for i in range(8)], a, b, who, outcome
    )
    assert fit.converged and fit.n_judgments == 6000
    skills = [x.skill for x in fit.experts]
    assert spearmanr(skills, SKILLS).statistic >= 0.85
    geo = math.exp(np.mean(np.log(SKILLS)))
    covered = sum(
        x.skill_lower <= s / geo <= x.skill_upper for x, s in zip(fit.experts, SKILLS, strict=True)
    )
    assert covered >= 7  # 95% intervals: at most one miss among 8 expected
    by_name = {x.expert: x for x in fit.experts}
    assert by_name["e2"].bias_lower > 0 and by_name["e2"].prefer_a_when_equal > 0.6
    assert by_name["e4"].bias_upper < 0
    assert by_name["e0"].bias_lower < 0 < by_name["e0"].bias_upper
    assert by_name["e3"].tie_propensity > by_name["e7"].tie_propensity
    strengths = {s.agent: s.theta for s in fit.agents}
    fitted = [strengths[f"agent{i}"] for i in range(12)]
    assert [s.agent for s in fit.agents][:3] == ["agent0", "agent1", "agent2"]
    # On the typical expert's scale the strengths are the simulated ones (up to a shift).
    truth_scale = theta * geo
    np.testing.assert_allclose(
        np.array(fitted) - np.mean(fitted), truth_scale - truth_scale.mean(), atol=0.25
    )
    assert all(0 < s.se < 0.2 for s in fit.agents)


def test_it_refuses_data_it_cannot_fit() -> None:
    with pytest.raises(RaterModelError, match="two agents and at least 2 judgments"):
        fit_raters(["x", "y"], ["e"], [0], [1], [0], [1.0])
    with pytest.raises(RaterModelError, match="2 groups never compared"):
        fit_raters(["w", "x", "y", "z"], ["e"], [0, 2], [1, 3], [0, 0], [1.0, 0.0])
    with pytest.raises(RaterModelError, match="outcome must be 1"):
        fit_raters(["x", "y"], ["e"], [0, 0], [1, 1], [0, 0], [1.0, 0.3])


def test_median_interval_covers_the_median_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(400):
        sample = rng.exponential(10.0, size=25)  # true median 10 ln 2
        median, lower, upper = median_interval(sample)
        assert lower <= median <= upper
        hits += lower <= 10 * math.log(2) <= upper
    assert 0.92 <= hits / 400 <= 0.995
    assert median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # too few: the range
