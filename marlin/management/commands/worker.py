"""`marlin worker`: run background jobs (mirrors, environments, checks, agent runs, exports).

Before it takes jobs, and then every --recover-every seconds in a background thread, the worker
sweeps workspaces that dead workers left behind, queues again the work whose lease expired and
hands on finished turns that a dead worker did not (`recover_all` below). The jobs themselves
come from django-tasks-db's worker loop, or from RQ's worker when MARLIN_TASKS_BACKEND=rq.

A database outage does not stop the worker: on a database error (SQLite "database is locked"
past the busy timeout, a PostgreSQL connection terminated or refused) it closes its connections,
waits, and starts its loop again, for as long as the outage lasts (`run_until_stopped`). The job
that was in hand when the error came is picked up by the lease sweep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from marlin import paths
from marlin.agents import jobs as agent_jobs
from marlin.agents.models import Candidate
from marlin.analytics import queue_order
from marlin.checks import jobs as check_jobs
from marlin.management.lifetime import die_with_parent
from marlin.monitoring import metrics
from marlin.monitoring import workers as worker_heartbeats
from marlin.review import comparisons, queue
from marlin.sandbox.limits import sweep_empty_cgroups
from marlin.sandbox.workspace import sweep_stale_workspaces
from marlin.tasks import jobs as task_jobs

logger = logging.getLogger("marlin.worker")

# Workspaces on another host can only be judged by age: older than the longest check allowed
# (6 h) plus setup, they belong to nobody.
FOREIGN_WORKSPACE_MAX_AGE_SECONDS = 8 * 3600

# What the worker outlives: errors of the database connection, not of a query's content
# (IntegrityError, DataError), which are bugs a retry would repeat forever.
DATABASE_ERRORS = (OperationalError, InterfaceError)
# Waits between tries after a database error: 0.5 s doubling to 30 s, for as long as it lasts.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


@dataclass
class Recovered:
    workspaces: int = 0
    environments: list[int] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    runs: int = 0
    handed_on: list[int] = field(default_factory=list)
    claims: int = 0
    queues: int = 0  # projects whose queue order, weak labels and triage were refreshed

    def __str__(self) -> str:
        return (
            f"{self.workspaces} stale workspace(s) swept, {len(self.environments)} environment "
            f"build(s) and checks of {len(self.candidates)} candidate(s) queued again, "
            f"{self.runs} agent run(s) recovered, "
            f"{len(self.handed_on)} finished turn(s) handed on again, "
            f"{self.claims} idle claim(s) released, "
            f"{self.queues} project queue(s) reordered"
        )

    @property
    def anything(self) -> bool:
        return bool(
            self.workspaces
            or self.environments
            or self.candidates
            or self.runs
            or self.handed_on
            or self.claims
        )


def sweep_workspaces() -> int:
    """Remove workspaces (and empty per-run cgroups) that dead processes left behind. Those of
    dead processes on this host go at once (the marker names the owner); age is only for those
    of other hosts sharing the directory."""
    older_than = max(settings.JOB_LEASE_SECONDS, FOREIGN_WORKSPACE_MAX_AGE_SECONDS)
    swept = len(sweep_stale_workspaces(paths.workspaces_dir(), older_than_seconds=older_than))
    sweep_empty_cgroups()
    return swept


def recover_all(*, sweep: bool = True) -> Recovered:
    """Everything a worker does to pick up work that a dead worker left behind: rows whose lease
    ran out are queued again (claims are atomic, so work that runs twice finds nothing to do);
    and the annotators' claims that went idle are released."""
    recovered = Recovered()
    if sweep:
        recovered.workspaces = sweep_workspaces()
    recovered.environments = task_jobs.recover_environments()
    recovered.candidates = check_jobs.recover_checks()
    recovered.runs = agent_jobs.recover_expired_runs()
    recovered.handed_on = hand_on_stranded_turns()
    # Claims idle past their project's timeout go back to the queue here, not in the requests
    # of the annotators asking for work.
    recovered.claims = queue.release_expired_claims()
    # The queue's order (active pair selection), weak labels and triage: computed here, so
    # that `next` only reads a stored priority (marlin/analytics/queue_order.py).
    try:
        recovered.queues = len(queue_order.refresh_all())
    except Exception:  # statistics must not stop the recovery of work; logged, tried again
        logger.exception("refreshing the queues' order failed")
    return recovered


def hand_on_stranded_turns() -> list[int]:
    """Hand on again the candidates of finished turns that never reached their checks or their
    comparison; return their ids. A turn's candidate and its hand-off commit together now, so
    these come from workers of an older release that died between the two; the receivers are
    idempotent (existing check rows are kept, an existing comparison is only brought up to
    date), so a candidate handed on twice, by two workers' sweeps at once, is harmless."""
    stranded = sorted(
        set(check_jobs.candidates_without_checks())
        | set(comparisons.candidates_awaiting_comparison())
    )
    for candidate_id in stranded:
        with transaction.atomic():
            candidate = Candidate.objects.select_related("turn__run").get(pk=candidate_id)
            agent_jobs.after_candidate(candidate)
        logger.info("candidate %s: its finished turn was handed on again", candidate_id)
    return stranded


def _recover(stdout_write: Callable[[str], None]) -> None:
    try:
        recovered = recover_all()
    except Exception:  # recovery must never stop the worker; the next sweep tries again
        logger.exception("recovery sweep failed")
        # A broken connection stays broken until closed; the next sweep opens a new one.
        connections.close_all()
        return
    if recovered.anything:
        stdout_write(f"Recovery: {recovered}.")


def _recover_periodically(
    every: float, stop: threading.Event, stdout_write: Callable[[str], None]
) -> None:
    try:
        while not stop.wait(every):
            _recover(stdout_write)
    finally:
        connections.close_all()


def _beat_periodically(every: float, stop: threading.Event, worker_id: str) -> None:
    """Keep this worker's heartbeat row fresh (/readyz and /metrics read it) until stopped, then
    remove it. A beat that fails is logged and tried again at the next one."""
    started_at = timezone.now()
    try:
        while True:
            try:
                worker_heartbeats.beat(worker_id, started_at=started_at)
            except Exception:  # the heartbeat must never stop the worker
                logger.exception("could not record the worker's heartbeat; trying again")
                connections.close_all()
            if stop.wait(every):
                break
        worker_heartbeats.forget(worker_id)
    except Exception:  # stopping: a row left behind only ages out
        logger.exception("could not remove the worker's heartbeat")
    finally:
        connections.close_all()


def run_until_stopped(work: Callable[[], object], *, stopping: Callable[[], bool]) -> None:
    """Run `work` until it returns. After a database error, close this thread's connections
    (Django does not reopen a broken one by itself), log, wait, and run it again; the waits
    double from RETRY_FIRST_SECONDS to RETRY_MAX_SECONDS and start short again after a good run
    longer than that. Returns without another try when `stopping()` says shutdown was asked."""
    delay = RETRY_FIRST_SECONDS
    while True:
        started = time.monotonic()
        try:
            work()
            return
        except DATABASE_ERRORS as exc:
            if stopping():
                return
            if time.monotonic() - started > RETRY_MAX_SECONDS:
                delay = RETRY_FIRST_SECONDS
            logger.warning(
                "database error (%s: %s); trying again in %.1f s",
                type(exc).__name__,
                str(exc).strip(),
                delay,
            )
            connections.close_all()
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


class Command(BaseCommand):
    help = (
        "Run a job worker. Recovers work that crashed workers left behind, "
        "on start and periodically."
    )
    # System checks import every URLconf (and with it the API and scipy): seconds per start,
    # for nothing a worker uses. `marlin serve` and `manage.py check` still run them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", action="store_true", help="Run what is queued, then exit.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between polls.")
        parser.add_argument("--max-tasks", type=int, default=None)
        parser.add_argument(
            "--recover-every",
            type=float,
            default=None,
            help="Seconds between recovery sweeps (default: a third of MARLIN_JOB_LEASE_SECONDS, "
            "at most 60).",
        )
        parser.add_argument(
            "--parent-pid",
            type=int,
            default=None,
            help="Stop when this process (the one starting the worker) dies, even by SIGKILL. "
            "`marlin serve` passes its own.",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Answer Prometheus on this port with this worker's job durations and failures "
            "(a worker outside `marlin serve`; docs/deploy.md, 'Health and metrics').",
        )
        parser.add_argument(
            "--metrics-address",
            default="127.0.0.1",
            help="Address for --metrics-port (default 127.0.0.1; the answer has no access check).",
        )

    def handle(self, *args, **options) -> None:
        every = options["recover_every"] or min(60.0, max(settings.JOB_LEASE_SECONDS / 3, 1.0))
        if every <= 0:
            self.stderr.write("--recover-every must be a positive number of seconds.")
            raise SystemExit(2)
        if options["parent_pid"] is not None:
            die_with_parent(options["parent_pid"])
        if options["metrics_port"] is not None:
            try:
                metrics.serve_process_metrics(options["metrics_address"], options["metrics_port"])
            except OSError as exc:
                raise CommandError(
                    f"Cannot answer metrics on {options['metrics_address']}:"
                    f"{options['metrics_port']} ({exc.strerror}); choose another --metrics-port."
                ) from exc
        stop = threading.Event()
        beating = threading.Thread(
            target=_beat_periodically,
            args=(settings.WORKER_HEARTBEAT_SECONDS, stop, worker_heartbeats.new_worker_id()),
            name="marlin-worker-heartbeat",
            daemon=True,
        )
        beating.start()
        _recover(self.stdout.write)
        if not options["batch"]:
            threading.Thread(
                target=_recover_periodically,
                args=(every, stop, self.stdout.write),
                name="marlin-recovery",
                daemon=True,
            ).start()
        try:
            self._work(options)
        finally:
            stop.set()
            beating.join(timeout=5)

    def _work(self, options: dict) -> None:
        if settings.TASKS_BACKEND == "rq":
            # django-tasks-rq's jobs need its Job class to find and call the task function.
            rq_args = ["default", "--job-class", "django_tasks_rq.Job"]
            if options["batch"]:
                rq_args.append("--burst")
            if options["max_tasks"]:
                rq_args += ["--max-jobs", str(options["max_tasks"])]
            # Jobs run in RQ's forked work horses; only the worker's own loop is retried here.
            run_until_stopped(lambda: call_command("rqworker", *rq_args), stopping=lambda: False)
            return
        # django-tasks-db's loop (what `db_worker` runs), kept across database errors: the same
        # worker object remembers a shutdown asked for by SIGTERM/SIGINT and --max-tasks done.
        worker = Worker(
            queue_names=["default"],
            excluded_queue_names=[],
            interval=options["interval"],
            batch=options["batch"],
            backend_name="default",
            startup_delay=False,
            max_tasks=options["max_tasks"],
            worker_id=get_random_string(32),
        )
        # While it waits between tries, SIGTERM/SIGINT end the process at once (no job in hand).
        worker.configure_signals()
        run_until_stopped(worker.run, stopping=lambda: not worker.running)
