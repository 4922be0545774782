"""The annotator's hot path, one request at a time: SQL statements, Python CPU and wall time of
each API endpoint (next, GET comparison, PUT draft, submit), in-process through Django's whole
stack (middleware, django-ninja, token auth), on PostgreSQL (or SQLite).

A fresh database (created and dropped here) is filled by load_annotators.py's `populate`
(comparisons awaiting judgments, overlap 2, annotators with API tokens). Each annotator then
runs the load test's loop once: next -> GET -> PUT draft x3 -> submit, through Django's test
client with the token in the Authorization header, as `marlin serve` would run it (DEBUG off;
statements are counted with a connection wrapper, not the debug cursor). Printed per endpoint:
the median statements, Python CPU (`time.thread_time`) and wall time; with `--profile`, the
functions that took the most time in each endpoint over all the loops (cProfile, cumulative).

    .venv/bin/python benchmarks/hot_path_cpu.py [--annotators 40] [--comparisons 2000]
        [--database postgresql|sqlite] [--profile 25] [--sql]
        [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.load_annotators import DRAFT, RATIONALE, create_database, drop_database  # noqa: E402

ENDPOINTS = ("next", "get", "put", "submit")


def measure(tokens_file: Path, profile_lines: int, show_sql: bool) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    tokens = json.loads(tokens_file.read_text())
    statements = 0
    last_sql: dict[str, list[str]] = {e: [] for e in ENDPOINTS}
    sent: list[str] = []

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        sent.append(sql)
        return execute(sql, params, many, context)

    cpu: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    wall: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    queries: dict[str, list[int]] = {e: [] for e in ENDPOINTS}
    # CPU, not wall: time waiting for the database is not the Python cost being looked for.
    profilers = {e: cProfile.Profile(time.thread_time) for e in ENDPOINTS} if profile_lines else {}
    # The first loop warms up imports, URL resolution and the connection; not counted.
    warm_up = True

    # One client for all: its handler loads the middleware once, as a server process does.
    client = Client()

    def call(endpoint: str, method: str, path: str, token: str, **kwargs: Any) -> Any:
        nonlocal statements
        statements = 0
        sent.clear()
        send = getattr(client, method)
        headers = {"Authorization": f"Bearer {token}"}
        profiler = None if warm_up else profilers.get(endpoint)
        if profiler is not None:
            profiler.enable()
        started_cpu, started = time.thread_time(), time.perf_counter()
        response = send(path, headers=headers, **kwargs)
        took_cpu, took = time.thread_time() - started_cpu, time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        assert response.status_code == 200, (endpoint, response.status_code, response.content)
        if not warm_up:
            cpu[endpoint].append(took_cpu * 1000)
            wall[endpoint].append(took * 1000)
            queries[endpoint].append(statements)
            last_sql[endpoint] = list(sent)
        return response

    with connection.execute_wrapper(count):
        for token in tokens:
            public_id = call("next", "post", "/api/comparisons/next", token).json()["public_id"]
            call("get", "get", f"/api/comparisons/{public_id}", token)
            url = f"/api/comparisons/{public_id}/judgment"
            for revision in range(3):
                body = DRAFT | {"draft_revision": revision, "rationale": RATIONALE}
                call("put", "put", url, token, data=body, content_type="application/json")
            call("submit", "post", url + "/submit", token)
            warm_up = False
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"{connection.vendor}, {len(tokens) - 1} loops (load average {load})")
    print(f"{'endpoint':8s} {'statements':>10s} {'CPU ms':>8s} {'wall ms':>8s}")
    for endpoint in ENDPOINTS:
        print(
            f"{endpoint:8s} {statistics.median(queries[endpoint]):10.0f} "
            f"{statistics.median(cpu[endpoint]):8.2f} {statistics.median(wall[endpoint]):8.2f}"
        )
    loop_cpu = sum(statistics.median(cpu[e]) * (3 if e == "put" else 1) for e in ENDPOINTS)
    print(f"one loop (next, get, 3 put, submit): {loop_cpu:.1f} ms CPU, 6 requests")
    if show_sql:
        for endpoint in ENDPOINTS:
            print(f"--- {endpoint}: the statements of the last call ---")
            for sql in last_sql[endpoint]:
                print("  " + " ".join(sql.split())[:300])
    for endpoint, profiler in profilers.items():
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(profile_lines)
        print(f"--- {endpoint}: cProfile of thread CPU, cumulative ---")
        print(out.getvalue())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        measure(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=40)
    parser.add_argument("--comparisons", type=int, default=2000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--profile", type=int, default=0, help="print this many profile lines")
    parser.add_argument("--sql", action="store_true", help="print each endpoint's statements")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marlin-hot-path-"))
    name = f"marlin_bench_hot_{os.getpid()}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(work / "data"),
        "MARLIN_LOG_LEVEL": "WARNING",
        "MARLIN_DEBUG": "0",
        "PYTHONPATH": str(ROOT),
    }
    if args.database == "postgresql":
        env["MARLIN_DATABASE_URL"] = create_database(args.admin_url, name)
    else:
        env.pop("MARLIN_DATABASE_URL", None)
    try:
        loader = ROOT / "benchmarks" / "load_annotators.py"
        tokens = work / "tokens.json"
        subprocess.run(
            [sys.executable, str(loader), "populate", str(args.annotators + 1),
             str(args.comparisons), str(tokens)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, __file__, "measure", str(tokens), str(args.profile),
             "1" if args.sql else "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    finally:
        if args.database == "postgresql":
            drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
