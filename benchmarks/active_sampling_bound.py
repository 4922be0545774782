"""How much can any choice of pairs save over balanced uniform pairing? An oracle bound.

The oracle knows the true strengths and picks the best possible *design* (the share of decided
comparisons given to each pair of agents), with noise-free decisions. Nothing real can beat it,
so its saving is an upper bound for active selection, for two targets:

- mean interval width: the mean standard deviation of the log-strengths (an interval's width is
  proportional to it) under the asymptotic covariance, the inverse Fisher information
  sum_p n_p w_p x_p x_p' (x_p = e_i - e_j, w_p the information of one outcome of the pair,
  marlin.analytics.selection.outcome_information, Davidson's model). All variances shrink as
  1/N, so the share of uniform's comparisons the best design needs is (its mean sd / uniform's
  mean sd)^2, whatever N. The best design is found by multiplicative updates on the simplex
  (the A-optimal design algorithm of Silvey, Titterington and Torsney 1978, here for sum sd);
- rank accuracy: the expected number of adjacent ranks in the wrong order,
  sum_r Phi(-gap_r / sd(gap_r)), which does not scale in N; the bound is the smallest N at
  which the best design for that N reaches uniform's expected swaps at --reference comparisons
  (found by bisection on N, the design optimised by exponentiated gradient at each N).

Worlds: strengths drawn from N(0, sd^2) for each --elo-sd, or the real LLMFAO leaderboard
(59 models, Davidson fit of 8,931 crowd judgments in ../shared/realdata; --llmfao), from which
the script also takes 20 models evenly spaced in rank.

Run: .venv/bin/python benchmarks/active_sampling_bound.py [--seeds 8] [--agents 20 24]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from marlin.analytics import selection  # noqa: E402
from marlin.analytics.bt import ELO_PER_LOG, fit_davidson, pair_counts  # noqa: E402

LLMFAO = Path(__file__).resolve().parents[2] / "shared/realdata/pairwise/llmfao"


def design_parts(theta: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair p: its information w_p and x_p (K x P, columns e_i - e_j)."""
    k = len(theta)
    first, second = selection.all_pairs(k)
    w = selection.outcome_information(theta, nu, first, second)
    x = np.zeros((k, first.size))
    x[first, np.arange(first.size)] = 1.0
    x[second, np.arange(first.size)] = -1.0
    return w, x, first


def covariance(share: np.ndarray, n: float, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Covariance of the centred log-strengths after n comparisons spread by share."""
    k = x.shape[0]
    info = (x * (n * share * w)) @ x.T
    u = np.full(k, 1 / np.sqrt(k))
    return np.linalg.inv(info + np.outer(u, u)) - np.outer(u, u)


def mean_sd(share: np.ndarray, w: np.ndarray, x: np.ndarray) -> float:
    return float(np.mean(np.sqrt(np.clip(np.diag(covariance(share, 1.0, w, x)), 0, None))))


def best_width_design(w: np.ndarray, x: np.ndarray, iters: int = 3000) -> np.ndarray:
    """Minimise sum_i sd_i over designs: d sd_i / d share_p = -w_p (C x_p)_i^2 / (2 sd_i)."""
    share = np.full(w.size, 1.0 / w.size)
    for _ in range(iters):
        c = covariance(share, 1.0, w, x)
        sd = np.sqrt(np.clip(np.diag(c), 1e-15, None))
        cx = c @ x
        grad = w * np.sum(cx**2 / (2 * sd[:, None]), axis=0)  # minus the derivative
        share = share * np.sqrt(grad / np.sum(share * grad))
        share /= share.sum()
    return share


def expected_swaps(share: np.ndarray, n: float, theta: np.ndarray, w: np.ndarray, x: np.ndarray):
    """Expected adjacent swaps and its gradient in the design (normal approximation)."""
    order = np.argsort(-theta)
    k = len(theta)
    y = np.zeros((k, k - 1))
    y[order[:-1], np.arange(k - 1)] = 1.0
    y[order[1:], np.arange(k - 1)] = -1.0
    gap = theta[order[:-1]] - theta[order[1:]]
    c = covariance(share, n, w, x)
    cy = c @ y
    var = np.clip(np.sum(y * cy, axis=0), 1e-15, None)
    z = gap / np.sqrt(var)
    swaps = float(np.sum(norm.cdf(-z)))
    # d var_r / d share_p = -n w_p (y_r' C x_p)^2; d Phi(-g/sd) / d var = phi(z) z / (2 var)
    ycx = cy.T @ x  # (k-1) x P
    dphi = norm.pdf(z) * z / (2 * var)
    grad = -n * w * np.sum(dphi[:, None] * ycx**2, axis=0)
    return swaps, grad


def best_swap_design(n: float, theta: np.ndarray, w: np.ndarray, x: np.ndarray) -> float:
    """Lowest expected adjacent swaps any design of n comparisons reaches (exponentiated
    gradient from the uniform design; the step adapts so each iteration improves)."""
    share = np.full(w.size, 1.0 / w.size)
    best, grad = expected_swaps(share, n, theta, w, x)
    step = 1.0
    for _ in range(400):
        scale = np.max(np.abs(grad)) + 1e-300
        trial = share * np.exp(-step * grad / scale)
        trial /= trial.sum()
        value, trial_grad = expected_swaps(trial, n, theta, w, x)
        if value < best:
            share, best, grad = trial, value, trial_grad
            step *= 1.3
        else:
            step *= 0.5
            if step < 1e-6:
                break
    return best


def swap_share(theta: np.ndarray, nu: float, reference: int) -> tuple[float, float]:
    """(uniform's expected adjacent swaps at reference, share of reference the best design
    needs for them)."""
    w, x, _ = design_parts(theta, nu)
    uniform = np.full(w.size, 1.0 / w.size)
    target, _ = expected_swaps(uniform, reference, theta, w, x)
    low, high = 0.05 * reference, float(reference)
    for _ in range(14):
        mid = (low + high) / 2
        if best_swap_design(mid, theta, w, x) <= target:
            high = mid
        else:
            low = mid
    return target, high / reference


def world_row(theta: np.ndarray, nu: float, reference: int) -> tuple[float, float, float, float]:
    """(mean info of a uniform pair / an even pair, width share, swaps at reference, swap share)."""
    w, x, _ = design_parts(theta, nu)
    even = float(selection.outcome_information(np.zeros(2), nu, np.array([0]), np.array([1]))[0])
    uniform = np.full(w.size, 1.0 / w.size)
    width = (mean_sd(best_width_design(w, x), w, x) / mean_sd(uniform, w, x)) ** 2
    swaps, share = swap_share(theta, nu, reference)
    return float(np.mean(w) / even), width, swaps, share


def llmfao_theta() -> tuple[np.ndarray, float]:
    with (LLMFAO / "crowd-comparisons.csv").open() as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["left"] for r in rows} | {r["right"] for r in rows})
    outcome = {"left": 1.0, "right": 0.0, "tie": 0.5}
    counts = pair_counts(names, [(r["left"], r["right"], outcome[r["winner"]]) for r in rows])
    theta, nu = fit_davidson(counts)
    return theta - theta.mean(), nu


def summary(values: list[float]) -> str:
    q = np.percentile(values, [25, 75])
    return f"{statistics.median(values):.0%} ({q[0]:.0%}-{q[1]:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--agents", type=int, nargs="*", default=[20, 24])
    parser.add_argument("--elo-sd", type=float, nargs="+", default=[60, 122, 142, 261, 400])
    parser.add_argument("--nu", type=float, default=0.5, help="Davidson tie parameter")
    parser.add_argument("--per-pair", type=float, default=1200 / 276, help="uniform's N / pairs")
    parser.add_argument("--llmfao", action="store_true", help="also the real LLMFAO strengths")
    args = parser.parse_args()
    began = time.perf_counter()
    print(
        f"{platform.node()} {platform.machine()}, numpy {np.__version__}; {args.seeds} seeds, "
        f"nu {args.nu}, uniform's reference N = {args.per_pair:.2f} comparisons per pair"
    )
    print(
        "world | info of a uniform pair vs an even one | best design's share of uniform's "
        "comparisons for the same mean width | expected adjacent swaps, uniform | best share "
        "for the same swaps  [median (quartiles) over seeds]"
    )
    for k in args.agents:
        reference = round(args.per_pair * k * (k - 1) / 2)
        for sd in args.elo_sd:
            rows = []
            for seed in range(args.seeds):
                theta = np.random.default_rng(seed).normal(0, sd / ELO_PER_LOG, k)
                rows.append(world_row(theta - theta.mean(), args.nu, reference))
            cols = list(zip(*rows, strict=True))
            print(
                f"K={k} Elo sd {sd:.0f}, N={reference} | {summary(list(cols[0]))} | "
                f"{summary(list(cols[1]))} | {statistics.median(cols[2]):.1f} of {k - 1} | "
                f"{summary(list(cols[3]))}",
                flush=True,
            )
    if args.llmfao:
        theta, nu = llmfao_theta()
        k = len(theta)
        for label, pick in (
            (f"LLMFAO all {k} models", np.arange(k)),
            (
                "LLMFAO 20 models evenly spaced in rank",
                np.argsort(-theta)[np.round(np.linspace(0, k - 1, 20)).astype(int)],
            ),
            ("LLMFAO top 20", np.argsort(-theta)[:20]),
        ):
            t = theta[pick] - theta[pick].mean()
            reference = round(args.per_pair * len(t) * (len(t) - 1) / 2)
            info, width, swaps, share = world_row(t, nu, reference)
            print(
                f"{label} (Elo sd {np.std(t) * ELO_PER_LOG:.0f}, nu {nu:.2f}), N={reference} | "
                f"{info:.0%} | {width:.0%} | {swaps:.1f} of {len(t) - 1} | {share:.0%}",
                flush=True,
            )
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
