"""Heartbeats at 200 concurrent annotators on PostgreSQL: the server's time per heartbeat.

Setup: a fresh PostgreSQL database on 127.0.0.1 (created for the run and dropped after it),
migrated; 200 annotators, each logged in (a session cookie) and holding its own comparison with
a draft judgment. Marlin runs under gunicorn on 127.0.0.1 (gthread workers, persistent database
connections, as in production), wrapped by ``timed_application`` below, which measures each
request inside the server (from the WSGI call until the response is ready: middleware, session
and user lookups, the view, its database statements and commit) and returns it in a
``Server-Timing`` header, with the CPU time of the thread that served it (the wall time includes
waiting for a CPU, which on a shared machine is most of it). Real HTTP with keep-alive: one
client thread per annotator.

Measured, in the same run and alternating, for every annotator at once:

* **heartbeat**: ``POST /api/heartbeats`` as the page's activity.js sends it once the work is
  open: ``{"work": "judgment", "comparison": ...}`` with the page's ``X-Heartbeat-Ticket`` (no
  session or user to load): one UPDATE of the annotator's work session in one transaction;
* **heartbeat-login**: the same heartbeat with the login instead (session cookie and CSRF
  header), as an API client or the page's first heartbeat sends it: Django loads the session
  and the user first;
* **autosave** (the alternative, what the page did before): ``POST /compare/<id>/draft/``, the
  draft form with the client's ``active_seconds``, which the page sent every minute of activity to
  carry its time and keep the claim alive (form validation, a row lock, the judgment's UPDATE).

Each annotator sends one request every ``--interval`` seconds (default 15 s, the page's heartbeat
rate; ``--interval 1`` is fifteen times that, about 200 requests a second), ``--count`` of them
(default 8), within ``--timeout`` seconds per phase; ``--runs`` rounds (default 3). Reported per
mode: the median and 90th percentile of the server time over all requests of a round, the median
CPU time of the thread that served a request, the median a client saw (queueing and HTTP
included), and gunicorn's CPU per request (all worker threads, HTTP parsing included, from
/proc), then the median over rounds and the ratios to the heartbeat.

    .venv/bin/python benchmarks/heartbeats.py [--annotators 200] [--count 8] [--interval 15]
        [--runs 3] [--workers 2] [--threads 16] [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
# heartbeat: as the page sends it once the work is open (its ticket); heartbeat-login: as an API
# client or the page's first heartbeat (session and user loaded); autosave: the alternative.
MODES = ("heartbeat", "heartbeat-login", "autosave")
RATIONALE = (
    "Side A keeps the public API of total() and handles the empty ledger; side B raises KeyError "
    "on the first refund and renames a function two callers use. A's test covers the empty case."
)


def timed_application() -> Any:
    """gunicorn's app factory (``benchmarks.heartbeats:timed_application()``): Marlin's WSGI app,
    each response carrying the time the server spent on it. Imported in the gunicorn worker, so
    the benchmark's own process never loads the server's settings."""
    from marlin.wsgi import application

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.thread_time()
        captured: list[tuple[Any, ...]] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.append((status, headers, exc_info))
            return lambda data: None  # Django never calls write()

        body = application(environ, capture)
        elapsed_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.thread_time() - cpu_started) * 1000
        status, headers, exc_info = captured[0]
        timing = f"app;dur={elapsed_ms:.3f}, cpu;dur={cpu_ms:.3f}"
        start_response(status, [*headers, ("Server-Timing", timing)], exc_info)
        return body

    return timed


# Setup ----------------------------------------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Annotator:
    comparison: str
    cookies: dict[str, str]
    ticket: str
    revision: int = 1


def populate(count: int) -> list[Annotator]:
    """Annotators, each logged in and holding a comparison with a saved draft."""
    from django.core.management import call_command
    from django.test import Client

    from marlin.accounts.models import RoleGrant, User
    from marlin.agents.models import Agent, Run
    from marlin.catalog.models import MirrorStatus, Repository
    from marlin.review import actions, activity, queue
    from marlin.review.forms import Draft
    from marlin.review.models import Comparison
    from marlin.tasks.actions import do_create_project
    from marlin.tasks.models import Task, TaskStatus

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("bench-admin")
    RoleGrant.objects.create(user=admin, role="admin")
    project = do_create_project(admin, "Heartbeats", overlap=1, claim_timeout_minutes=600)
    repository = Repository.objects.create(
        url="https://example.com/bench",
        normalized_url="example.com/bench",
        name="bench/repo",
        mirror_status=MirrorStatus.READY,
    )
    task = Task.objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit="0" * 40,
        title="Refunds",
        prompt="Handle refunds.",
        status=TaskStatus.APPROVED,
    )
    runs = [
        Run.objects.create(
            task=task, agent=Agent.objects.create(name=f"bench-{n}", provider="import")
        )
        for n in range(2)
    ]
    annotators = []
    for n in range(count):
        user = User.objects.create_user(f"annotator-{n:03d}")
        RoleGrant.objects.create(user=user, role="annotator")
        comparison = Comparison.objects.create(
            project=project, task=task, run_a=runs[0], run_b=runs[1]
        )
        queue.claim(user, comparison)
        judgment = actions.do_start_judgment(user, comparison)
        draft = Draft(
            ratings={}, overall=None, rationale="", confidence=None, comments=[], turn_notes={}
        )
        actions.do_save_draft(user, judgment, draft, revision=0)
        client = Client()
        client.force_login(user)
        csrf = secrets.token_hex(16)  # a CSRF secret: 32 characters, sent as cookie and header
        annotators.append(
            Annotator(
                comparison.public_id,
                {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf},
                activity.issue_ticket(user, "judgment", comparison.public_id),
            )
        )
    return annotators


# The server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    env: dict[str, str], port: int, workers: int, threads: int, worker_class: str
) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "benchmarks.heartbeats:timed_application()",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--worker-class={worker_class}",
        f"--threads={threads}",
        "--keep-alive=60",
        "--backlog=512",
        "--log-level=warning",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    import httpx

    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/account/login/", timeout=2).status_code:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("gunicorn did not answer within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def server_cpu(server: subprocess.Popen) -> float:
    """CPU seconds used so far by gunicorn's workers (every thread: HTTP parsing included; the
    PostgreSQL backends are not counted, their processes come and go with idle connections)."""
    return sum(_cpu_seconds(pid) for pid in _children(server.pid))


# The clients ----------------------------------------------------------------------------------


@dataclass
class Round:
    server_ms: list[float] = field(default_factory=list)
    thread_cpu_ms: list[float] = field(default_factory=list)
    client_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _request(client: Any, mode: str, who: Annotator) -> Any:
    if mode.startswith("heartbeat"):
        # The page sends its ticket once the work is open; an API client sends its login.
        ticket = {"X-Heartbeat-Ticket": who.ticket} if mode == "heartbeat" else {}
        return client.post(
            "/api/heartbeats",
            json={"work": "judgment", "comparison": who.comparison},
            headers=ticket,
        )
    form = {
        "draft_revision": str(who.revision),
        "rating-correctness": "-2",
        "rating-security": "na",
        "rating-reliability": "-1",
        "rating-maintainability": "0",
        "overall": "-2",
        "rationale": RATIONALE,
        "confidence": "4",
        "comments": "[]",
        "active_seconds": str(60 * who.revision),
        "wall_seconds": str(75 * who.revision),
    }
    response = client.post(
        f"/compare/{who.comparison}/draft/", data=form, headers={"Accept": "application/json"}
    )
    if response.status_code == 200:
        who.revision = response.json()["revision"]
    return response


def annotator_loop(
    base: str, who: Annotator, mode: str, count: int, interval: float, deadline: float, out: Round
) -> None:
    import httpx

    headers = {"X-CSRFToken": who.cookies["csrftoken"]}
    with httpx.Client(base_url=base, cookies=who.cookies, headers=headers, timeout=30) as client:
        time.sleep(random.uniform(0, interval))  # annotators do not beat in step
        next_at = time.monotonic()
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                response = _request(client, mode, who)
            except httpx.HTTPError as exc:
                with out.lock:
                    out.errors.append(type(exc).__name__)
                continue
            client_ms = (time.perf_counter() - started) * 1000
            timing = response.headers.get("Server-Timing", "")
            with out.lock:
                if response.status_code not in (200, 204):
                    out.errors.append(f"{response.status_code} {response.text[:120]}")
                elif timing.startswith("app;dur="):
                    wall, cpu = (part.split("dur=")[1] for part in timing.split(", "))
                    out.server_ms.append(float(wall))
                    out.thread_cpu_ms.append(float(cpu))
                    out.client_ms.append(client_ms)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def run_phase(
    base: str, annotators: list[Annotator], mode: str, count: int, interval: float, timeout: float
) -> Round:
    out = Round()
    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(
            target=annotator_loop, args=(base, who, mode, count, interval, deadline, out)
        )
        for who in annotators
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout + 60)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotators", type=int, default=200)
    parser.add_argument("--count", type=int, default=8, help="requests per annotator per round")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between requests")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--worker-class", default="gthread", choices=["gthread", "sync"])
    parser.add_argument("--timeout", type=float, default=300, help="seconds per phase at most")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    args = parser.parse_args()

    name = f"marlin_bench_heartbeats_{os.getpid()}"
    base_dir = Path(tempfile.mkdtemp(prefix="marlin-bench-heartbeats-"))
    database_url = create_database(args.admin_url, name)
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(base_dir / "data"),
        "MARLIN_DATABASE_URL": database_url,
        "MARLIN_TASKS_BACKEND": "immediate",
        "MARLIN_LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    server = None
    try:
        import django

        django.setup()
        from django.db import connections

        started = time.monotonic()
        annotators = populate(args.annotators)
        connections.close_all()
        print(f"{args.annotators} annotators ready in {time.monotonic() - started:.1f} s")
        port = free_port()
        server = start_server(env, port, args.workers, args.threads, args.worker_class)
        base = f"http://127.0.0.1:{port}"
        # Warm-up: every worker thread connects, and each annotator opens its work with the
        # login, as the page does first.
        run_phase(base, annotators, "heartbeat-login", 1, 0.2, 60)
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes}
        for number in range(1, args.runs + 1):
            for mode in args.modes:
                cpu_before = server_cpu(server)
                phase_started = time.monotonic()
                out = run_phase(base, annotators, mode, args.count, args.interval, args.timeout)
                seconds = time.monotonic() - phase_started
                cpu = server_cpu(server) - cpu_before
                n = len(out.server_ms)
                row = {
                    "requests": n,
                    "per_second": n / seconds,
                    "server_median": statistics.median(out.server_ms) if n else float("nan"),
                    "server_p90": percentile(out.server_ms, 0.9),
                    "thread_cpu_median": statistics.median(out.thread_cpu_ms)
                    if n
                    else float("nan"),
                    "client_median": statistics.median(out.client_ms) if n else float("nan"),
                    "cpu_ms": cpu * 1000 / n if n else float("nan"),
                    "errors": len(out.errors),
                }
                results[mode].append(row)
                print(
                    f"round {number} {mode:15s}: {n} requests ({row['per_second']:.0f}/s), "
                    f"server median {row['server_median']:.2f} ms, p90 {row['server_p90']:.2f} ms, "
                    f"its thread's CPU {row['thread_cpu_median']:.2f} ms, "
                    f"client median {row['client_median']:.2f} ms, "
                    f"gunicorn CPU {row['cpu_ms']:.2f} ms/request, errors {row['errors']}"
                    + (f" (first: {out.errors[0]})" if out.errors else "")
                )
        print()
        print(
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"gunicorn {args.worker_class} {args.workers}x{args.threads}, "
            f"{args.annotators} annotators, "
            f"one request each every {args.interval:g} s, {args.runs} rounds, "
            f"{time.strftime('%Y-%m-%d')}"
        )
        summary = {}
        for mode, rows in results.items():
            summary[mode] = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
            s = summary[mode]
            print(
                f"{mode:15s}: server median {s['server_median']:.2f} ms "
                f"(p90 {s['server_p90']:.2f}), thread CPU {s['thread_cpu_median']:.2f} ms, "
                f"client median {s['client_median']:.2f} ms, "
                f"gunicorn CPU {s['cpu_ms']:.2f} ms/request, {s['per_second']:.0f} requests/s"
            )
        for other in [mode for mode in args.modes if mode != "heartbeat"]:
            if "heartbeat" not in summary:
                break
            ratio = summary[other]["server_median"] / summary["heartbeat"]["server_median"]
            cpu_ratio = summary[other]["cpu_ms"] / summary["heartbeat"]["cpu_ms"]
            print(f"{other} / heartbeat: {ratio:.1f}x server time, {cpu_ratio:.1f}x gunicorn CPU")
        if "heartbeat" in summary:
            verdict = "under" if summary["heartbeat"]["server_median"] < 2 else "NOT under"
            print(f"heartbeat median server time is {verdict} the 2 ms target")
    finally:
        if server is not None:
            stop_server(server)
        drop_database(args.admin_url, name)  # WITH (FORCE) ends this process's connections too


if __name__ == "__main__":
    main()
