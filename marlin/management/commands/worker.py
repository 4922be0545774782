"""`marlin worker`: run background jobs (mirrors, environments, checks, agent runs, exports).

Before it takes jobs, and then every --recover-every seconds in a background thread, the worker
sweeps workspaces that dead workers left behind and queues again the work whose lease expired
(`recover_all` below). The jobs themselves come from django-tasks-db's `db_worker`, or from
RQ's worker when MARLIN_TASKS_BACKEND=rq.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from marlin import paths
from marlin.agents import jobs as agent_jobs
from marlin.checks import jobs as check_jobs
from marlin.sandbox.limits import sweep_empty_cgroups
from marlin.sandbox.workspace import sweep_stale_workspaces
from marlin.tasks import jobs as task_jobs

logger = logging.getLogger("marlin.worker")

# Workspaces on another host can only be judged by age: older than the longest check allowed
# (6 h) plus setup, they belong to nobody.
FOREIGN_WORKSPACE_MAX_AGE_SECONDS = 8 * 3600


@dataclass
class Recovered:
    workspaces: int = 0
    environments: list[int] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    runs: int = 0

    def __str__(self) -> str:
        return (
            f"{self.workspaces} stale workspace(s) swept, {len(self.environments)} environment "
            f"build(s) and checks of {len(self.candidates)} candidate(s) queued again, "
            f"{self.runs} agent run(s) recovered"
        )

    @property
    def anything(self) -> bool:
        return bool(self.workspaces or self.environments or self.candidates or self.runs)


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
    ran out are queued again (claims are atomic, so work that runs twice finds nothing to do)."""
    recovered = Recovered()
    if sweep:
        recovered.workspaces = sweep_workspaces()
    recovered.environments = task_jobs.recover_environments()
    recovered.candidates = check_jobs.recover_checks()
    recovered.runs = agent_jobs.recover_expired_runs()
    return recovered


def _recover(stdout_write: Callable[[str], None]) -> None:
    try:
        recovered = recover_all()
    except Exception:  # recovery must never stop the worker; the next sweep tries again
        logger.exception("recovery sweep failed")
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

    def handle(self, *args, **options) -> None:
        every = options["recover_every"] or min(60.0, max(settings.JOB_LEASE_SECONDS / 3, 1.0))
        if every <= 0:
            self.stderr.write("--recover-every must be a positive number of seconds.")
            raise SystemExit(2)
        _recover(self.stdout.write)
        stop = threading.Event()
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

    def _work(self, options: dict) -> None:
        if settings.TASKS_BACKEND == "rq":
            # django-tasks-rq's jobs need its Job class to find and call the task function.
            rq_args = ["default", "--job-class", "django_tasks_rq.Job"]
            if options["batch"]:
                rq_args.append("--burst")
            if options["max_tasks"]:
                rq_args += ["--max-jobs", str(options["max_tasks"])]
            call_command("rqworker", *rq_args)
            return
        worker_args = ["--interval", str(options["interval"]), "--no-startup-delay", "--no-reload"]
        if options["batch"]:
            worker_args.append("--batch")
        if options["max_tasks"]:
            worker_args += ["--max-tasks", str(options["max_tasks"])]
        call_command("db_worker", *worker_args)
