"""Active pair selection (+ triage by checks as weak labels) against uniform pairing, simulated.

How many decided comparisons, and how many expert minutes, does each way of choosing pairs need
to reach the mean leaderboard interval width (and the rank accuracy) that uniform pairing has
after --reference comparisons? Everything that selects and fits is Marlin's own code:

- uniform: marlin.agents.pairing.PairSampler (today's pairing: a least-compared pair, seeded);
- active/<target>: marlin.analytics.selection.plan (value per expert minute for each --targets
  target, a uniform exploration floor), on the model refitted after every batch
  (selection.fitted_model: bt.fit_davidson at the posterior mode under the selection's prior);
- active/<first target>+triage: the same, and comparisons whose checks are decisive and whose
  weak label (marlin.analytics.weak_labels, Dawid-Skene fitted on the full-overlap decisions so
  far) is at least --threshold sure go to one annotator with no review;
- figures: bt.fit_davidson and confidence.standard_errors (the leaderboard's fit and SEs) against
  the true strengths: mean 95% interval width, Kendall tau, Spearman rho, the share of truly
  adjacent agents in the wrong order, RMS error of the strengths.

The world: --agents agents with log-strengths ~ N(0, --spread^2) (an Elo sd of about
400/ln(10) * spread), Davidson ties (--nu); task kinds with their own expert minutes; experts
with their own accuracy and position bias (a judgment is right with the expert's accuracy,
otherwise it picks the side shown first with probability 0.5 + bias, else the second side or a
tie); the project's workflow (overlap 2, one review per judgment, a third judgment + review when
the two disagree); check signals drawn given the true outcome (hidden tests, lint findings
introduced, test harness changed), whose accuracy the script prints; the default "swebench"
profile has hidden tests resolved by about a fifth of candidates, as SWE-bench Lite's published
systems resolve 18-28% (docs/benchmarks.md). Pairs are chosen in batches (tasks are paired in
batches before their runs start; decisions arrive a batch later).

Each figure is reported two ways: from the curves averaged over the seeds (with a 90% bootstrap
interval over seeds), and per seed as the median and quartiles over seeds; either way both
curves are smoothed by a power law in n (fitted in log-log from 20% of --reference on: the rank
figures of one run are too noisy to read where a raw curve first crosses a level).

Run: .venv/bin/python benchmarks/active_sampling.py [--seeds 8] [--agents 24] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as marlin/__init__.py does
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings")

import django  # noqa: E402

django.setup()  # marlin.agents.pairing sits in a Django app (its sampler is plain Python)

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

from marlin.agents.pairing import PairSampler  # noqa: E402
from marlin.analytics import selection, weak_labels  # noqa: E402
from marlin.analytics.bt import (  # noqa: E402
    ELO_PER_LOG,
    BTError,
    check_connected,
    fit_davidson,
    pair_counts_from_arrays,
)
from marlin.analytics.confidence import standard_errors  # noqa: E402

# Task kinds: share of tasks, expert minutes of one judgment (measured active time in the
# workflow Marlin is modelled on is about an hour per comparison).
KINDS = {"bugfix": (0.5, 45.0), "feature": (0.3, 70.0), "refactor": (0.2, 55.0)}
REVIEW_MINUTES = 12.0
# Check signals given the true outcome: P(side resolves the hidden tests | winner, loser, tie),
# P(side introduces lint/security findings | ...), P(side changed the test harness | ...).
# "moderate" is the default; "strong" is hidden tests that separate winners from losers better.
CHECKS = {
    # Hidden tests resolved by 20% of candidates (33% of winners, 8% of losers, 20% in ties):
    # "exactly one side resolves" on about a third of comparisons, as for SWE-bench Lite systems
    # resolving 18-28% (docs/benchmarks.md has the calibration and its limits).
    "swebench": {"resolves": (0.33, 0.08, 0.20), "lint": (0.15, 0.30, 0.20)},
    "moderate": {"resolves": (0.60, 0.25, 0.40), "lint": (0.15, 0.30, 0.20)},
    "strong": {"resolves": (0.75, 0.15, 0.45), "lint": (0.10, 0.35, 0.20)},
}
HARNESS = (0.01, 0.06, 0.02)
MIN_DECISIONS_FOR_TRIAGE = 100


@dataclass
class World:
    theta: np.ndarray
    nu: float
    checks: dict[str, tuple[float, float, float]]
    accuracy: np.ndarray  # per expert
    bias: np.ndarray  # per expert: extra probability of picking the side shown first
    rng: np.random.Generator

    def outcome(self, a: int, b: int) -> int:
        """True outcome of a comparison of a (shown first) and b: FIRST, SECOND or TIE."""
        half = 0.5 * (self.theta[a] - self.theta[b])
        p = np.array([np.exp(half), np.exp(-half), self.nu])
        return int(self.rng.choice(3, p=p / p.sum()))

    def votes(self, truth: int) -> np.ndarray:
        """Labelling-function votes (hidden tests, lint, harness) for one comparison."""
        role = {weak_labels.FIRST: (0, 1), weak_labels.SECOND: (1, 0), weak_labels.TIE: (2, 2)}
        first_role, second_role = role[truth]
        out = np.zeros(3, dtype=np.int64)
        for f, (probs, good) in enumerate(
            ((self.checks["resolves"], True), (self.checks["lint"], False), (HARNESS, False))
        ):
            a = self.rng.random() < probs[first_role]
            b = self.rng.random() < probs[second_role]
            if a != b:
                first_better = a if good else b
                out[f] = weak_labels.VOTE_FIRST if first_better else weak_labels.VOTE_SECOND
        return out

    def judge(self, expert: int, truth: int) -> int:
        if self.rng.random() < self.accuracy[expert]:
            return truth
        u = self.rng.random()
        first = 0.5 + self.bias[expert]
        if u < first:
            return weak_labels.FIRST
        return weak_labels.SECOND if u < first + (1 - first) * 0.7 else weak_labels.TIE


def make_world(args: argparse.Namespace, seed: int) -> World:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, args.spread, args.agents)
    return World(
        theta=theta - theta.mean(),
        nu=args.nu,
        checks=CHECKS[args.checks],
        accuracy=rng.uniform(0.65, 0.9, args.experts),
        bias=rng.uniform(0.0, 0.15, args.experts),
        rng=rng,
    )


@dataclass
class Run:
    first: list[int] = field(default_factory=list)
    second: list[int] = field(default_factory=list)
    decision: list[int] = field(default_factory=list)
    votes: list[np.ndarray] = field(default_factory=list)
    full: list[bool] = field(default_factory=list)  # decided with full overlap (not triaged)
    minutes: list[float] = field(default_factory=list)
    right: list[bool] = field(default_factory=list)  # decision == true outcome
    explored: int = 0


def decide(world: World, args: argparse.Namespace, truth: int, single: bool) -> tuple[int, float]:
    """The project's workflow on one comparison: its decision and the expert minutes spent."""
    kind = world.rng.choice(len(KINDS), p=[s for s, _ in KINDS.values()])
    judge_minutes = list(KINDS.values())[kind][1]
    experts = world.rng.choice(len(world.accuracy), size=3, replace=False)
    if single:
        return world.judge(experts[0], truth), judge_minutes
    a, b = world.judge(experts[0], truth), world.judge(experts[1], truth)
    minutes = 2 * (judge_minutes + REVIEW_MINUTES)
    if a == b:
        return a, minutes
    c = world.judge(experts[2], truth)
    return (c if c in (a, b) else c), minutes + judge_minutes + REVIEW_MINUTES


def outcome_of(decision: int) -> float:
    return {weak_labels.FIRST: 1.0, weak_labels.SECOND: 0.0, weak_labels.TIE: 0.5}[decision]


METRICS = ("width", "tau", "rho", "swaps", "rmse")
LOWER_IS_BETTER = {"width": True, "tau": False, "rho": False, "swaps": True, "rmse": True}
LABELS = {
    "width": "mean 95% width",
    "tau": "Kendall tau",
    "rho": "Spearman rho",
    "swaps": "adjacent swaps",
    "rmse": "RMS error",
}


def simulate(args: argparse.Namespace, seed: int, method: str) -> dict[str, list[float]]:
    world = make_world(args, seed)
    k = args.agents
    names = [str(i) for i in range(k)]
    first_all, second_all = selection.all_pairs(k)
    minutes_per = np.full(first_all.size, float(np.mean([m for _, m in KINDS.values()])))
    uniform = PairSampler(list(range(k)), seed=seed)
    pick_rng = np.random.default_rng(seed + 10_000)
    run = Run()
    label_model: weak_labels.LabelModel | None = None
    target = method.split("/")[1].split("+")[0] if "/" in method else ""
    triaging = method.endswith("+triage")
    curve: dict[str, list[float]] = {key: [] for key in ("n", "minutes", *METRICS)}
    total = args.reference if method == "uniform" else args.limit
    while len(run.decision) < total:
        if method == "uniform" or not run.decision:
            pairs = [uniform.draw() for _ in range(args.batch)]
        else:
            counts = pair_counts_from_arrays(
                names, run.first, run.second, [outcome_of(d) for d in run.decision]
            )
            model = selection.fitted_model(counts)
            picks = selection.plan(
                model,
                first_all,
                second_all,
                minutes_per,
                args.batch,
                pick_rng,
                target=target,  # type: ignore[arg-type]
                explore=args.explore,
            )
            run.explored += sum(p.explored for p in picks)
            pairs = [(int(first_all[p.index]), int(second_all[p.index])) for p in picks]
        for a, b in pairs:
            if world.rng.random() < 0.5:  # blind: sides shown in random order
                a, b = b, a
            truth = world.outcome(a, b)
            votes = world.votes(truth)
            single = False
            if label_model is not None:
                proba = weak_labels.predict_proba(label_model, votes[None])
                single = bool(weak_labels.triage(proba, votes[None], args.threshold)[0])
            decision, minutes = decide(world, args, truth, single)
            run.first.append(a)
            run.second.append(b)
            run.decision.append(decision)
            run.votes.append(votes)
            run.full.append(not single)
            run.minutes.append(minutes)
            run.right.append(decision == truth)
            n = len(run.decision)
            if n % args.every == 0:
                curve["n"].append(n)
                curve["minutes"].append(float(np.sum(run.minutes)))
                for key, value in measure(run, names, world).items():
                    curve[key].append(value)
        full = np.array(run.full)
        if triaging and full.sum() >= MIN_DECISIONS_FOR_TRIAGE:
            labels = np.where(full, np.array(run.decision), weak_labels.UNKNOWN)
            label_model = weak_labels.fit(np.array(run.votes), labels)
    curve["explored"] = [run.explored / max(len(run.decision) - args.batch, 1)]
    full = np.array(run.full)
    right = np.array(run.right)
    curve["triaged"] = [float(np.mean(~full))]
    curve["right_full"] = [float(right[full].mean())]
    curve["right_single"] = [float(right[~full].mean()) if (~full).any() else float("nan")]
    return curve


def measure(run: Run, names: list[str], world: World) -> dict[str, float]:
    """Mean 95% interval width (Elo points, from the leaderboard's standard errors), Kendall tau
    and Spearman rho of the fitted strengths against the true ones, the share of truly adjacent
    agents whose fitted order is reversed, and the RMS error of the strengths (Elo points)."""
    counts = pair_counts_from_arrays(
        names, run.first, run.second, [outcome_of(d) for d in run.decision]
    )
    try:
        check_connected(counts)
    except BTError:
        return {"width": inf, "tau": nan, "rho": nan, "swaps": nan, "rmse": inf}
    theta, nu = fit_davidson(counts)
    se = np.sqrt(np.clip(np.diag(standard_errors(counts, theta, nu)), 0.0, None))
    order = np.argsort(-world.theta)
    return {
        "width": float(np.mean(2 * 1.96 * ELO_PER_LOG * se)),
        "tau": float(kendalltau(theta, world.theta).statistic),
        "rho": float(spearmanr(theta, world.theta).statistic),
        "swaps": float(np.mean(theta[order[:-1]] < theta[order[1:]])),
        "rmse": float(ELO_PER_LOG * np.sqrt(np.mean((theta - world.theta) ** 2))),
    }


inf, nan = float("inf"), float("nan")


def at(ns: list[float], ys: list[float], n: float) -> float:
    return float(np.interp(n, ns, ys)) if np.isfinite(n) else inf


def power_fit(ns: list[float], ys: list[float], key: str, start: float) -> tuple[float, float]:
    """(a, b) of log(loss) = a + b log(n) on the points from n = start on; the loss is the
    figure itself when lower is better, 1 - figure for the rank correlations."""
    n = np.asarray(ns, dtype=float)
    y = np.asarray(ys, dtype=float)
    loss = y if LOWER_IS_BETTER[key] else 1.0 - y
    use = (n >= start) & np.isfinite(loss)
    floor = 0.25 / len(ns)  # a seed's swap share can be 0 at a point: keep the log finite
    b, a = np.polyfit(np.log(n[use]), np.log(np.maximum(loss[use], floor)), 1)
    return float(a), float(b)


def seed_share(
    uniform: dict[str, list[float]], other: dict[str, list[float]], key: str, reference: int
) -> float:
    """One seed: the comparisons the method needs for uniform's smoothed figure at reference,
    as a share of reference (both curves smoothed by power_fit)."""
    start = 0.2 * reference
    a_u, b_u = power_fit(uniform["n"], uniform[key], key, start)
    a_m, b_m = power_fit(other["n"], other[key], key, start)
    if b_m >= 0:  # the method's figure does not improve with n
        return inf
    target = a_u + b_u * np.log(reference)
    n = float(np.exp((target - a_m) / b_m))
    return n / reference if n <= other["n"][-1] else inf


def bootstrap_share(
    uniform: list[dict[str, list[float]]],
    other: list[dict[str, list[float]]],
    key: str,
    reference: int,
    rounds: int = 200,
) -> tuple[str, str]:
    """5th and 95th percentiles of the seed-averaged share over seeds resampled with
    replacement (the same seeds for both methods: they share their worlds)."""
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(rounds):
        pick = rng.integers(0, len(uniform), len(uniform))

        def mean_of(runs: list[dict[str, list[float]]], pick: npt.NDArray[np.int64] = pick):
            curves = {k: np.mean([runs[i][k] for i in pick], axis=0).tolist() for k in METRICS}
            return {"n": runs[0]["n"], **curves}

        shares.append(seed_share(mean_of(uniform), mean_of(other), key, reference))
    big = 1e9
    low, high = np.percentile(np.nan_to_num(shares, posinf=big), [5, 95])
    return tuple(f"{x:.0%}" if x < big / 10 else "beyond" for x in (low, high))  # type: ignore[return-value]


def quartiles(values: list[float]) -> str:
    # "beyond": past the end of the method's run (inf sorts last, as it should).
    big = 1e9
    q1, med, q3 = np.percentile(np.nan_to_num(values, posinf=big), [25, 50, 75])

    def pct(x: float) -> str:
        return f"{x:.0%}" if x < big / 10 else "beyond the run"

    return f"{pct(med)} [{pct(q1)}-{pct(q3)}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--agents", type=int, default=24)
    parser.add_argument("--experts", type=int, default=12)
    parser.add_argument("--spread", type=float, default=0.7, help="sd of true log-strengths")
    parser.add_argument("--nu", type=float, default=0.5, help="Davidson tie parameter")
    parser.add_argument("--reference", type=int, default=1200, help="uniform's comparisons")
    parser.add_argument("--limit", type=int, default=1800, help="active runs up to this many")
    parser.add_argument("--batch", type=int, default=24, help="tasks paired at once")
    parser.add_argument("--every", type=int, default=48, help="measure every N comparisons")
    parser.add_argument("--explore", type=float, default=selection.DEFAULT_EXPLORE)
    parser.add_argument(
        "--targets", nargs="+", choices=list(selection.TARGETS), default=["width", "order"]
    )
    parser.add_argument("--no-triage", action="store_true", help="skip active+triage")
    parser.add_argument("--threshold", type=float, default=0.8, help="triage confidence")
    parser.add_argument("--checks", choices=list(CHECKS), default="swebench")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12 agents, short runs")
    parser.add_argument("--save", help="write the curves of every seed to this JSON file")
    parser.add_argument("--report", help="print the report of a --save file (no simulation)")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        report(argparse.Namespace(**saved["args"]), saved["methods"], saved["results"])
        return
    if args.quick:
        args.seeds, args.agents, args.reference, args.limit = 2, 12, 240, 360
        args.batch, args.every = 12, 24
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, numpy {np.__version__}; "
        f"{args.seeds} seeds, {args.agents} agents (Elo sd {args.spread * ELO_PER_LOG:.0f}),"
        f" nu {args.nu}, {args.experts} experts, batch {args.batch}, explore {args.explore}, "
        f"targets {' '.join(args.targets)}, triage threshold {args.threshold}, checks "
        f"{args.checks}, reference {args.reference}, limit {args.limit}"
    )
    print_signal_accuracy(args)
    methods = ["uniform"] + [f"active/{t}" for t in args.targets]
    if not args.no_triage:
        methods.append(f"active/{args.targets[0]}+triage")
    results: dict[str, list[dict[str, list[float]]]] = {m: [] for m in methods}
    began = time.perf_counter()
    for seed in range(args.seeds):
        for m in methods:
            results[m].append(simulate(args, seed, m))
        print(f"  seed {seed} done ({time.perf_counter() - began:.0f} s)", flush=True)
    if args.save:
        saved = {"args": vars(args), "methods": methods, "results": results}
        Path(args.save).write_text(json.dumps(saved))
    report(args, methods, results)
    print(f"total {time.perf_counter() - began:.0f} s")


def report(
    args: argparse.Namespace, methods: list[str], results: dict[str, list[dict[str, list[float]]]]
) -> None:
    # Curves averaged over the seeds first (every method measures at the same counts), so a
    # noisy curve does not cross the target early by chance; the targets are uniform's averages
    # at the reference count.
    def mean_curve(m: str, key: str) -> list[float]:
        return [float(np.mean(v)) for v in zip(*(r[key] for r in results[m]), strict=True)]

    keys = (*METRICS, "minutes")
    target = {key: mean_curve("uniform", key)[-1] for key in keys}
    print(
        f"uniform at {args.reference} comparisons (mean over seeds): "
        + ", ".join(f"{LABELS[k]} {target[k]:.3g}" for k in METRICS)
        + f", {target['minutes'] / 60:.0f} expert hours"
    )
    print(
        "share of uniform's comparisons (expert minutes) needed for uniform's figure at "
        f"{args.reference}: from the seed-averaged curves; per seed median [quartiles]; the "
        "figure's mean at the reference count (both smoothed by a power law in n)"
    )
    for m in methods[1:]:
        n_curve = results[m][0]["n"]
        minutes = mean_curve(m, "minutes")
        pooled_u = {"n": results["uniform"][0]["n"], **{k: mean_curve("uniform", k) for k in keys}}
        pooled_m = {"n": n_curve, **{k: mean_curve(m, k) for k in keys}}
        parts = []
        for key in METRICS:
            n = seed_share(pooled_u, pooled_m, key, args.reference) * args.reference
            pooled = f"{n / args.reference:.0%}" if np.isfinite(n) else f"> {args.limit}"
            spent = f"{at(n_curve, minutes, n) / target['minutes']:.0%}" if np.isfinite(n) else "-"
            per_seed = [
                seed_share(u, r, key, args.reference)
                for u, r in zip(results["uniform"], results[m], strict=True)
            ]
            low, high = bootstrap_share(results["uniform"], results[m], key, args.reference)
            pooled += f" [90%: {low}-{high}]"
            ref = n_curve.index(results["uniform"][0]["n"][-1])
            at_ref = [r[key][ref] for r in results[m]]
            parts.append(
                f"{LABELS[key]} {pooled} ({spent}); {quartiles(per_seed)}; at {args.reference}: "
                f"{np.mean(at_ref):.3g} (uniform {target[key]:.3g})"
            )
        triaged = np.mean([r["triaged"][0] for r in results[m]])
        explored = np.mean([r["explored"][0] for r in results[m]])
        right_full = np.mean([r["right_full"][0] for r in results[m]])
        singles = [r["right_single"][0] for r in results[m] if np.isfinite(r["right_single"][0])]
        right_single = float(np.mean(singles)) if singles else nan
        per_comparison = minutes[-1] / n_curve[-1] / (target["minutes"] / args.reference)
        print(f"{m}:")
        for part in parts:
            print(f"    {part}")
        print(
            f"    explored {explored:.0%}; triaged {triaged:.0%}; expert minutes per comparison "
            f"{per_comparison:.0%} of uniform's; decisions right: {right_full:.1%} with full "
            f"overlap, {right_single:.1%} triaged"
        )


def print_signal_accuracy(args: argparse.Namespace) -> None:
    """Coverage and accuracy of each labelling function against the true outcome."""
    world = make_world(args, 999)
    truths = []
    votes = []
    for _ in range(20_000):
        a, b = world.rng.choice(args.agents, size=2, replace=False)
        t = world.outcome(int(a), int(b))
        truths.append(t)
        votes.append(world.votes(t))
    v = np.array(votes)
    t = np.array(truths)
    parts = []
    for f, name in enumerate(("hidden tests", "lint/security", "test harness")):
        fired = v[:, f] != weak_labels.ABSTAIN
        right = (v[:, f] == weak_labels.VOTE_FIRST) & (t == weak_labels.FIRST)
        right |= (v[:, f] == weak_labels.VOTE_SECOND) & (t == weak_labels.SECOND)
        parts.append(f"{name}: coverage {fired.mean():.0%}, accuracy {right[fired].mean():.0%}")
    ties = float(np.mean(t == weak_labels.TIE))
    print(
        "check signals vs the true outcome (ties count as misses): "
        + "; ".join(parts)
        + f"; true ties {ties:.0%}"
    )


if __name__ == "__main__":
    main()
