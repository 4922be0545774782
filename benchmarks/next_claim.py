"""`next` before and after issue 14, in the same run: the claim as it was (read from git at the
commit before the change) against `queue.next_comparison` now, in-process on PostgreSQL.

A fresh database (created and dropped here) with 2,000 comparisons awaiting judgments and
annotators made by load_annotators.py's `populate`; each annotator asks once, alternating between
the two implementations; printed: the median time and statement count of each, and the ratio.

    .venv/bin/python benchmarks/next_claim.py [--annotators 40] [--comparisons 2000]
        [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.load_annotators import create_database, drop_database  # noqa: E402

# The last commit with the previous queue (release expired claims on every call, places counted
# over every open comparison, 25 candidate ids tried twice).
BEFORE = "cd257c6~1"


def measure(annotators: int) -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from marlin.accounts.models import User
    from marlin.review import queue

    source = subprocess.run(
        ["git", "show", f"{BEFORE}:marlin/review/queue.py"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "queue_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("queue_before", path)
    assert spec is not None and spec.loader is not None
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)

    users = list(User.objects.filter(username__startswith="annotator-").order_by("username"))
    times: dict[str, list[float]] = {"before": [], "now": []}
    counts: dict[str, list[int]] = {"before": [], "now": []}
    for n, user in enumerate(users[:annotators]):
        which = "before" if n % 2 == 0 else "now"
        claim = before.next_comparison if which == "before" else queue.next_comparison
        user.role_names()  # what the API's role check has loaded by then
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            taken = claim(user)
            times[which].append((time.perf_counter() - started) * 1000)
        assert taken is not None
        counts[which].append(len(queries))
    for which in ("before", "now"):
        print(
            f"{which:6s}: next median {statistics.median(times[which]):.1f} ms "
            f"(min {min(times[which]):.1f}, {len(times[which])} calls), "
            f"{statistics.median(counts[which]):.0f} statements"
        )
    ratio = statistics.median(times["before"]) / statistics.median(times["now"])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"before / now: {ratio:.1f}x (load average {load})")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "measure":
        measure(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=40)
    parser.add_argument("--comparisons", type=int, default=2000)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marlin-next-claim-"))
    name = f"marlin_bench_next_{os.getpid()}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(work / "data"),
        "MARLIN_DATABASE_URL": create_database(args.admin_url, name),
        "MARLIN_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    try:
        loader = ROOT / "benchmarks" / "load_annotators.py"
        subprocess.run(
            [sys.executable, str(loader), "populate", str(args.annotators),
             str(args.comparisons), str(work / "tokens.json")],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, __file__, "measure", str(args.annotators)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    finally:
        drop_database(args.admin_url, name)


if __name__ == "__main__":
    main()
