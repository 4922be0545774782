"""Checks per minute with 1 and with 2 `marlin worker` processes, on the demo repository's test
suite (a command check, `python -m pytest -q`, in the bwrap sandbox), SQLite in WAL mode.

Each round queues CANDIDATES candidates of one task (one check each, so one job each), starts the
workers in batch mode and times until every check has finished; worker start-up is included,
as it is when a queue fills up and workers are started for it. Median of ROUNDS rounds.

    .venv/bin/python benchmarks/checks_throughput.py [--candidates 12] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _configure(base: Path) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": f"sqlite:///{base / 'marlin.sqlite3'}",
        "MARLIN_DATA_DIR": str(base / "data"),
        "MARLIN_TASKS_BACKEND": "database",
        "MARLIN_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    return {**os.environ, **env}


def _queue_round(count: int, number: int) -> list[int]:
    from django.db import transaction

    from marlin.checks.jobs import enqueue_checks
    from tests.checks.scenario import demo_patches, demo_task, make_candidate

    checks = [{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    patch = demo_patches()["good"]
    with transaction.atomic():
        task = demo_task(checks=checks, title=f"throughput round {number}")
        candidates = [make_candidate(task, patch, f"agent-{i}") for i in range(count)]
        for candidate in candidates:
            enqueue_checks(candidate)
    return [c.pk for c in candidates]


def _round(
    env: dict[str, str],
    workers: int,
    count: int,
    number: int,
    check_seconds: list[float] | None = None,
) -> float:
    from marlin.checks.models import CheckResult

    ids = _queue_round(count, number)
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "marlin", "worker", "--batch", "--interval", "0.1"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.wait()
    elapsed = time.monotonic() - started
    statuses = list(
        CheckResult.objects.filter(candidate_id__in=ids).values_list("status", flat=True)
    )
    if statuses != ["passed"] * count:
        raise SystemExit(f"round {number}: expected {count} passed checks, got {statuses}")
    if check_seconds is not None:
        check_seconds += CheckResult.objects.filter(candidate_id__in=ids).values_list(
            "duration_seconds", flat=True
        )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marlin-bench-checks-") as tmp:
        env = _configure(Path(tmp))
        import django

        django.setup()
        from django.core.management import call_command

        from marlin import paths
        from tests.checks.scenario import link_shared_tools

        call_command("migrate", verbosity=0)
        link_shared_tools(paths.data_dir())
        _round(env, 1, 2, 0)  # warm-up: demo repository, mirror, page cache
        results: dict[int, list[float]] = {1: [], 2: []}
        check_seconds: dict[int, list[float]] = {1: [], 2: []}
        load_before = os.getloadavg()
        number = 1
        for _ in range(args.rounds):
            for workers in (1, 2):  # interleaved, so drift in the shared VM hits both alike
                results[workers].append(
                    _round(env, workers, args.candidates, number, check_seconds[workers])
                )
                number += 1
        load_after = os.getloadavg()
    print(f"machine: {platform.machine()}, nproc {os.cpu_count()}, {platform.platform()}")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    print(f"{args.candidates} checks (demo suite, {args.rounds} rounds each, median):")
    per_minute = {}
    for workers, times in results.items():
        median = statistics.median(times)
        per_minute[workers] = args.candidates * 60 / median
        runs = ", ".join(f"{t:.1f}" for t in times)
        one = statistics.median(check_seconds[workers])
        print(
            f"  {workers} worker(s): {median:.1f} s -> {per_minute[workers]:.1f} checks/min  "
            f"(runs: {runs} s; one check in the sandbox: median {one:.2f} s)"
        )
    print(f"  ratio 2 workers / 1 worker: {per_minute[2] / per_minute[1]:.2f}x")


if __name__ == "__main__":
    main()
