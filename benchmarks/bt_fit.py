"""Leaderboard fit + 1,000-round bootstrap: Marlin against FastChat's two methods, in one run.

Workloads: (1) 1,000,000 synthetic comparisons among 50 agents (Davidson model, nu = 0.4);
(2) the real LLMFAO crowd judgments (59 models, 8,931 left/right/tie votes, CC BY 4.0) from
/work/shared/realdata/pairwise/llmfao (skipped when absent).

Methods, each timed on the same data in the same process:
(a) Marlin (marlin.analytics.bt.rank): K x K pair counts, Davidson fit, bootstrap as per-pair
    multinomial redraws, all rounds solved at once (fixed-Hessian steps, then batched Newton).
(p) previous Marlin: the same model and draws, one scipy L-BFGS-B call per round (what (a)
    replaced; per-round function evaluations are counted, which explains the LLMFAO case).
(f) FastChat per battle (the arena notebooks' method): logistic regression on one row per
    comparison, ties as half a win each way, bootstrap by resampling rows.
(g) FastChat aggregated (fastchat/serve/monitor/rating_systems.py, compute_bootstrap_bt):
    unique (model_a, model_b, outcome) rows with counts, bootstrap by one multinomial over the
    rows per round, one L-BFGS-B fit per round (tol 1e-6, maxiter 100), rounds spread over a
    multiprocessing pool of os.cpu_count() processes. Re-implemented here (FastChat is not a
    dependency); pandas' factorize/unique replaced by numpy's.
(p), (f) and (g) are timed with 0 rounds (point fit, set-up, process pool start) and with a subset
of rounds; their totals are EXTRAPOLATED as t(0) + rounds x (t(subset) - t(0)) / subset, as printed.

Run: .venv/bin/python benchmarks/bt_fit.py [--runs 5] [--rounds 1000] [--subset-rounds 200]
     [--battle-rounds 20]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

# As marlin/__init__.py does, before numpy loads OpenBLAS: with its thread pool each tiny BLAS
# call inside L-BFGS-B waits for a second thread, 10x slower on a loaded machine (see
# docs/statistics.md), unfair to (p), (f) and (g). An explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402
from scipy.special import expit  # noqa: E402

from marlin.analytics.bt import (  # noqa: E402
    DEFAULT_RIDGE,
    ELO_BASE,
    ELO_PER_LOG,
    LOG_NU_BOUNDS,
    THETA_BOUNDS,
    PairCounts,
    fit_davidson,
    pair_counts_from_arrays,
    rank,
)

LLMFAO = Path("/work/shared/realdata/pairwise/llmfao/crowd-comparisons.csv")
Data = tuple[list[str], np.ndarray, np.ndarray, np.ndarray]  # names, a, b, outcome


def synthetic(k: int = 50, n: int = 1_000_000, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 0.8, k)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    half = 0.5 * (theta[a] - theta[b])
    denom = np.exp(half) + np.exp(-half) + 0.4
    u = rng.random(n)
    p_a, p_t = np.exp(half) / denom, 0.4 / denom
    y = np.where(u < p_a, 1.0, np.where(u < p_a + p_t, 0.5, 0.0))
    return [f"agent-{i}" for i in range(k)], a, b, y


def llmfao() -> Data:
    with LLMFAO.open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = sorted({r["left"] for r in rows} | {r["right"] for r in rows})
    index = {m: i for i, m in enumerate(names)}
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    a = np.array([index[r["left"]] for r in rows])
    b = np.array([index[r["right"]] for r in rows])
    return names, a, b, np.array([value[r["winner"]] for r in rows])


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    """Wall and CPU seconds (this process and its children) of one call, and its result."""
    t0, c0 = time.perf_counter(), time.process_time()
    c0 += sum(os.times()[2:4])
    out = fn()
    cpu = time.process_time() + sum(os.times()[2:4]) - c0
    return time.perf_counter() - t0, cpu, out


# (a) Marlin ---------------------------------------------------------------------------------


def marlin(data: Data, rounds: int) -> np.ndarray:
    names, a, b, y = data
    ranking = rank(pair_counts_from_arrays(names, a, b, y), rounds=rounds, seed=0)
    by_name = {s.agent: s.score for s in ranking.agents}
    return np.array([by_name[n] for n in names])


# (p) previous Marlin: per-round L-BFGS-B on the table ---------------------------------------


def _negloglik(
    params: np.ndarray, wins: np.ndarray, ties: np.ndarray, totals: np.ndarray, with_ties: bool
) -> tuple[float, np.ndarray]:
    k = wins.shape[0]
    theta = params[:k]
    log_nu = params[k] if with_ties else -np.inf
    ti, tj = theta[:, None], theta[None, :]
    tie_lin = log_nu + 0.5 * (ti + tj)
    m = np.maximum(np.maximum(ti, tj), tie_lin)
    denom = np.exp(ti - m) + np.exp(tj - m) + np.exp(tie_lin - m)
    p_win, p_tie = np.exp(ti - m) / denom, np.exp(tie_lin - m) / denom
    ll = float(np.sum(wins.sum(axis=1) * theta) - 0.5 * np.sum(totals * (m + np.log(denom))))
    grad_theta = wins.sum(axis=1) - np.sum(totals * p_win, axis=1)
    grad = np.empty_like(params)
    if with_ties:
        ll += 0.5 * float(np.sum(ties * tie_lin)) - DEFAULT_RIDGE * float(log_nu) ** 2
        grad_theta += 0.5 * (ties.sum(axis=1) - np.sum(totals * p_tie, axis=1))
        grad[k] = 0.5 * float(np.sum(ties) - np.sum(totals * p_tie)) - 2 * DEFAULT_RIDGE * log_nu
    ll -= DEFAULT_RIDGE * float(theta @ theta)
    grad[:k] = grad_theta - 2 * DEFAULT_RIDGE * theta
    return -ll, -grad


def previous(data: Data, rounds: int) -> list[int]:
    """The replaced bootstrap loop; returns function evaluations per round."""
    names, a, b, y = data
    counts = pair_counts_from_arrays(names, a, b, y)
    k = len(names)
    theta, nu = fit_davidson(counts)
    start = np.append(theta, np.log(nu) if nu > 0 else 0.0)
    iu, ju = np.triu_indices(k, k=1)
    n = counts.totals[iu, ju]
    iu, ju, n = iu[n > 0], ju[n > 0], n[n > 0]
    cells = np.stack([counts.wins[iu, ju], counts.wins[ju, iu], counts.ties[iu, ju]], axis=1)
    draws = np.random.default_rng(0).multinomial(
        n.astype(np.int64), cells / n[:, None], size=(rounds, len(n))
    )
    evaluations = []
    for r in range(rounds):
        wins, ties = np.zeros((k, k)), np.zeros((k, k))
        wins[iu, ju], wins[ju, iu] = draws[r, :, 0], draws[r, :, 1]
        ties[iu, ju] = ties[ju, iu] = draws[r, :, 2]
        table = PairCounts(names, wins, ties)
        with_ties = bool(ties.sum() > 0)
        res = minimize(
            _negloglik,
            start[: k + 1] if with_ties else start[:k],
            jac=True,
            method="L-BFGS-B",
            bounds=[THETA_BOUNDS] * k + ([LOG_NU_BOUNDS] if with_ties else []),
            args=(table.wins, table.ties, table.totals, with_ties),
            options={"maxiter": 2000, "gtol": 1e-8, "ftol": 1e-14},
        )
        evaluations.append(int(res.nfev))
    return evaluations


# (f) FastChat per battle: logistic regression on rows ---------------------------------------


def logistic_fit(a: np.ndarray, b: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Rows +1 at a, -1 at b; a tie becomes two rows, one win each (as the notebooks do)."""
    tie = y == 0.5
    a2, b2 = np.concatenate([a, a[tie]]), np.concatenate([b, b[tie]])
    y2 = np.concatenate([np.where(tie, 1.0, y), np.zeros(int(tie.sum()))])
    rows = np.repeat(np.arange(a2.size), 2)
    x = csr_matrix(
        (np.tile([1.0, -1.0], a2.size), (rows, np.stack([a2, b2], axis=1).ravel())),
        shape=(a2.size, k),
    )
    xt = x.T.tocsr()

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        value = float(np.sum(np.logaddexp(0.0, z) - y2 * z)) + 1e-6 * float(w @ w)
        return value, xt @ (expit(z) - y2) + 2e-6 * w

    res = minimize(loss, np.zeros(k), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return ELO_PER_LOG * (res.x - res.x.mean()) + ELO_BASE


def per_battle(data: Data, rounds: int) -> np.ndarray:
    names, a, b, y = data
    scores = logistic_fit(a, b, y, len(names))
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        idx = rng.integers(0, len(y), len(y))
        logistic_fit(a[idx], b[idx], y[idx], len(names))
    return scores


# (g) FastChat aggregated: unique rows, multinomial weights, L-BFGS-B per round, process pool --


def _bt_loss_and_grad(
    ratings: np.ndarray, matchups: np.ndarray, outcomes: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    alpha = np.log(10.0)
    logits = alpha * (ratings[matchups[:, 0]] - ratings[matchups[:, 1]])
    probs = expit(logits)
    loss = -((np.log(probs) * outcomes + np.log(1.0 - probs) * (1.0 - outcomes)) * weights).sum()
    grads = -alpha * (outcomes - probs) * weights
    model_grad = np.zeros_like(ratings)
    np.add.at(model_grad, matchups[:, [0, 1]], grads[:, None] * np.array([1.0, -1.0]))
    return float(loss), model_grad


def _fit_bt(matchups: np.ndarray, outcomes: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    res = minimize(
        _bt_loss_and_grad,
        np.zeros(k),
        args=(matchups, outcomes, weights),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    x: np.ndarray = res.x
    return x


def aggregated(data: Data, rounds: int) -> np.ndarray:
    names, a, b, y = data
    schedule = np.stack([a, b, (2 * y).astype(np.int64)], axis=1)
    unique, weights = np.unique(schedule, return_counts=True, axis=0)
    matchups, outcomes = unique[:, :2], unique[:, 2] / 2.0
    weights = weights.astype(np.float64)
    point = _fit_bt(matchups, outcomes, len(names), weights)
    rng = np.random.default_rng(0)
    boot = rng.multinomial(len(y), weights / weights.sum(), size=rounds) / len(y)
    with mp.Pool(os.cpu_count()) as pool:
        list(pool.imap_unordered(partial(_fit_bt, matchups, outcomes, len(names)), boot))
    scores: np.ndarray = 400 * (point - point.mean()) + ELO_BASE
    return scores


# --------------------------------------------------------------------------------------------


def same_positions(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argsort(x) == np.argsort(y)))


def bench(label: str, data: Data, args: argparse.Namespace) -> None:
    names, _, _, y = data
    print(
        f"\n== {label}: {len(y):,} comparisons, {len(names)} agents, ties {np.mean(y == 0.5):.1%}"
    )
    subsets = {"p": args.subset_rounds, "f": args.battle_rounds, "g": args.subset_rounds}
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    results: dict[str, object] = {}
    methods: list[tuple[str, Callable[[], object]]] = [
        ("a", partial(marlin, data, args.rounds)),
        ("p", partial(previous, data, subsets["p"])),
        ("p0", partial(previous, data, 0)),
        ("f", partial(per_battle, data, subsets["f"])),
        ("f0", partial(per_battle, data, 0)),
        ("g", partial(aggregated, data, subsets["g"])),
        ("g0", partial(aggregated, data, 0)),
    ]
    for _ in range(args.runs):  # interleaved, so load changes hit every method alike
        for key, fn in methods:
            wall, cpu, out = timed(fn)
            walls.setdefault(key, []).append(wall)
            cpus.setdefault(key, []).append(cpu)
            results[key] = out
    load = os.getloadavg()[0]
    med = {key: statistics.median(v) for key, v in walls.items()}
    med_cpu = {key: statistics.median(v) for key, v in cpus.items()}
    total = {"a": med["a"]}
    total_cpu = {"a": med_cpu["a"]}
    for key in ("p", "f", "g"):
        per_round = max(med[key] - med[key + "0"], 0.0) / subsets[key]
        total[key] = med[key + "0"] + args.rounds * per_round
        # The same in CPU seconds (children included): steadier than wall time under load.
        cpu_round = max(med_cpu[key] - med_cpu[key + "0"], 0.0) / subsets[key]
        total_cpu[key] = med_cpu[key + "0"] + args.rounds * cpu_round
    print(f"runs {args.runs}, rounds {args.rounds}, 1-min load average after: {load:.1f}")
    print(
        f"(a) Marlin, all rounds at once:        median {med['a']:7.3f} s wall, "
        f"{med_cpu['a']:.3f} s CPU  (runs: {', '.join(f'{w:.3f}' for w in walls['a'])})"
    )
    fevals = results["p"]
    assert isinstance(fevals, list)
    print(
        f"(p) previous Marlin, L-BFGS-B/round:  {total['p']:7.2f} s for {args.rounds} rounds, "
        f"EXTRAPOLATED from {subsets['p']} (median {med['p']:.3f} s, 0 rounds {med['p0']:.3f} s); "
        f"{np.mean(fevals):.1f} function evaluations per round, CPU {med_cpu['p']:.3f} s"
    )
    print(
        f"(f) FastChat per battle:              {total['f']:7.2f} s, EXTRAPOLATED from "
        f"{subsets['f']} rounds (median {med['f']:.3f} s, 0 rounds {med['f0']:.3f} s, "
        f"CPU {med_cpu['f']:.3f} s)"
    )
    print(
        f"(g) FastChat aggregated, {os.cpu_count()} processes: {total['g']:7.2f} s, EXTRAPOLATED "
        f"from {subsets['g']} rounds (median {med['g']:.3f} s, 0 rounds {med['g0']:.3f} s, "
        f"CPU incl. children {med_cpu['g']:.3f} s)"
    )
    for key, name in (("p", "previous"), ("f", "per battle"), ("g", "aggregated")):
        print(
            f"ratio {name} / Marlin: {total[key] / med['a']:8.1f}x wall, "
            f"{total_cpu[key] / med_cpu['a']:.1f}x CPU ({total_cpu[key]:.2f} s CPU extrapolated)"
        )
    scores_a = results["a"]
    assert isinstance(scores_a, np.ndarray)
    for key in ("f", "g"):
        other = results[key]
        assert isinstance(other, np.ndarray)
        print(
            f"agents in the same rank position, (a) vs ({key}): "
            f"{same_positions(scores_a, other):.0%} (ties modelled vs half a win)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--subset-rounds", type=int, default=200, help="rounds timed for (p), (g)")
    parser.add_argument("--battle-rounds", type=int, default=20, help="rounds timed for (f)")
    parser.add_argument("--only", choices=["synthetic", "llmfao"], default=None)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    if args.only in (None, "synthetic"):
        bench("synthetic", synthetic(), args)
    if args.only in (None, "llmfao"):
        if LLMFAO.is_file():
            bench("LLMFAO", llmfao(), args)
        else:
            print(f"\n{LLMFAO} is absent: the real-data case is skipped")


if __name__ == "__main__":
    main()
