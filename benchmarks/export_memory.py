"""Peak memory and time of a preferences export at growing sizes, against the all-in-memory way.

For each size the database is generated once (benchmarks/export_parquet.py's generator: two
runs, turns, candidates with ~1.5 KB patches, a check result, two judgments and the Decision
per comparison; one in seven a tie), then each method runs in a fresh child process whose peak
resident set (VmHWM from /proc/self/status) and wall time are measured:

(a) Marlin's export job (marlin.exports.jobs.run_export), all three preference files (TRL JSON
    lines + Parquet, OpenAI DPO JSON lines) in one pass: decisions streamed in id order from one
    values() query (a server-side cursor on PostgreSQL), related rows per chunk of 2,000, each
    run's latest patch read once, Parquet written in row groups of 5,000.
(b) What one writes without that: every row built into a list first, then one
    pa.Table.from_pylist and pq.write_table (the rows come from the same builder, so the ratio
    isolates holding the data set in memory).

Run: .venv/bin/python benchmarks/export_memory.py [--sizes 10000 30000 100000] [--runs 3]
     [--postgres postgres://postgres@127.0.0.1:5432/] (a throwaway database per size)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def setup(data_dir: Path, database_url: str) -> None:
    os.environ["MARLIN_DATA_DIR"] = str(data_dir)
    os.environ["MARLIN_DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "marlin.settings"
    import django

    django.setup()


def child(data_dir: Path, database_url: str, method: str) -> None:
    setup(data_dir, database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # a database generated before a newer migration
    import pyarrow as pa
    import pyarrow.parquet as pq

    from marlin.accounts.models import User
    from marlin.analytics.queries import DecisionFilters
    from marlin.exports.actions import do_create_export
    from marlin.exports.build import preference_rows
    from marlin.exports.jobs import run_export
    from marlin.exports.models import Export
    from marlin.exports.writers import PREFERENCE_SCHEMA
    from marlin.tasks.models import Project

    admin = User.objects.get(username="bench-admin")
    project = Project.objects.get(name="bench")
    before = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "marlin":
        export = do_create_export(admin, project, "preferences", enqueue=False)
        run_export(export.pk)
        export = Export.objects.get(pk=export.pk)
        assert export.status == "done", export.error
        rows = export.manifest["counts"]["rows"]
        shutil.rmtree(export.directory)  # ~1 GB at 100,000 comparisons
    else:
        out = Path(tempfile.mkdtemp(prefix="naive-", dir=data_dir)) / "preferences.parquet"
        everything = list(preference_rows(project, DecisionFilters()))
        pq.write_table(pa.Table.from_pylist(everything, schema=PREFERENCE_SCHEMA), out)
        rows = len(everything)
        shutil.rmtree(out.parent)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_mb()
    print(
        json.dumps({"seconds": seconds, "cpu": cpu, "rows": rows, "before": before, "peak": peak})
    )


def generate(data_dir: Path, database_url: str, n: int) -> None:
    setup(data_dir, database_url)
    from django.core.management import call_command

    from benchmarks.export_parquet import generate as fill

    call_command("migrate", verbosity=0)
    fill(n)


def run_child(data_dir: Path, database_url: str, method: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(data_dir), database_url, method],
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def database_for(base: Path, size: int, postgres: str) -> str:
    if not postgres:
        return f"sqlite:///{base / 'bench.sqlite3'}"
    import psycopg

    name = f"marlin_export_memory_{size}_{os.getpid()}"
    with psycopg.connect(postgres.rstrip("/") + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres.rstrip("/") + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", default="")
    parser.add_argument(
        "--reuse", default="", help="a directory this script generated (one size) to measure again"
    )
    parser.add_argument("--child", nargs=3, metavar=("DATA_DIR", "DATABASE_URL", "METHOD"))
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], args.child[2])
        return
    backend = "PostgreSQL" if args.postgres else "SQLite"
    python = platform.python_version()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {python}, {backend}")
    print(
        f"{'comparisons':>11} {'rows':>7} {'generate s':>10} {'(a) s':>7} {'(a) CPU s':>9} "
        f"{'(a) peak MB':>11} {'(b) s':>7} {'(b) CPU s':>9} {'(b) peak MB':>11} "
        f"{'(b)/(a) MB':>10} {'startup MB':>10} {'load':>5}"
    )
    for size in args.sizes:
        if args.reuse:
            base = Path(args.reuse)
            url = f"sqlite:///{base / 'bench.sqlite3'}"
            generated = 0.0
        else:
            base = Path(tempfile.mkdtemp(prefix=f"marlin-export-memory-{size}-"))
            url = database_for(base, size, args.postgres)
            t0 = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                    "from benchmarks.export_memory import generate; from pathlib import Path; "
                    f"generate(Path({str(base)!r}), {url!r}, {size})",
                ],
                check=True,
                timeout=7200,
            )
            generated = time.perf_counter() - t0
        results: dict[str, list[dict[str, float]]] = {"marlin": [], "naive": []}
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            for method in results:
                results[method].append(run_child(base, url, method))

        def med(
            method: str, key: str, results: dict[str, list[dict[str, float]]] = results
        ) -> float:
            return statistics.median(r[key] for r in results[method])

        print(
            f"{size:>11} {int(med('marlin', 'rows')):>7} {generated:>10.0f} "
            f"{med('marlin', 'seconds'):>7.1f} {med('marlin', 'cpu'):>9.1f} "
            f"{med('marlin', 'peak'):>11.0f} {med('naive', 'seconds'):>7.1f} "
            f"{med('naive', 'cpu'):>9.1f} {med('naive', 'peak'):>11.0f} "
            f"{med('naive', 'peak') / med('marlin', 'peak'):>10.1f} "
            f"{med('marlin', 'before'):>10.0f} {os.getloadavg()[0]:>5.1f}",
            flush=True,
        )
        if not args.reuse:
            drop(base, url, args.postgres)


def drop(base: Path, url: str, postgres: str) -> None:
    """Remove a generated database: its directory, and the PostgreSQL database if any."""
    shutil.rmtree(base, ignore_errors=True)
    if postgres:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres.rstrip("/") + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
