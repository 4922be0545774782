"""The rater model on real crowd judgments: LLMFAO's 8,931 left/right/tie votes by 124 workers
(/work/shared/realdata/pairwise/llmfao, CC BY 4.0; 'left' is taken as side A)."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from marlin.analytics.bt import pair_counts_from_arrays
from marlin.analytics.confidence import rank_with
from marlin.analytics.raters import fit_raters

LLMFAO = Path("/work/shared/realdata/pairwise/llmfao/crowd-comparisons.csv")


@pytest.mark.slow
@pytest.mark.skipif(not LLMFAO.is_file(), reason="shared real data (LLMFAO) is absent")
def test_llmfao_workers_skill_and_side_bias() -> None:
    with LLMFAO.open(newline="") as f:
        rows = list(csv.DictReader(f))
    agents: dict[str, int] = {}
    workers: dict[str, int] = {}
    a, b, who, outcome = [], [], [], []
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    for r in rows:
        a.append(agents.setdefault(r["left"], len(agents)))
        b.append(agents.setdefault(r["right"], len(agents)))
        who.append(workers.setdefault(r["worker"], len(workers)))
        outcome.append(value[r["winner"]])
    fit = fit_raters(list(agents), list(workers), a, b, who, outcome)
    assert fit.converged and len(fit.experts) == 124

    # Skill-weighted strengths order the 59 models much as the plain Davidson fit does.
    plain = rank_with(pair_counts_from_arrays(list(agents), a, b, outcome), "davidson", rounds=0)
    plain_theta = {x.agent: x.log_strength for x in plain.agents}
    weighted = {s.agent: s.theta for s in fit.agents}
    rho = spearmanr([plain_theta[n] for n in agents], [weighted[n] for n in agents]).statistic
    print(f"skill-weighted vs plain strengths, 59 models: Spearman {rho:.3f}")
    assert rho >= 0.9

    # Skill ranks workers as a simple check does: how often a worker agrees with the majority
    # of the five votes on the same pair.
    votes: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        votes[r["id"]].append(r["winner"])
    agree: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        majority = Counter(votes[r["id"]]).most_common(1)[0][0]
        agree[r["worker"]].append(r["winner"] == majority)
    skill = {e.expert: e.skill for e in fit.experts}
    busy = [w for w in agree if len(agree[w]) >= 50]
    rho_skill = spearmanr([skill[w] for w in busy], [np.mean(agree[w]) for w in busy]).statistic
    print(f"skill vs agreement with the majority, {len(busy)} workers: Spearman {rho_skill:.3f}")
    assert rho_skill >= 0.5

    # The crowd prefers the left answer (53% of decided votes); the model's biases lean left.
    decided = [x for x in outcome if x != 0.5]
    assert sum(x == 1.0 for x in decided) / len(decided) > 0.52
    bias = np.array([e.bias for e in fit.experts])
    counts = np.array([e.judgments for e in fit.experts])
    assert float(bias @ counts) / counts.sum() > 0
    flagged = [e for e in fit.experts if e.bias_lower > 0 or e.bias_upper < 0]
    print(f"workers with a side bias whose 95% interval excludes none: {len(flagged)} of 124")
