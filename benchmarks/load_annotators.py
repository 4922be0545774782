"""Load test: N annotators working through the API at once against `marlin serve`.

For each database (PostgreSQL, as production runs it, and the default SQLite file) and each N,
a fresh database and data directory are made; M comparisons (two agents' runs on one task each,
overlap 2, no review step, so two agreeing judgments decide a comparison and pay both
annotators) and N annotators with API tokens are created; `marlin serve` is started exactly as
the README says (gunicorn processes x threads, the job worker beside it; pooled connections on
PostgreSQL). Then N client threads on 127.0.0.1, one keep-alive HTTP connection each, loop:

    POST /api/comparisons/next, GET /api/comparisons/<id>, PUT .../judgment x3, POST .../submit

either with no pause or with a think time between requests (`--pauses think`, `--think 1 4` s, a
compressed version of an expert's minutes), for `--duration` seconds at most (and each request
`--request-timeout` at most), stopping early when the queue is empty.

Printed per run: throughput, p50/p95/p99 latency per endpoint as the client saw it, errors
(any status other than the expected one, and connection failures), the 1/5-minute load average
before and after, and a consistency check made afterwards in the database:

* every judgment a client saw submitted is submitted once in the database, and no other is
  (a submission whose answer never came, a client timeout, is counted apart: the server may
  have done it);
* no comparison has more places taken (judgments + open claims) than its overlap, and each
  comparison's `slots_taken` counter matches its rows;
* every accepted judgment earned exactly once, and nothing else earned;
* the audit chain verifies.

On PostgreSQL it also samples pg_stat_activity during the load: sessions running a statement,
waiting for a lock, and waiting on the audit chain's head row.

Before the load, one annotator alone times `next` 30 times (the latency with no contention).

    .venv/bin/python benchmarks/load_annotators.py [--databases postgresql sqlite]
        [--annotators 20 50 100 200] [--comparisons 2000] [--pauses none think]
        [--duration 60] [--workers 2] [--threads 8]
        [--admin-url postgres://postgres@127.0.0.1:5432/postgres]

The machine is shared: the load average printed with each run says how busy it was.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
MARLIN = [sys.executable, "-m", "marlin"]
ENDPOINTS = ("next", "get", "put", "submit")
UNANSWERED = object()  # a request whose answer never came (timeout, connection lost)
RATIONALE = (
    "Side A keeps the public API of total() and handles the empty ledger; side B raises KeyError "
    "on the first refund and renames a function two callers use."
)
DRAFT = {
    "ratings": {"correctness": -2, "security": None, "reliability": -1, "maintainability": -1},
    "overall": -2,
    "confidence": 4,
}


# Run inside a subprocess with Django set up on the run's database ----------------------------


def populate(annotators: int, comparisons: int, out: Path) -> None:
    """Comparisons awaiting judgments and annotators with tokens; the tokens go to `out`."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from marlin.accounts.models import ApiToken, RoleGrant, User
    from marlin.agents.models import Agent, Run
    from marlin.catalog.models import MirrorStatus, Repository
    from marlin.review.models import Comparison
    from marlin.tasks.actions import do_create_project
    from marlin.tasks.models import Task, TaskStatus

    call_command("migrate", verbosity=0)
    admin = User.objects.create_user("bench-admin")
    RoleGrant.objects.create(user=admin, role="admin")
    project = do_create_project(
        admin,
        "Load test",
        overlap=2,
        reviewers_per_judgment=0,
        min_rationale_chars=20,
        claim_timeout_minutes=600,
    )
    repository = Repository.objects.create(
        url="https://example.com/bench",
        normalized_url="example.com/bench",
        name="bench/repo",
        mirror_status=MirrorStatus.READY,
        language="Python",
    )
    agents = [Agent.objects.create(name=f"bench-{n}", provider="import") for n in range(2)]
    with transaction.atomic():
        tasks = Task.objects.bulk_create(
            Task(
                project=project,
                repository=repository,
                base_ref="main",
                base_commit="0" * 40,
                title=f"Refunds {n}",
                prompt="Handle refunds.",
                status=TaskStatus.APPROVED,
            )
            for n in range(comparisons)
        )
        runs = Run.objects.bulk_create(
            Run(task=task, agent=agent) for task in tasks for agent in agents
        )
        Comparison.objects.bulk_create(
            Comparison(project=project, task=task, run_a=runs[2 * n], run_b=runs[2 * n + 1])
            for n, task in enumerate(tasks)
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # what autovacuum does soon after a bulk import
    tokens = []
    for n in range(annotators):
        user = User.objects.create_user(f"annotator-{n:03d}")
        RoleGrant.objects.create(user=user, role="annotator")
        tokens.append(ApiToken.issue(user, "load test")[1])
    out.write_text(json.dumps(tokens))


def check(submitted_file: Path, unanswered_file: Path | None = None) -> None:
    """The consistency check after a run; prints one JSON object."""
    import django

    django.setup()
    from django.db.models import Count, Q

    from marlin.accounts.models import Earning, EarningKind
    from marlin.audit.actions import verify_chain
    from marlin.review import queue
    from marlin.review.models import Claim, Comparison, Judgment, JudgmentStatus

    seen = {tuple(pair) for pair in json.loads(submitted_file.read_text())}
    unanswered = (
        {tuple(pair) for pair in json.loads(unanswered_file.read_text())}
        if unanswered_file is not None and unanswered_file.exists()
        else set()
    )
    rows = list(
        Judgment.objects.exclude(status=JudgmentStatus.DRAFT).values_list(
            "annotator__username", "comparison__public_id"
        )
    )
    stored = set(rows)
    slot = Q(judgments__status__in=queue.SLOT_STATUSES)
    over = (
        Comparison.objects.annotate(
            judged=Count("judgments", filter=slot, distinct=True),
            claimed=Count("claims", filter=Q(claims__released_at__isnull=True), distinct=True),
        )
        .filter(Q(judged__gt=2) | Q(claimed__gt=2))
        .count()
    )
    accepted = set(
        Judgment.objects.filter(status=JudgmentStatus.ACCEPTED).values_list("pk", flat=True)
    )
    earned = list(
        Earning.objects.filter(kind=EarningKind.JUDGMENT).values_list("source_id", flat=True)
    )
    broken = verify_chain()
    print(
        json.dumps(
            {
                "submitted_seen": len(seen),
                "submitted_stored": len(rows),
                "lost": len(seen - stored),
                "unexpected": len(stored - seen - unanswered),
                "done_but_unanswered": len((stored - seen) & unanswered),
                "duplicated": len(rows) - len(stored),
                "over_overlap": over,
                "counter_drift": len(queue.recount_slots()),
                "open_claims": Claim.objects.filter(released_at__isnull=True).count(),
                "decided": Comparison.objects.filter(state="decided").count(),
                "accepted": len(accepted),
                "earnings": len(earned),
                "earned_twice": len(earned) - len(set(earned)),
                "earned_not_accepted": len({int(s) for s in earned} - accepted),
                "accepted_not_earned": len(accepted - {int(s) for s in earned}),
                "audit_chain": "verifies" if broken is None else str(broken),
            }
        )
    )


# The run --------------------------------------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:2])


def start_serve(env: dict[str, str], port: int, args: argparse.Namespace, log: Path) -> Any:
    """`marlin serve` (gunicorn), or for the comparison granian's WSGI server with the same
    processes, threads and pool, and `marlin worker` beside it as serve would run it."""
    if args.server == "gunicorn":
        command = [*MARLIN, "serve", f"127.0.0.1:{port}"]
        command += ["--workers", str(args.workers), "--threads", str(args.threads)]
    else:
        command = [
            str(Path(sys.executable).with_name("granian")),
            "--interface=wsgi",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={args.workers}",
            f"--blocking-threads={args.threads}",
            "--log-level=warning",
            "marlin.wsgi:application",
        ]
        env = env | {"MARLIN_DB_POOL_SIZE": str(args.threads)}
        subprocess.run([*MARLIN, "migrate", "--verbosity=0"], cwd=ROOT, env=env, check=True)
    with log.open("wb") as handle:
        serve = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
        )
        if args.server == "granian":
            serve.worker = subprocess.Popen(  # type: ignore[attr-defined]
                [*MARLIN, "worker"], cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT
            )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/account/login/", timeout=2).status_code == 200:
                return serve
        except httpx.HTTPError:
            pass
        if serve.poll() is not None:
            raise SystemExit(f"marlin serve exited:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    serve.kill()
    raise SystemExit(f"marlin serve did not answer within 180 s:\n{log.read_text()[-3000:]}")


def stop_serve(serve: Any) -> None:
    worker = getattr(serve, "worker", None)
    if worker is not None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    serve.send_signal(signal.SIGTERM)
    try:
        serve.wait(timeout=60)
    except subprocess.TimeoutExpired:
        serve.kill()
        serve.wait(timeout=10)


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    submitted: list[tuple[str, str]] = field(default_factory=list)
    # Submissions whose answer never came (timeout, connection lost): the server may have done
    # them; the check counts them apart from judgments nobody submitted.
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    empty: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, endpoint: str, seconds: float) -> None:
        with self.lock:
            self.latencies[endpoint].append(seconds * 1000)

    def error(self, endpoint: str, what: str) -> None:
        with self.lock:
            self.errors[endpoint] += 1
            self.kinds[what.split(":")[0].split(" ")[0]] += 1
            if len(self.first_errors) < 5:
                self.first_errors.append(f"{endpoint}: {what}")


def annotator(
    base: str,
    token: str,
    username: str,
    results: Results,
    deadline: float,
    pause: tuple[float, float],
    request_timeout: float,
    kind: str = "stdlib",
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(username)

    def call(endpoint: str, method: str, url: str, expect: int, **kwargs: Any) -> Any:
        if pause[1]:
            time.sleep(rng.uniform(*pause))
        started = time.perf_counter()
        try:
            response = client.request(method, url, headers=headers, **kwargs)
        except (httpx.HTTPError, OSError, http.client.HTTPException) as exc:
            results.error(endpoint, f"{type(exc).__name__}: {exc}")
            return UNANSWERED
        results.add(endpoint, time.perf_counter() - started)
        if response.status_code != expect:
            if endpoint == "next" and response.status_code == 404:
                return response  # the queue is empty for this annotator: not an error
            results.error(endpoint, f"{response.status_code} {response.text[:200]}")
            return None
        return response

    with _client(base, request_timeout, kind) as client:
        while time.monotonic() < deadline:
            taken = call("next", "POST", "/api/comparisons/next", 200)
            if taken is None or taken is UNANSWERED:
                continue
            if taken.status_code == 404:
                with results.lock:
                    results.empty += 1
                return
            public_id = taken.json()["public_id"]
            if call("get", "GET", f"/api/comparisons/{public_id}", 200) in (None, UNANSWERED):
                continue
            url = f"/api/comparisons/{public_id}/judgment"
            revision = 0
            for n in range(3):
                body = DRAFT | {"draft_revision": revision, "rationale": RATIONALE[: 60 + 40 * n]}
                if call("put", "PUT", url, 200, json=body) in (None, UNANSWERED):
                    break
                revision += 1
            else:
                done = call("submit", "POST", url + "/submit", 200)
                if done is UNANSWERED:
                    with results.lock:
                        results.unanswered.append((username, public_id))
                elif done is not None:
                    with results.lock:
                        results.submitted.append((username, public_id))


class _Answer:
    """The little of an HTTP response the loop reads (what httpx.Response offers)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code, self.content = status_code, body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class LeanClient:
    """One keep-alive HTTP/1.1 connection through the standard library's http.client.

    The load runs on the server's machine, so the client's CPU is taken from the server: httpx
    costs ~15-20 ms of CPU a request on this machine under load (a third of a core at 30 req/s),
    http.client a fraction of that. A lost connection is reopened on the next request."""

    def __init__(self, base: str, timeout: float) -> None:
        parts = urlsplit(base)
        self.host, self.port, self.timeout = parts.hostname or "", parts.port or 80, timeout
        self.connection: http.client.HTTPConnection | None = None

    def request(self, method: str, url: str, headers: dict[str, str], json: Any = None) -> _Answer:
        body, sent = None, dict(headers)
        if json is not None:
            body = _json_dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.connection.request(method, url, body=body, headers=sent)
            response = self.connection.getresponse()
            answer = _Answer(response.status, response.read())
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return answer

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> LeanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_json_dumps = json.dumps


def _client(base: str, timeout: float, kind: str) -> Any:
    if kind == "httpx":
        return httpx.Client(base_url=base, timeout=timeout)
    return LeanClient(base, timeout)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants alive now (from /proc), plus what
    their exited children were charged (cutime, cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(fields[n]) for n in (11, 12, 13, 14)) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


class LockSampler(threading.Thread):
    """PostgreSQL only: every 0.25 s, how many of the run's database sessions are running a
    statement, how many wait for a lock, how many of those wait on the audit chain's head (the
    single row every audited write locks), and how many connections there are at all. And for
    each session waiting for a lock: the table it waits on (the locked relation, or the table
    its statement writes) and what the session holding it up is doing (its state and statement),
    to find any hot row held across a request."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples = url, []  # type: ignore[var-annotated]
        self.waits: Counter[str] = Counter()
        self.blockers: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(0.25):
                self.samples.append(
                    conn.execute(
                        "SELECT count(*) FILTER (WHERE state = 'active'),"
                        " count(*) FILTER (WHERE wait_event_type = 'Lock'),"
                        " count(*) FILTER (WHERE wait_event_type = 'Lock'"
                        "   AND query ILIKE '%%audit_auditchainhead%%'),"
                        " count(*)"
                        " FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchone()
                )
                # The session holding the lock, not the ones queued ahead of this one: among
                # the blocking sessions, one that is not itself waiting for a lock.
                waiting = conn.execute(
                    "SELECT w.query, (SELECT relname FROM pg_locks l JOIN pg_class c"
                    "   ON c.oid = l.relation WHERE l.pid = w.pid AND NOT l.granted LIMIT 1),"
                    " b.state, b.query"
                    " FROM pg_stat_activity w"
                    " LEFT JOIN LATERAL (SELECT state, query FROM pg_stat_activity"
                    "   WHERE pid = ANY(pg_blocking_pids(w.pid))"
                    "   AND wait_event_type IS DISTINCT FROM 'Lock' LIMIT 1) b ON true"
                    " WHERE w.datname = current_database() AND w.wait_event_type = 'Lock'"
                ).fetchall()
                for query, relation, blocker_state, blocker_query in waiting:
                    self.waits[relation or _table_of(query)] += 1
                    # A row lock's later waiters queue on the first waiter's tuple lock.
                    held_up_by = (
                        f"{blocker_state}: {_statement_kind(blocker_query)}"
                        if blocker_state
                        else "queued behind another waiting session"
                    )
                    self.blockers[held_up_by] += 1

    def summary(self) -> dict[str, Any]:
        self.stopping.set()
        self.join(5)
        if not self.samples:
            return {}
        n = len(self.samples)
        return {
            "active": round(sum(s[0] for s in self.samples) / n, 2),
            "waiting_for_a_lock": round(sum(s[1] for s in self.samples) / n, 2),
            "waiting_for_the_audit_head": round(sum(s[2] for s in self.samples) / n, 2),
            "connections_max": max(s[3] for s in self.samples),
            "waiting_on": {k: round(v / n, 2) for k, v in self.waits.most_common(6)},
            "held_up_by": {k: round(v / n, 2) for k, v in self.blockers.most_common(6)},
        }


def _table_of(query: str | None) -> str:
    match = re.search(r'\b(?:UPDATE|INTO|FROM)\s+"?(\w+)', query or "", re.IGNORECASE)
    return match.group(1) if match else "?"


def _statement_kind(query: str | None) -> str:
    words = (query or "").split()
    if not words:
        return "?"
    if words[0].upper() in ("COMMIT", "BEGIN", "ROLLBACK", "RELEASE", "SAVEPOINT"):
        return words[0].upper()
    return f"{words[0].upper()} {_table_of(query)}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def quiet_next(base: str, token: str, username: str) -> tuple[float, list[tuple[str, str]]]:
    """The median of 30 `next` calls by one annotator alone (each judgment submitted before the
    next call, so each call claims anew), and what they submitted."""
    headers = {"Authorization": f"Bearer {token}"}
    times, submitted = [], []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(30):
            started = time.perf_counter()
            response = client.post("/api/comparisons/next", headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"next failed: {response.status_code} {response.text}")
            public_id = response.json()["public_id"]
            body = DRAFT | {"draft_revision": 0, "rationale": RATIONALE}
            client.put(f"/api/comparisons/{public_id}/judgment", json=body, headers=headers)
            url = f"/api/comparisons/{public_id}/judgment/submit"
            if client.post(url, headers=headers).status_code == 200:
                submitted.append((username, public_id))
    return statistics.median(times), submitted


def run_one(database: str, count: int, pause_name: str, args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"marlin-load-{database}-"))
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(work / "data"),
        "MARLIN_LOG_LEVEL": "WARNING",
        "MARLIN_TASKS_BACKEND": "database",
        "PYTHONPATH": str(ROOT),
    }
    name = f"marlin_bench_load_{os.getpid()}_{count}_{pause_name}"
    if database == "postgresql":
        env["MARLIN_DATABASE_URL"] = create_database(args.admin_url, name)
    else:
        env["MARLIN_DATABASE_URL"] = f"sqlite:///{work / 'marlin.sqlite3'}"
    tokens_file, submitted_file = work / "tokens.json", work / "submitted.json"
    serve = None
    try:
        subprocess.run(
            [sys.executable, __file__, "populate", str(count + 1), str(args.comparisons),
             str(tokens_file)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        tokens = json.loads(tokens_file.read_text())
        port = free_port()
        serve = start_serve(env, port, args, work / "serve.log")
        base = f"http://127.0.0.1:{port}"
        # The extra annotator, alone, before the others start.
        quiet, quiet_submitted = quiet_next(base, tokens[-1], f"annotator-{count:03d}")
        pause = (0.0, 0.0) if pause_name == "none" else tuple(args.think)
        results = Results()
        sampler = LockSampler(env["MARLIN_DATABASE_URL"]) if database == "postgresql" else None
        if sampler is not None:
            sampler.start()
        load_before = loadavg()
        server_cpu, client_cpu = tree_cpu_seconds(serve.pid), time.process_time()
        if getattr(serve, "worker", None) is not None:
            server_cpu += tree_cpu_seconds(serve.worker.pid)
        started = time.monotonic()
        deadline = started + args.duration
        threads = [
            threading.Thread(
                target=annotator,
                args=(base, token, f"annotator-{n:03d}", results, deadline, pause),
                kwargs={"request_timeout": args.request_timeout, "kind": args.client},
                daemon=True,
            )
            for n, token in enumerate(tokens[:count])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(args.duration + args.request_timeout + 30)
        seconds = time.monotonic() - started
        client_cpu = time.process_time() - client_cpu
        server_cpu = tree_cpu_seconds(serve.pid) - server_cpu
        if getattr(serve, "worker", None) is not None:
            server_cpu += tree_cpu_seconds(serve.worker.pid)
        load_after = loadavg()
        sessions = sampler.summary() if sampler is not None else {}
        requests = sum(len(v) for v in results.latencies.values())
        stop_serve(serve)
        serve = None
        submitted_file.write_text(json.dumps(results.submitted + quiet_submitted))
        unanswered_file = work / "unanswered.json"
        unanswered_file.write_text(json.dumps(results.unanswered))
        checked = subprocess.run(
            [sys.executable, __file__, "check", str(submitted_file), str(unanswered_file)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        consistency = json.loads(checked.stdout.strip().splitlines()[-1])
        row = {
            "server": args.server,
            "database": database,
            "annotators": count,
            "pause": pause_name,
            "seconds": round(seconds, 1),
            "requests": requests,
            "per_second": round(requests / seconds, 1),
            "submitted": len(results.submitted),
            "errors": sum(results.errors.values()),
            "error_kinds": dict(results.kinds),
            "first_errors": results.first_errors,
            "empty_queue": results.empty,
            "quiet_next_ms": round(quiet, 1),
            "client": args.client,
            # CPU per answered request: the server (web processes and the job worker) and this
            # client (its threads, and the PostgreSQL sampler's), both on the same 2 cores.
            "cpu_ms_per_request": {
                "server": round(server_cpu * 1000 / max(requests, 1), 1),
                "client": round(client_cpu * 1000 / max(requests, 1), 1),
            },
            "load_before": load_before,
            "load_after": load_after,
            "latency_ms": {
                endpoint: {
                    "n": len(results.latencies[endpoint]),
                    "p50": round(percentile(results.latencies[endpoint], 0.50), 1),
                    "p95": round(percentile(results.latencies[endpoint], 0.95), 1),
                    "p99": round(percentile(results.latencies[endpoint], 0.99), 1),
                }
                for endpoint in ENDPOINTS
            },
            "consistency": consistency,
            "database_sessions": sessions,
        }
        return row
    finally:
        if serve is not None:
            stop_serve(serve)
        if database == "postgresql":
            drop_database(args.admin_url, name)


def report(row: dict) -> None:
    c = row["consistency"]
    ok = (
        c["lost"] == c["unexpected"] == c["duplicated"] == c["over_overlap"] == 0
        and c["counter_drift"] == c["earned_twice"] == 0
        and c["earned_not_accepted"] == c["accepted_not_earned"] == 0
        and c["audit_chain"] == "verifies"
    )
    print(
        f"{row['server']:8s} {row['database']:10s} N={row['annotators']:<3d} "
        f"pause={row['pause']:5s} "
        f"{row['per_second']:6.1f} req/s over {row['seconds']} s, {row['submitted']} submitted, "
        f"errors {row['errors']} {json.dumps(row.get('error_kinds') or {})}, "
        f"quiet next {row['quiet_next_ms']} ms, "
        f"load {row['load_before']} -> {row['load_after']}"
    )
    cpu = row["cpu_ms_per_request"]
    # Little's law: with N clients that never pause, the mean response time is N / throughput,
    # whatever the server does; a latency goal needs the throughput to match.
    implied = row["annotators"] / row["per_second"] if row["per_second"] else float("nan")
    print(
        f"    CPU per request: server {cpu['server']} ms, client ({row['client']}) "
        f"{cpu['client']} ms; N / throughput = {implied * 1000:.0f} ms"
    )
    for endpoint, lat in row["latency_ms"].items():
        print(
            f"    {endpoint:6s} n={lat['n']:<6d} p50 {lat['p50']:8.1f}  p95 {lat['p95']:8.1f}  "
            f"p99 {lat['p99']:8.1f} ms"
        )
    print(f"    consistency: {'OK' if ok else 'BROKEN'} {json.dumps(c)}")
    if row.get("database_sessions"):
        print(f"    database sessions, mean of samples: {json.dumps(row['database_sessions'])}")
    for error in row["first_errors"]:
        print(f"    error: {error}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "populate":
        populate(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        check(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--databases", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"]
    )
    parser.add_argument("--annotators", nargs="+", type=int, default=[20, 50, 100, 200])
    parser.add_argument("--comparisons", type=int, default=2000)
    parser.add_argument("--pauses", nargs="+", default=["none", "think"], choices=["none", "think"])
    parser.add_argument(
        "--think", nargs=2, type=float, default=[1.0, 4.0], help="think time range, seconds"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--client",
        default="stdlib",
        choices=["stdlib", "httpx"],
        help="the load client's HTTP library: http.client (lean), or httpx to compare",
    )
    parser.add_argument(
        "--server",
        default="gunicorn",
        choices=["gunicorn", "granian"],
        help="gunicorn through `marlin serve` (what Marlin runs), or granian to compare",
    )
    parser.add_argument(
        "--admin-url",
        default=os.environ.get(
            "MARLIN_BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other work: see the load "
        f"average), Python {platform.python_version()}, {args.server} {args.workers} processes "
        f"x {args.threads} threads, {args.comparisons} comparisons, overlap 2, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    rows = []
    for database in args.databases:
        for pause in args.pauses:
            for count in args.annotators:
                row = run_one(database, count, pause, args)
                report(row)
                rows.append(row)
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
