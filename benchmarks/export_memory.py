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
     [--postgres postgres://postgres@127.0.0.1:5432/] (a throwaway database per size, filled
     by set-based SQL: 1,000,000 comparisons in minutes) [--methods marlin] [--reuse DIR]
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
from typing import Any

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
    from django.db import connection

    from benchmarks.export_parquet import generate as fill

    call_command("migrate", verbosity=0)
    if connection.vendor == "postgresql":
        generate_postgres(n)
    else:
        fill(n)


def generate_postgres(n: int) -> None:
    """The same rows as export_parquet.generate, but the per-comparison ones by set-based SQL.

    The few fixed objects (admin, experts, rubric, project, repository, 2,000 tasks, 10 agents)
    go through the ORM; runs, turns, candidates, check results, comparisons, judgments and
    decisions are each one INSERT ... SELECT over generate_series, with explicit ids so the
    foreign keys are arithmetic (comparison i: runs/turns/candidates/checks 2i+1 and 2i+2,
    judgments 2i+1 and 2i+2, decision i+1). bulk_create of ~10 objects per comparison would take
    about an hour for 1,000,000; this takes minutes. Every column the ORM generator leaves at its
    default gets the model field's default here, so the rows match column for column, and the
    patches are byte-for-byte export_parquet.patch_text(i, side).
    """
    from django.db import connection, models, transaction

    from benchmarks.export_parquet import generate as fill
    from benchmarks.export_parquet import patch_text
    from marlin.accounts.models import User
    from marlin.agents.models import Agent, Candidate, Run, Turn
    from marlin.checks.models import CheckResult
    from marlin.review.models import Comparison, Decision, Judgment
    from marlin.tasks.models import Project, RubricVersion, Task

    for filled in (Run, Comparison):
        if filled.objects.exists():
            raise SystemExit(f"{filled._meta.db_table} is not empty: generate into a new database")
    fill(0)
    project = Project.objects.get(name="bench")
    task_ids = list(
        Task.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
    )
    agent_ids = list(Agent.objects.order_by("pk").values_list("pk", flat=True))
    expert_ids = list(
        User.objects.filter(username__startswith="expert")
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    # patch_text(i, side) = a head that varies with i % 500 and i, and 25 body lines that vary
    # with i % 97 and the side: the 194 bodies are precomputed, the head is string arithmetic.
    bodies = {(k, side): patch_text(k, side) for k in range(97) for side in "AB"}
    params: dict[str, Any] = {
        "n": n,
        "tasks": task_ids,
        "agents": agent_ids,
        "experts": expert_ids,
        "project": project.pk,
        "version": RubricVersion.objects.get(rubric=project.rubric).pk,
        "body_k": [k for k, _ in bodies],
        "body_side": [s for _, s in bodies],
        "body": [
            text.split("@@ -10,4 +10,29 @@ def balance(entries):\n", 1)[1].rsplit(
                "+    return total", 1
            )[0]
            for text in bodies.values()
        ],
    }
    sides = "generate_series(0, %(n)s - 1) AS i CROSS JOIN generate_series(0, 1) AS s"
    ratings = (
        "jsonb_build_object('correctness', (i %% 7) - 3, 'security', NULL, 'reliability', "
        "floor(((i %% 7) - 3) / 2.0)::int, 'maintainability', 0, 'overall', (i %% 7) - 3)"
    )
    rationale = "'A handles refunds; B double-counts them.'"
    plan: list[tuple[type[models.Model], str, dict[str, str]]] = [
        (
            Run,
            sides,
            {
                "id": "2 * i + s + 1",
                "task_id": "(%(tasks)s::bigint[])[i %% 2000 + 1]",
                "agent_id": "(%(agents)s::bigint[])[(i + 3 * s) %% 10 + 1]",
                "status": "'waiting'",
            },
        ),
        (
            Turn,
            sides,
            {
                "id": "2 * i + s + 1",
                "run_id": "2 * i + s + 1",
                "number": "1",
                "prompt": "'p'",
                "status": "'done'",
            },
        ),
        (
            Candidate,
            sides + " JOIN bench_body b ON b.k = i %% 97 AND b.side = chr(65 + s)",
            {
                "id": "2 * i + s + 1",
                "turn_id": "2 * i + s + 1",
                "patch": (
                    "format('diff --git a/ledger/book_%%1$s.py b/ledger/book_%%1$s.py\n"
                    "--- a/ledger/book_%%1$s.py\n+++ b/ledger/book_%%1$s.py\n"
                    "@@ -10,4 +10,29 @@ def balance(entries):\n%%2$s"
                    "+    return total  # %%3$s-%%4$s\n', i %% 500, b.body, i, b.side)"
                ),
                "files_changed": "1",
                "lines_added": "26",
                "lines_removed": "1",
            },
        ),
        (
            CheckResult,
            sides,
            {
                "id": "2 * i + s + 1",
                "candidate_id": "2 * i + s + 1",
                "check_index": "0",
                "name": "'tests'",
                "kind": "'command'",
                "status": "'passed'",
                "passed": "12",
            },
        ),
        (
            Comparison,
            "generate_series(0, %(n)s - 1) AS i",
            {
                "id": "i + 1",
                "public_id": "'bench' || lpad(i::text, 11, '0')",
                "project_id": "%(project)s",
                "task_id": "(%(tasks)s::bigint[])[i %% 2000 + 1]",
                "run_a_id": "2 * i + 1",
                "run_b_id": "2 * i + 2",
                "state": "'decided'",
            },
        ),
        (
            Judgment,
            "generate_series(0, %(n)s - 1) AS i CROSS JOIN generate_series(0, 1) AS e",
            {
                "id": "2 * i + e + 1",
                "comparison_id": "i + 1",
                "annotator_id": "(%(experts)s::bigint[])[(i + e) %% 20 + 1]",
                "rubric_version_id": "%(version)s",
                "status": "'accepted'",
                "ratings": ratings,
                "overall": "(i %% 7) - 3",
                "rationale": rationale,
                "submitted_at": "now()",
            },
        ),
        (
            Decision,
            "generate_series(0, %(n)s - 1) AS i",
            {
                "id": "i + 1",
                "comparison_id": "i + 1",
                "source": "'agreement'",
                "overall": "(i %% 7) - 3",
                "ratings": ratings,
                "rubric_version_id": "%(version)s",
                "rationale": "'Agreed: A handles refunds; B double-counts them.'",
                "decided_at": "now()",
            },
        ),
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        # Foreign keys are right by construction; skipping their per-row triggers halves the load.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_body ON COMMIT DROP AS SELECT * FROM "
            "unnest(%(body_k)s::int[], %(body_side)s::text[], %(body)s::text[]) "
            "AS b(k, side, body)",
            params,
        )
        for model, source, exprs in plan:
            columns, values = [], []
            for field in model._meta.concrete_fields:
                columns.append(connection.ops.quote_name(field.column))
                if field.column in exprs:
                    values.append(exprs[field.column])
                elif isinstance(field, models.DateTimeField) and not field.null:
                    values.append("now()")  # created_at, updated_at, started_at, ...
                else:
                    name = f"default_{model._meta.model_name}_{field.column}"
                    params[name] = field.get_db_prep_save(field.get_default(), connection)
                    values.append(f"%({name})s")
            table = connection.ops.quote_name(model._meta.db_table)
            t0 = time.perf_counter()
            # The SQL is this script's own text and the models' table and column names.
            sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)}"
            cursor.execute(sql + f" FROM {source}", params)
            print(
                f"{model._meta.db_table}: {cursor.rowcount:,} rows "
                f"in {time.perf_counter() - t0:.0f} s",
                flush=True,
            )
        for model, _source, _exprs in plan:
            table = model._meta.db_table
            last = f"SELECT max(id) FROM {connection.ops.quote_name(table)}"  # noqa: S608
            cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), ({last}))", [table])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


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
        "--reuse",
        default="",
        help="a directory this script generated (one size) to measure again; with --postgres, "
        "--postgres is then the generated database's full URL",
    )
    parser.add_argument(
        "--methods",
        nargs="*",
        default=["marlin", "naive"],
        choices=["marlin", "naive"],
        help="(b), naive, needs ~11 GB and long minutes at 1,000,000",
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
            url = args.postgres or f"sqlite:///{base / 'bench.sqlite3'}"
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
        results: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            for method in results:
                results[method].append(run_child(base, url, method))
                one = results[method][-1]
                print(
                    f"  {size} {method}: {one['seconds']:.1f} s, CPU {one['cpu']:.1f} s, "
                    f"peak {one['peak']:.0f} MB, load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )

        def med(
            method: str, key: str, results: dict[str, list[dict[str, float]]] = results
        ) -> float:
            runs = results.get(method, [])
            return statistics.median(r[key] for r in runs) if runs else 0.0

        print(
            f"{size:>11} {int(med('marlin', 'rows')):>7} {generated:>10.0f} "
            f"{med('marlin', 'seconds'):>7.1f} {med('marlin', 'cpu'):>9.1f} "
            f"{med('marlin', 'peak'):>11.0f} {med('naive', 'seconds'):>7.1f} "
            f"{med('naive', 'cpu'):>9.1f} {med('naive', 'peak'):>11.0f} "
            f"{med('naive', 'peak') / (med('marlin', 'peak') or 1):>10.1f} "
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
