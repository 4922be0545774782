"""What the monitoring middleware costs the hottest request: the page's ticket heartbeat
(`POST /api/heartbeats` with `X-Heartbeat-Ticket`, one UPDATE; docs/benchmarks.md, "Heartbeats at
200 annotators"), in-process through Django's whole stack, with and without
`marlin.monitoring.middleware.observe_requests`, and with the JSON request log on.

A fresh database (SQLite in a temporary directory, or PostgreSQL created and dropped here) is
filled by load_annotators.py's `populate`; each annotator takes a comparison (`next`) and opens
its work with one heartbeat on its token, then sends ticket heartbeats. Three Django test clients
share the process, each with its own middleware chain: without the monitoring middleware, with
it (the latency histogram), and with it plus one JSON log line per request (to /dev/null). Every
round sends one heartbeat per annotator through each client, in a shuffled order. The whole
measurement runs twice: with prometheus-client's multiprocess storage (PROMETHEUS_MULTIPROC_DIR,
what `marlin serve` sets: a histogram observation writes to a memory-mapped file) and without
(one process's memory). Printed: the median wall and CPU (thread) time per request of each
variant, and the median cost of the middleware alone around an empty view.

    .venv/bin/python benchmarks/metrics_overhead.py [--annotators 20] [--rounds 100]
        [--database sqlite|postgresql] [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.load_annotators import create_database, drop_database  # noqa: E402

MIDDLEWARE = "marlin.monitoring.middleware.observe_requests"
VARIANTS = ("without", "with", "with+json-log")


def measure(tokens_file: Path, rounds: int) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.http import HttpResponse
    from django.test import Client, RequestFactory, override_settings

    from marlin.accounts.models import ApiToken
    from marlin.monitoring.logs import JsonFormatter
    from marlin.monitoring.middleware import observe_requests
    from marlin.review.activity import issue_ticket

    devnull = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the run)
    devnull.setFormatter(JsonFormatter())
    logging.getLogger("marlin.requests").addHandler(devnull)
    logging.getLogger("marlin.requests").propagate = False

    without = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    assert len(without) == len(settings.MIDDLEWARE) - 1
    clients = {variant: Client() for variant in VARIANTS}
    # A client's handler loads the middleware (and reads LOG_REQUESTS) on its first request.
    chains = {
        "without": {"MIDDLEWARE": without, "LOG_REQUESTS": False},
        "with": {"LOG_REQUESTS": False},
        "with+json-log": {"LOG_REQUESTS": True},
    }
    for variant, overrides in chains.items():
        with override_settings(**overrides):
            clients[variant].get("/healthz")

    work = []
    for token in json.loads(tokens_file.read_text()):
        headers = {"Authorization": f"Bearer {token}"}
        taken = clients["without"].post("/api/comparisons/next", headers=headers)
        assert taken.status_code == 200, taken.content
        body = {"work": "judgment", "comparison": taken.json()["public_id"]}
        opened = clients["without"].post(
            "/api/heartbeats", body, content_type="application/json", headers=headers
        )
        assert opened.status_code == 204, opened.content
        user = ApiToken.authenticate(token)
        assert user is not None
        ticket = issue_ticket(user, "judgment", body["comparison"])
        work.append((body, {"X-Heartbeat-Ticket": ticket}))

    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_number in range(rounds + 1):
        for body, headers in work:
            order = list(VARIANTS)
            random.shuffle(order)
            for variant in order:
                started_cpu, started = time.thread_time(), time.perf_counter()
                response = clients[variant].post(
                    "/api/heartbeats", body, content_type="application/json", headers=headers
                )
                took_cpu, took = time.thread_time() - started_cpu, time.perf_counter() - started
                assert response.status_code == 204, response.content
                if round_number:  # the first round warms up
                    wall[variant].append(took * 1e6)
                    cpu[variant].append(took_cpu * 1e6)

    # The middleware alone, around a view that does nothing.
    request = RequestFactory().get("/healthz")
    bare = observe_requests(lambda r: HttpResponse())
    alone = []
    for _ in range(20000):
        started = time.perf_counter()
        bare(request)
        alone.append((time.perf_counter() - started) * 1e6)

    storage = "multiprocess files" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in memory"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    from django.db import connection

    print(
        f"{connection.vendor}, metrics {storage}, {len(work)} annotators x {rounds} rounds "
        f"(load average {load})"
    )
    base_wall, base_cpu = statistics.median(wall["without"]), statistics.median(cpu["without"])
    print(f"{'variant':14s} {'wall µs':>9s} {'CPU µs':>9s} {'+CPU µs':>8s} {'+CPU %':>7s}")
    for variant in VARIANTS:
        w, c = statistics.median(wall[variant]), statistics.median(cpu[variant])
        extra = c - base_cpu
        print(
            f"{variant:14s} {w:9.0f} {c:9.0f} {extra:8.0f} {100 * extra / base_cpu:6.1f}%"
            f"   (wall {100 * (w - base_wall) / base_wall:+.1f}%)"
        )
    print(f"middleware alone around an empty view: {statistics.median(alone):.1f} µs")


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "measure":
        measure(Path(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marlin-metrics-overhead-"))
    name = f"marlin_bench_metrics_{os.getpid()}"
    url = (
        create_database(args.admin_url, name)
        if args.database == "postgresql"
        else f"sqlite:///{work / 'marlin.sqlite3'}"
    )
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(work / "data"),
        "MARLIN_DATABASE_URL": url,
        "MARLIN_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    try:
        loader = ROOT / "benchmarks" / "load_annotators.py"
        tokens = work / "tokens.json"
        subprocess.run(
            [sys.executable, str(loader), "populate", str(args.annotators),
             str(args.annotators * 2), str(tokens)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        for multiprocess in (True, False):
            run_env = dict(env)
            if multiprocess:
                metrics_dir = work / "metrics"
                metrics_dir.mkdir()
                run_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            # Each run takes new comparisons (`next`), so the database has enough for two.
            subprocess.run(
                [sys.executable, __file__, "measure", str(tokens), str(args.rounds)],
                cwd=ROOT, env=run_env, check=True,
            )  # fmt: skip
    finally:
        if args.database == "postgresql":
            drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
