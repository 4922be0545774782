"""Export of 100,000 decided comparisons as preference pairs, in a throwaway SQLite database.

Rows are generated with bulk_create (2 runs, turns, candidates with ~1.5 KB patches and a check
result per comparison, 2 judgments each, the Decision), then the real export job is timed:
Django queries -> rows -> file, manifest with SHA-256 included.

(a) Marlin's Parquet writer: row groups of 5,000 rows through pa.Table.from_pylist (zstd).
(b) What a user would reach for without it: the same rows written as JSON lines with `json`
    (the format `datasets.load_dataset("json", ...)` reads and the one most training scripts
    emit). Both go through the same query/row-building code, so the ratio isolates the writer;
    build-only time (rows produced, nothing written) is printed too.
Also: a row-by-row pyarrow writer (one row group per row) on 2,000 rows, extrapolated, to show
why batching matters.

Run: .venv/bin/python benchmarks/export_parquet.py [--comparisons 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(data_dir: Path) -> None:
    os.environ["MARLIN_DATA_DIR"] = str(data_dir)
    os.environ["MARLIN_DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "marlin.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def patch_text(i: int, side: str) -> str:
    body = "".join(
        f"+    total += line_{j}_{i % 97}  # {side} keeps the running sum\n" for j in range(25)
    )
    return (
        f"diff --git a/ledger/book_{i % 500}.py b/ledger/book_{i % 500}.py\n"
        f"--- a/ledger/book_{i % 500}.py\n+++ b/ledger/book_{i % 500}.py\n"
        f"@@ -10,4 +10,29 @@ def balance(entries):\n-    return sum(entries)\n{body}"
        f"+    return total  # {i}-{side}\n"
    )


def generate(n: int) -> object:
    from django.utils import timezone

    from marlin.accounts.models import RoleGrant, User
    from marlin.agents.models import Agent, Candidate, Run, Turn
    from marlin.catalog.models import Repository
    from marlin.checks.models import CheckResult
    from marlin.review.models import Comparison, Decision, Judgment
    from marlin.tasks.models import Project, Rubric, RubricVersion, Task
    from marlin.tasks.rubric import DEFAULT_CRITERIA

    admin = User.objects.create_user("bench-admin")
    RoleGrant.objects.create(user=admin, role="admin")
    experts = User.objects.bulk_create([User(username=f"expert{i}") for i in range(20)])
    rubric = Rubric.objects.create(name="bench")
    version = RubricVersion.objects.create(
        rubric=rubric, number=1, criteria=DEFAULT_CRITERIA, change_note="v1"
    )
    project = Project.objects.create(name="bench", rubric=rubric)
    repo = Repository.objects.create(
        url="https://github.com/acme/ledger",
        normalized_url="github.com/acme/ledger",
        name="acme/ledger",
    )
    tasks = Task.objects.bulk_create(
        Task(
            project=project,
            repository=repo,
            base_ref="main",
            base_commit=f"{i:040x}",
            title=f"Task {i}",
            prompt=f"Make balance() handle refunds in book {i}; keep the public API.",
            status="approved",
        )
        for i in range(2000)
    )
    agents = Agent.objects.bulk_create(
        Agent(name=f"agent-{i}", version_label="1", provider="import") for i in range(10)
    )
    now = timezone.now()
    batch = 10_000
    for start in range(0, n, batch):
        idx = range(start, min(start + batch, n))
        runs = Run.objects.bulk_create(
            Run(task=tasks[i % len(tasks)], agent=agents[(i + s) % 10], status="waiting")
            for i in idx
            for s in (0, 3)
        )
        turns = Turn.objects.bulk_create(
            Turn(run=r, number=1, prompt="p", status="done") for r in runs
        )
        cands = Candidate.objects.bulk_create(
            Candidate(
                turn=t, patch=patch_text(i, side), files_changed=1, lines_added=26, lines_removed=1
            )
            for t, (i, side) in zip(turns, ((i, s) for i in idx for s in "AB"), strict=True)
        )
        CheckResult.objects.bulk_create(
            CheckResult(
                candidate=c, check_index=0, name="tests", kind="command", status="passed", passed=12
            )
            for c in cands
        )
        comps = Comparison.objects.bulk_create(
            Comparison(
                project=project,
                task=tasks[i % len(tasks)],
                run_a=runs[2 * k],
                run_b=runs[2 * k + 1],
                state="decided",
            )
            for k, i in enumerate(idx)
        )
        overall = [(i % 7) - 3 for i in idx]
        ratings = [
            {
                "correctness": o,
                "security": None,
                "reliability": o // 2,
                "maintainability": 0,
                "overall": o,
            }
            for o in overall
        ]
        Judgment.objects.bulk_create(
            Judgment(
                comparison=c,
                annotator=experts[(k + e) % 20],
                rubric_version=version,
                status="accepted",
                ratings=r,
                overall=o,
                rationale="A handles refunds; B double-counts them.",
                submitted_at=now,
            )
            for k, (c, o, r) in enumerate(zip(comps, overall, ratings, strict=True))
            for e in (0, 1)
        )
        Decision.objects.bulk_create(
            Decision(
                comparison=c,
                source="agreement",
                overall=o,
                ratings=r,
                rubric_version=version,
                rationale="Agreed: A handles refunds; B double-counts them.",
                decided_at=now,
            )
            for c, o, r in zip(comps, overall, ratings, strict=True)
        )
    return admin, project


def time_export(admin: object, project: object, fmt: str) -> tuple[float, int, int]:
    from marlin.exports.actions import do_create_export
    from marlin.exports.jobs import run_export
    from marlin.exports.models import Export

    export = do_create_export(admin, project, "preferences", formats=fmt, enqueue=False)
    t0 = time.perf_counter()
    run_export(export.pk)
    elapsed = time.perf_counter() - t0
    export = Export.objects.get(pk=export.pk)
    assert export.status == "done", export.error
    size = sum(f["bytes"] for f in export.manifest["files"])
    return elapsed, export.manifest["counts"]["rows"], size


def time_build_only(project: object) -> float:
    from marlin.analytics.queries import DecisionFilters
    from marlin.exports.build import preference_rows

    t0 = time.perf_counter()
    for _ in preference_rows(project, DecisionFilters()):
        pass
    return time.perf_counter() - t0


def time_row_by_row(project: object, sample: int, out: Path) -> float:
    """pyarrow, one write_table per row: what appending rows one at a time costs."""
    import itertools

    import pyarrow as pa
    import pyarrow.parquet as pq

    from marlin.analytics.queries import DecisionFilters
    from marlin.exports.build import preference_rows
    from marlin.exports.writers import PREFERENCE_SCHEMA

    rows = list(itertools.islice(preference_rows(project, DecisionFilters()), sample))
    t0 = time.perf_counter()
    with pq.ParquetWriter(out, PREFERENCE_SCHEMA, compression="zstd") as writer:
        for row in rows:
            writer.write_table(pa.Table.from_pylist([row], schema=PREFERENCE_SCHEMA))
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comparisons", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="marlin-export-bench-") as tmp:
        setup_django(Path(tmp))
        t0 = time.perf_counter()
        admin, project = generate(args.comparisons)
        print(
            f"generated {args.comparisons:,} decided comparisons "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        results: dict[str, list[float]] = {"parquet": [], "jsonl": [], "build": []}
        sizes: dict[str, int] = {}
        rows = 0
        for _ in range(args.runs):
            for fmt in ("parquet", "jsonl"):
                elapsed, rows, sizes[fmt] = time_export(admin, project, fmt)
                results[fmt].append(elapsed)
            results["build"].append(time_build_only(project))
        sample = 2000
        row_by_row = time_row_by_row(project, sample, Path(tmp) / "row_by_row.parquet")
        med = {k: statistics.median(v) for k, v in results.items()}
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
            f"Python {platform.python_version()}"
        )
        print(f"rows exported: {rows:,} (ties excluded), runs: {args.runs}")
        print(f"build rows only (queries + dicts): median {med['build']:.2f} s")
        for fmt in ("parquet", "jsonl"):
            print(
                f"export {fmt:7s}: median {med[fmt]:.2f} s ({rows / med[fmt]:,.0f} rows/s), "
                f"{sizes[fmt] / 1e6:.1f} MB, runs {', '.join(f'{t:.2f}' for t in results[fmt])}"
            )
        print(
            f"ratio parquet / jsonl time: {med['parquet'] / med['jsonl']:.2f}; "
            f"size: {sizes['parquet'] / sizes['jsonl']:.3f}"
        )
        print(
            f"row-by-row pyarrow: {sample:,} rows in {row_by_row:.2f} s -> "
            f"{row_by_row / sample * rows:.0f} s extrapolated for {rows:,} rows "
            f"({row_by_row / sample * rows / (med['parquet'] - med['build']):.0f}x "
            "the batched write)"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
