"""Leaderboard fit on 1,000,000 synthetic comparisons among 50 agents.

(a) Marlin: aggregate to the K x K pair-count table, fit Davidson-BT with L-BFGS-B, and run the
    1,000-round bootstrap on the counts (multinomial per pair).
(b) What arena notebooks do: a per-comparison logistic regression on the 1M-row design matrix
    (ties entered as one win for each side), bootstrapped by resampling rows. sklearn is not
    installed, so the regression is fitted with scipy.optimize (L-BFGS-B, analytic gradient) on a
    sparse design. Its bootstrap is timed for a few rounds and extrapolated to 1,000, as printed.

Run: .venv/bin/python benchmarks/bt_fit.py [--runs 3] [--baseline-rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
from scipy.optimize import minimize
from scipy.sparse import csr_matrix

from marlin.analytics.bt import ELO_PER_LOG, pair_counts_from_arrays, rank

K, N = 50, 1_000_000


def simulate(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, K)
    a = rng.integers(0, K, N)
    b = (a + rng.integers(1, K, N)) % K
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + 0.4
    u = rng.random(N)
    p_a, p_t = np.exp(half) / denom, 0.4 / denom
    return a, b, np.where(u < p_a, 1.0, np.where(u < p_a + p_t, 0.5, 0.0)), theta


def ours(a: np.ndarray, b: np.ndarray, y: np.ndarray, rounds: int) -> np.ndarray:
    counts = pair_counts_from_arrays([f"agent-{i}" for i in range(K)], a, b, y)
    ranking = rank(counts, rounds=rounds, seed=0)
    order = [int(s.agent.split("-")[1]) for s in ranking.agents]
    scores = np.empty(K)
    scores[order] = [s.score for s in ranking.agents]
    return scores


def logistic_design(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> tuple[csr_matrix, np.ndarray]:
    """Rows +1 at a, -1 at b; a tie becomes two rows, one win each (as the arena notebooks do)."""
    tie = y == 0.5
    a2 = np.concatenate([a, a[tie]])
    b2 = np.concatenate([b, b[tie]])
    y2 = np.concatenate([np.where(tie, 1.0, y), np.zeros(int(tie.sum()))])
    n = a2.size
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([a2, b2], axis=1).ravel()
    vals = np.tile([1.0, -1.0], n)
    return csr_matrix((vals, (rows, cols)), shape=(n, K)), y2


def logistic_fit(x: csr_matrix, y: np.ndarray) -> np.ndarray:
    xt = x.T.tocsr()

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        # log(1 + e^z) - y z, stably; the tiny ridge stands in for sklearn's default penalty.
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) + 1e-6 * float(w @ w)
        p = 0.5 * (1 + np.tanh(0.5 * z))
        return value, xt @ (p - y) + 2e-6 * w

    res = minimize(loss, np.zeros(K), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    w = res.x - res.x.mean()
    # The logistic scale is the plain BT log-odds; map to the same Elo-like scale as (a).
    return ELO_PER_LOG * w + 1000


def baseline(a: np.ndarray, b: np.ndarray, y: np.ndarray, rounds: int) -> tuple[float, float]:
    """Seconds for the point fit and mean seconds per bootstrap round (row resampling)."""
    t0 = time.perf_counter()
    x, y2 = logistic_design(a, b, y)
    logistic_fit(x, y2)
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        idx = rng.integers(0, N, N)
        x, y2 = logistic_design(a[idx], b[idx], y[idx])
        logistic_fit(x, y2)
    return fit_s, (time.perf_counter() - t0) / max(rounds, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--baseline-rounds", type=int, default=5)
    args = parser.parse_args()
    a, b, y, theta = simulate(0)
    print(f"{N:,} comparisons, {K} agents, ties {np.mean(y == 0.5):.1%}; {platform.machine()}")

    ours_fit, ours_total = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        scores = ours(a, b, y, rounds=0)
        ours_fit.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours(a, b, y, rounds=args.rounds)
        ours_total.append(time.perf_counter() - t0)
    base_fit, base_round = [], []
    for _ in range(args.runs):
        fit_s, round_s = baseline(a, b, y, args.baseline_rounds)
        base_fit.append(fit_s)
        base_round.append(round_s)

    x, y2 = logistic_design(a, b, y)
    logit_scores = logistic_fit(x, y2)
    same_order = np.mean(np.argsort(scores) == np.argsort(logit_scores))
    fit_a, total_a = statistics.median(ours_fit), statistics.median(ours_total)
    fit_b, round_b = statistics.median(base_fit), statistics.median(base_round)
    total_b = fit_b + args.rounds * round_b
    print(f"(a) counts + Davidson fit:             median {fit_a:8.3f} s over {args.runs} runs")
    print(f"(a) fit + {args.rounds}-round bootstrap:       median {total_a:8.2f} s")
    print(f"(b) per-comparison logistic fit:       median {fit_b:8.3f} s")
    print(
        f"(b) per bootstrap round (row resample): median {round_b:8.3f} s, measured on "
        f"{args.baseline_rounds} rounds x {args.runs} runs"
    )
    print(f"(b) fit + {args.rounds} rounds, EXTRAPOLATED:     {total_b:8.1f} s")
    print(f"ratio point fit (b)/(a):               {fit_b / fit_a:8.1f}x")
    print(f"ratio with bootstrap (b extrapolated)/(a): {total_b / total_a:5.1f}x")
    print(f"agents in the same rank position in (a) and (b): {same_order:.0%}")
    err = np.abs((scores - 1000) / ELO_PER_LOG - (theta - theta.mean())).max()
    print(f"(a) max |log-strength error| vs truth: {err:.3f}")


if __name__ == "__main__":
    main()
