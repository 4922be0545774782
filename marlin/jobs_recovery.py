"""Leases for job rows, and the recovery sweep a worker runs on start and every so often.

Our own rows (Environment, CheckResult, Run) hold the truth about work; the job queue only says
"look at this id". A worker claims a row by moving it to a running state with a lease, keeps the
lease fresh with a heartbeat while it works, and a worker that dies simply stops renewing it.
The sweep finds rows whose lease ran out and queues them again; claims are atomic, so a job that
runs twice finds nothing left to do.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, models
from django.utils import timezone

logger = logging.getLogger(__name__)

# Workspaces on another host can only be judged by age: older than the longest check allowed
# (6 h) plus setup, they belong to nobody.
FOREIGN_WORKSPACE_MAX_AGE_SECONDS = 8 * 3600


def lease_seconds() -> int:
    return int(settings.JOB_LEASE_SECONDS)


def lease_until() -> datetime:
    return timezone.now() + timedelta(seconds=lease_seconds())


@contextlib.contextmanager
def heartbeat(model: type[models.Model], **filters: object) -> Iterator[None]:
    """Renew the lease of the rows matching `filters` (e.g. pk=..., status="running") every
    third of a lease while the block runs, so that only a worker that died loses its claim."""
    stop = threading.Event()
    interval = max(lease_seconds() / 3, 0.2)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    model.objects.filter(**filters).update(  # type: ignore[attr-defined]
                        lease_expires_at=lease_until()
                    )
                except Exception:  # a missed beat is retried; the lease has slack for two
                    logger.exception("could not renew the lease of %s %s", model.__name__, filters)
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=beat, name=f"lease-{model.__name__}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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
    from marlin.paths import workspaces_dir

    # Workspaces of dead processes on this host go at once (the marker names the owner); age is
    # only for those of other hosts sharing the directory.
    from marlin.sandbox.limits import sweep_empty_cgroups
    from marlin.sandbox.workspace import sweep_stale_workspaces

    older_than = max(lease_seconds(), FOREIGN_WORKSPACE_MAX_AGE_SECONDS)
    swept = len(sweep_stale_workspaces(workspaces_dir(), older_than_seconds=older_than))
    sweep_empty_cgroups()
    return swept


def recover_all(*, sweep: bool = True) -> Recovered:
    """Everything a worker does to pick up work that a dead worker left behind."""
    from marlin.agents import check_jobs
    from marlin.tasks import jobs as task_jobs

    recovered = Recovered()
    if sweep:
        recovered.workspaces = sweep_workspaces()
    recovered.environments = task_jobs.recover_environments()
    recovered.candidates = check_jobs.recover_checks()
    recovered.runs = _recover_agent_runs()
    return recovered


def _recover_agent_runs() -> int:
    # The agent runs' own recovery lives with them and may not exist yet in every deployment.
    if importlib.util.find_spec("marlin.agents.jobs") is None:
        return 0
    agent_jobs = importlib.import_module("marlin.agents.jobs")
    recover = getattr(agent_jobs, "recover_expired_runs", None)
    if recover is None:
        return 0
    found = recover()
    if isinstance(found, int):
        return found
    return len(found) if found is not None else 0
