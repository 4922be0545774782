"""First file visible on the comparison page, one revision of Marlin against another, in the same
run: both revisions serve the same comparison at the same time and chromium loads them
alternately, so a loaded machine slows both alike and the ratio stays meaningful.

Each revision is exported with ``git archive`` into a temporary directory and served by
``benchmarks/comparison_page.py``'s own setup (a fresh SQLite database, two candidates of
``--size`` changed lines per side, the annotator's claim), in a child process that clears its
parse cache before every timed load (cold, as the first view of a comparison). The timer runs
from navigation until the first diff table of the tab the page opens on is visible.

    .venv/bin/python benchmarks/comparison_revisions.py --before aa8e688^ --after HEAD \\
        [--size 20000] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tab the page opens on: side A before the A | B view, A | B after it.
FIRST_TABLE = ".side.current .diff-file table.diff"
SERVE = """
import runpy, sys
ns = runpy.run_path("benchmarks/comparison_page.py", run_name="bench")
ns["call_command"]("migrate", verbosity=0)
User, RoleGrant, Client = ns["User"], ns["RoleGrant"], ns["Client"]
admin = User.objects.create_user("erin"); RoleGrant.objects.create(user=admin, role="admin")
alice = User.objects.create_user("alice"); RoleGrant.objects.create(user=alice, role="annotator")
client = Client(); client.force_login(alice)
comparison = ns["setup_comparison"](int(sys.argv[1]), admin, alice)
url = f"/compare/{comparison.public_id}/"
response = client.get(url)
assert response.status_code == 200, response.status_code
print(ns["serve"](), client.cookies["sessionid"].value, url, len(response.content), flush=True)
for _ in sys.stdin:
    ns["compare"].parse_cached.cache_clear()
    print("ok", flush=True)
"""


def export(revision: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start(tree: Path, size: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("MARLIN_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(size)],
        cwd=tree,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().split()


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="marlin-bench-revisions-"))
    names = {"before": args.before, "after": args.after}
    servers = {
        name: start(export(revision, work / name), args.size) for name, revision in names.items()
    }
    for name, (_, (_, _, _, size)) in servers.items():
        print(f"{name} ({names[name]}): page {int(size) / 1024:.0f} KB", flush=True)
    times: dict[str, list[float]] = {name: [] for name in names}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ.get("MARLIN_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        pages = {}
        for name, (_, (base, session, url, _)) in servers.items():
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
            pages[name] = context.new_page()
            pages[name].goto(base + url)  # warm the browser and the static files
        for run in range(args.runs):
            for name in list(names) if run % 2 == 0 else list(reversed(names)):
                process, (base, _, url, _) = servers[name]
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write("clear\n")
                process.stdin.flush()
                process.stdout.readline()
                begin = time.perf_counter()
                pages[name].goto(base + url, wait_until="commit")
                pages[name].locator(FIRST_TABLE).first.wait_for(state="visible", timeout=120_000)
                times[name].append(time.perf_counter() - begin)
        browser.close()
    for process, _ in servers.values():
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)
    for name, values in times.items():
        loads = ", ".join(f"{v * 1e3:.0f}" for v in values)
        median = statistics.median(values) * 1e3
        print(f"{name}: first file visible, median {median:.0f} ms ({loads})")
    ratio = statistics.median(times["after"]) / statistics.median(times["before"])
    print(f"after / before: {ratio:.2f}")


if __name__ == "__main__":
    main()
