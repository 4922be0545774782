"""What issue 16's statistics cost on a page load, each against the alternative in the same run.

(1) Leaderboard standard errors: Marlin's Fisher-information SEs (confidence.certainty) against
    the 1,000-round bootstrap (bt.rank) that would otherwise be the only uncertainty figure; on
    LLMFAO's real crowd judgments (59 models, 8,931 votes) and on 100,000 synthetic comparisons
    among 50 agents. Also how close SE·1.96·2 is to the bootstrap's 95% width (median ratio).
(2) Conger's kappa: Gwet's linearised SE against a 500-round bootstrap over units, on 20 experts
    x 5,000 comparisons with 2-3 judgments each on the -3..3 scale.
(3) The page's whole agreement table (coefficients.agreement_table, 200 bootstrap rounds for
    alpha) on the same data.
(4) The rater model (raters.fit_raters) on 10,000 judgments by 20 experts of 30 agents.

Run: .venv/bin/python benchmarks/statistics_extras.py [--runs 5]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from marlin.analytics.bt import PairCounts, pair_counts, pair_counts_from_arrays, rank
from marlin.analytics.coefficients import agreement_table, bootstrap_units, conger_kappa
from marlin.analytics.confidence import certainty
from marlin.analytics.raters import fit_raters

LLMFAO = Path("/work/shared/realdata/pairwise/llmfao/crowd-comparisons.csv")


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def llmfao() -> PairCounts | None:
    if not LLMFAO.is_file():
        return None
    with LLMFAO.open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["left"] for r in rows} | {r["right"] for r in rows})
    outcome = {"left": 1.0, "right": 0.0, "tie": 0.5}
    return pair_counts(names, [(r["left"], r["right"], outcome[r["winner"]]) for r in rows])


def synthetic_counts(k: int = 50, n: int = 100_000, seed: int = 0) -> PairCounts:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, k)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    half = (theta[a] - theta[b]) / 2
    w, l_, t = np.exp(half), np.exp(-half), np.full(n, 0.4)
    u = rng.random(n) * (w + l_ + t)
    out = np.where(u < w, 1.0, np.where(u < w + l_, 0.0, 0.5))
    return pair_counts_from_arrays([f"a{i}" for i in range(k)], a, b, out)


def ratings(experts: int = 20, units: int = 5000, seed: int = 1) -> np.ndarray:
    """Experts x comparisons on -3..3, 2-3 judgments per comparison, NaN elsewhere."""
    rng = np.random.default_rng(seed)
    data = np.full((experts, units), np.nan)
    truth = rng.integers(-3, 4, units)
    for u in range(units):
        who = rng.choice(experts, size=rng.integers(2, 4), replace=False)
        noise = rng.integers(-1, 2, size=len(who))
        data[who, u] = np.clip(truth[u] + noise, -3, 3)
    return data


def judgments(k: int = 30, experts: int = 20, n: int = 10_000, seed: int = 2) -> tuple:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, k)
    skill = np.exp(rng.normal(0, 0.4, experts))
    bias = rng.normal(0, 0.2, experts)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    who = rng.integers(0, experts, n)
    half = (skill[who] * (theta[a] - theta[b]) + bias[who]) / 2
    w, l_, t = np.exp(half), np.exp(-half), np.full(n, 0.3)
    u = rng.random(n) * (w + l_ + t)
    out = np.where(u < w, 1.0, np.where(u < w + l_, 0.0, 0.5))
    return [f"a{i}" for i in range(k)], [f"e{i}" for i in range(experts)], a, b, who, out


def leaderboard_case(name: str, counts: PairCounts, runs: int) -> None:
    t_boot, ranking = timed(lambda: rank(counts, rounds=1000, seed=0), runs)
    t_se, sure = timed(lambda: certainty(counts, ranking), runs)
    widths = [
        (a.upper - a.lower) / (2 * 1.96 * se)
        for a, se in zip(ranking.agents, sure.se, strict=True)
        if np.isfinite(se) and np.isfinite(a.upper - a.lower) and se > 0
    ]
    print(
        f"(1) {name}: SEs {t_se * 1000:.1f} ms vs 1,000-round bootstrap {t_boot:.2f} s "
        f"(ratio {t_boot / t_se:.0f}x); bootstrap width / (2*1.96*SE): median "
        f"{statistics.median(widths):.2f} over {len(widths)} agents"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    print(
        f"{platform.machine()} nproc={os.cpu_count()} load={os.getloadavg()[0]:.1f} "
        f"python={platform.python_version()} numpy={np.__version__} runs={runs} (medians)"
    )
    real = llmfao()
    if real is not None:
        leaderboard_case("LLMFAO 59 models, 8,931 votes", real, runs)
    leaderboard_case("synthetic 50 agents, 100,000 comparisons", synthetic_counts(), runs)

    data = ratings()
    cats = list(range(-3, 4))
    t_se, conger = timed(lambda: conger_kappa(data, cats), runs)
    t_boot, boot = timed(
        lambda: bootstrap_units(lambda d: conger_kappa(d, cats).value, data, rounds=500), runs
    )
    print(
        f"(2) Conger's kappa, 20 experts x 5,000 comparisons: linearised SE {t_se * 1000:.1f} ms "
        f"vs 500-round bootstrap {t_boot:.2f} s (ratio {t_boot / t_se:.0f}x); "
        f"SE {conger.se:.4f} vs bootstrap SD {boot[2]:.4f}"
    )
    t_table, rows = timed(lambda: agreement_table(data, cats, rounds=200), runs)
    print(f"(3) the page's agreement table ({len(rows)} rows), same data: {t_table:.2f} s")
    args = judgments()
    t_fit, fit = timed(lambda: fit_raters(*args), runs)
    print(
        f"(4) rater model, 10,000 judgments, 20 experts, 30 agents: {t_fit:.2f} s "
        f"(converged: {fit.converged})"
    )


if __name__ == "__main__":
    main()
