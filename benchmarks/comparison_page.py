"""The comparison page under load: diffs of about 200, 2,000 and 20,000 changed lines per side.

For each size, in a fresh SQLite database (WAL) with two candidates of that size:

* server time and response size of ``GET /compare/<public_id>/`` through Django's full stack
  (middleware, access checks, queries, parsing, rendering), median of several runs, with the
  parse cache cleared before each run (cold: the first view of a comparison) and kept (warm: a
  reload, or the lazy file loads that follow). The candidates carry their file index (made when
  they were stored), so the page reads only the first screen's file sections;
* the same page cold with the index's sections switched off, i.e. both whole patches parsed as
  before the index existed (``whole ms``), and the time of one lazy file load (``file ms``);
* the alternative a developer would write first, in the same run: the same page with every file
  of both sides rendered eagerly (no first-screen cut, no lazy loading), as ratios;
* in Debian's chromium (Playwright), the time from navigation until the first file's diff table
  is visible, median of several loads, against a threaded WSGI server in this process.

    .venv/bin/python benchmarks/comparison_page.py [--runs 5] [--browser-runs 3] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASE = Path(tempfile.mkdtemp(prefix="marlin-bench-compare-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="marlin.settings",
    MARLIN_DATA_DIR=str(BASE / "data"),
    MARLIN_DATABASE_URL=f"sqlite:///{BASE / 'marlin.sqlite3'}",
    # Switching the index off between browser loads is a query from inside Playwright's
    # (synchronous) API, which runs an event loop in this thread.
    DJANGO_ALLOW_ASYNC_UNSAFE="true",
)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from benchmarks.diff_render import make_patch  # noqa: E402
from marlin.accounts.models import RoleGrant, User  # noqa: E402
from marlin.agents.models import Agent, Candidate, Run, Turn  # noqa: E402
from marlin.catalog.models import Repository  # noqa: E402
from marlin.diffs import render as diffrender  # noqa: E402
from marlin.diffs.parse import patch_stats  # noqa: E402
from marlin.review import compare, queue  # noqa: E402
from marlin.review.comparisons import create_comparison  # noqa: E402
from marlin.tasks.actions import do_create_project  # noqa: E402
from marlin.tasks.models import Task, TaskStatus  # noqa: E402

SIZES = (200, 2_000, 20_000)


def setup_comparison(changed: int, admin: User, annotator: User):
    project = do_create_project(admin, f"Bench {changed}", overlap=1)
    repository, _ = Repository.objects.get_or_create(
        normalized_url="bench", defaults={"url": "https://example.com/bench", "name": "bench/repo"}
    )
    task = Task.objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit="0" * 40,
        title=f"{changed} lines",
        prompt="Refactor the handlers.",
        status=TaskStatus.APPROVED,
    )
    runs = []
    for n, seed_shift in enumerate((0, 1)):
        agent, _ = Agent.objects.get_or_create(name=f"bench-{n}", defaults={"provider": "import"})
        run = Run.objects.create(task=task, agent=agent)
        turn = Turn.objects.create(run=run, number=1, prompt=task.prompt, status="done")
        patch = make_patch(changed + seed_shift)
        stats = patch_stats(patch)
        Candidate.objects.create(
            turn=turn,
            patch=patch,
            files_changed=stats.files,
            lines_added=stats.added,
            lines_removed=stats.removed,
        )
        runs.append(run)
    comparison = create_comparison(project, task, *runs)
    assert queue.claim(annotator, comparison) is not None
    return comparison


CPU: list[float] = []  # CPU seconds of the requests median_request timed last


def median_request(client: Client, url: str, runs: int, *, cold: bool = True) -> tuple[float, int]:
    """Median wall seconds and the size; the CPU seconds of each run are left in CPU (on a
    shared, loaded machine CPU time is the steadier figure: wall time includes waiting)."""
    times, size = [], 0
    CPU.clear()
    for _ in range(runs):
        if cold:
            compare.parse_cached.cache_clear()
        start, cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        times.append(time.perf_counter() - start)
        CPU.append(time.process_time() - cpu)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return statistics.median(times), size


def use_sections(comparison, on: bool) -> None:
    """Switch the stored index's sections on or off for both candidates (off: parse whole)."""
    for candidate in Candidate.objects.filter(turn__run__in=[comparison.run_a, comparison.run_b]):
        index = dict(candidate.diff_index, sections=on)
        Candidate.objects.filter(pk=candidate.pk).update(diff_index=index)


def eager_page(comparison, runs: int) -> tuple[float, int]:
    """Both sides parsed and rendered in full, every file: the diff part alone of a page without
    the first-screen cut (the rest of the page adds the same to both)."""
    times, size = [], 0
    for _ in range(runs):
        compare.parse_cached.cache_clear()
        start = time.perf_counter()
        html = "".join(
            diffrender.render_patch(
                compare.side_files(comparison, side, 1),
                mode="split",
                anchor_prefix=compare.PREFIX[side],
                first_screen_lines=10**9,
                max_lines=None,
            )
            for side in compare.SIDES
        )
        times.append(time.perf_counter() - start)
        size = len(html.encode())
    return statistics.median(times), size


def serve() -> str:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.wsgi import get_wsgi_application

    class Threaded(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = make_server(
        "127.0.0.1", 0, get_wsgi_application(), server_class=Threaded, handler_class=Quiet
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def first_file_visible(
    base_url: str,
    session: str,
    urls: dict[int | str, str],
    runs: int,
    before_whole: Callable[[], None],
) -> dict[int | str, float]:
    from playwright.sync_api import sync_playwright

    results: dict[int | str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("MARLIN_CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": "sessionid", "value": session, "url": base_url}])
        page = context.new_page()
        page.goto(base_url + next(iter(urls.values())))  # warm the browser and static files
        for changed, url in urls.items():
            if isinstance(changed, str):
                before_whole()
            times = []
            for _ in range(runs):
                compare.parse_cached.cache_clear()
                start = time.perf_counter()
                page.goto(base_url + url, wait_until="commit")
                # The page opens on A | B (side A's own diff loads when its tab is opened).
                page.locator("#side-ab .diff-file table.diff").first.wait_for(
                    state="visible", timeout=120_000
                )
                times.append(time.perf_counter() - start)
            results[changed] = statistics.median(times)
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--browser-runs", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("erin")
    RoleGrant.objects.create(user=admin, role="admin")
    annotator = User.objects.create_user("alice")  # logged in by force_login
    RoleGrant.objects.create(user=annotator, role="annotator")
    client = Client()
    client.force_login(annotator)
    random.seed(1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}")
    print(
        f"{'changed/side':>12} {'files':>5} {'cold ms':>8} {'CPU ms':>7} {'warm ms':>8} "
        f"{'page KB':>8} "
        f"{'file ms':>8} {'whole ms':>9} {'whole/cold':>10} "
        f"{'eager ms':>9} {'eager KB':>9} {'eager/cold ms':>13} {'eager/page KB':>13}"
    )
    urls: dict[int | str, str] = {}
    comparisons = {}
    for changed in args.sizes:
        comparison = setup_comparison(changed, admin, annotator)
        url = f"/compare/{comparison.public_id}/"
        urls[changed] = url
        client.get(url)  # warm imports and lexers
        runs = args.runs if changed < 20_000 else max(3, args.runs // 2)
        comparisons[changed] = comparison
        page_s, page_bytes = median_request(client, url, runs)
        page_cpu = statistics.median(CPU)
        warm_s, _ = median_request(client, url, runs, cold=False)
        last_pair = len(compare.side_pairs(comparison, 1, "cumulative")) - 1
        file_s, _ = median_request(client, url + f"pair/{last_pair}/", runs)
        use_sections(comparison, False)
        whole_s, _ = median_request(client, url, runs)
        whole_cpu = statistics.median(CPU)
        use_sections(comparison, True)
        eager_s, eager_bytes = eager_page(comparison, runs)
        files = len(compare.side_files(comparison, "A", 1))
        print(
            f"{changed:>12} {files:>5} {page_s * 1e3:>8.0f} {page_cpu * 1e3:>7.0f} "
            f"{warm_s * 1e3:>8.0f} "
            f"{page_bytes / 1024:>8.0f} {file_s * 1e3:>8.0f} {whole_s * 1e3:>9.0f} "
            f"(CPU {whole_cpu * 1e3:.0f}) "
            f"{whole_s / page_s:>10.1f} {eager_s * 1e3:>9.0f} {eager_bytes / 1024:>9.0f} "
            f"{eager_s / page_s:>13.1f} {eager_bytes / page_bytes:>13.1f}"
        )
    if not args.no_browser:
        base_url = serve()
        largest = max(args.sizes)
        # The alternative in the same browser session: the largest page with whole parses.
        urls[f"{largest} whole"] = urls[largest] + "?whole=1"
        use_sections_for = comparisons[largest]
        visible = first_file_visible(
            base_url,
            client.cookies["sessionid"].value,
            urls,
            args.browser_runs,
            before_whole=lambda: use_sections(use_sections_for, False),
        )
        print(f"{'changed/side':>12} {'first file visible (ms, chromium)':>34}")
        for changed, seconds in visible.items():
            print(f"{changed!s:>12} {seconds * 1e3:>34.0f}")


if __name__ == "__main__":
    main()
