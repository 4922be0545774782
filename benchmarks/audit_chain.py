"""Audited transactions per second when many write at once, on PostgreSQL (issue 14).

W threads, each on its own connection, loop for `--duration` seconds over one audited
transaction: `record()` an event of its own object, then the rest of the action, simulated by
`SELECT pg_sleep(work)` (statements that use no CPU, so the figure is the chain's design and not
the CPU the machine has to spare), then commit. Printed per work time: transactions per second,
p50/p99 of a transaction's wall time, the mean number of sessions waiting for the chain head
(pg_stat_activity, sampled every 50 ms), and whether the chain verifies afterwards.

With the head locked from `record()` to the commit, transactions go one at a time and at most
1 / (work + commit) of them complete per second whatever W is; sealed at commit, W of them
overlap and only the sealing (two round trips and the commit) goes one at a time.

    .venv/bin/python benchmarks/audit_chain.py [--writers 16] [--work-ms 0 5 20]
        [--duration 15] [--admin-url postgres://postgres@127.0.0.1:5432/postgres]

Runs against the code of the checkout it is in (run it from a worktree of an older commit to
compare); creates and drops a database of its own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--work-ms", type=float, nargs="+", default=[0.0, 5.0, 20.0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    import psycopg

    name = f"marlin_bench_audit_{os.getpid()}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(args.admin_url)._replace(path=f"/{name}"))
    os.environ |= {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": url,
        "MARLIN_DATA_DIR": tempfile.mkdtemp(prefix="marlin-audit-bench-"),
        "MARLIN_DB_POOL_SIZE": "0",  # one connection per thread, as many as there are writers
        "MARLIN_LOG_LEVEL": "WARNING",
    }
    sys.path.insert(0, str(ROOT))
    try:
        run(args, url)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace, url: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from marlin.accounts.models import User
    from marlin.audit.actions import verify_chain

    call_command("migrate", verbosity=0)
    writer = User.objects.create_user("bench-writer")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"code at {ROOT}, {args.writers} writers, {os.cpu_count()} CPUs, load {load}")
    for work_ms in args.work_ms:
        times: list[float] = []
        deadline = time.monotonic() + args.duration
        sampler = HeadWaits(url)
        sampler.start()
        threads = [
            threading.Thread(target=write, args=(writer, n, work_ms / 1000, deadline, times))
            for n in range(args.writers)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        waiting = sampler.stop()
        ordered = sorted(times)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        print(
            f"  work {work_ms:5.1f} ms: {len(times) / seconds:7.1f} transactions/s, "
            f"p50 {statistics.median(times) * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms, "
            f"waiting for the head {waiting:5.2f} of {args.writers}, load {load}"
        )
    broken = verify_chain()
    print(f"  audit chain: {'verifies' if broken is None else broken}")


def write(writer: Any, number: int, work: float, deadline: float, times: list[float]) -> None:
    """One writer: audited transactions until the deadline; each one's wall time into `times`
    (list.append is atomic)."""
    from django.db import connection, transaction

    from marlin.audit.actions import record

    try:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with transaction.atomic():
                record(writer, "bench.write", object_type="bench", object_id=number)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_sleep(%s)", [work])
            times.append(time.perf_counter() - started)
    finally:
        connection.close()


class HeadWaits(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples = url, []  # type: ignore[var-annotated]
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(0.05):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query ILIKE '%%audit_auditchainhead%%'"
                ).fetchone()
                self.samples.append(row[0] if row else 0)

    def stop(self) -> float:
        self.stopping.set()
        self.join(5)
        return sum(self.samples) / len(self.samples) if self.samples else 0.0


if __name__ == "__main__":
    main()
