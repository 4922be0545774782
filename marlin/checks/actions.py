"""State changes of checks that a person asks for (audited): re-running a task's checks."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from marlin.accounts.models import User
from marlin.agents.models import Candidate
from marlin.audit.actions import record
from marlin.checks.jobs import enqueue_checks, reset_checks
from marlin.permissions import require_role
from marlin.tasks.jobs import environment_for, request_rebuild
from marlin.tasks.models import Task


@transaction.atomic
def do_rerun_checks(actor: User, task: Task, *, reason: str = "") -> int:
    """Queue every finished check of every candidate of the task again (and a failed
    environment's build); return how many check results were queued again. Checks that are
    queued or running are left alone."""
    require_role(actor, "author")
    if task.created_by_id != actor.pk and not actor.has_role("admin"):
        raise PermissionDenied("Only the task's author or an admin may re-run its checks.")
    environment = environment_for(task)
    rebuilt = request_rebuild(environment)
    candidates = list(Candidate.objects.filter(turn__run__task=task).order_by("pk"))
    requeued = reset_checks([c.pk for c in candidates])
    for candidate in candidates:
        enqueue_checks(candidate)  # adds rows for checks added since, and queues the job
    record(
        actor,
        "checks.rerun",
        task,
        new={
            "check_results_requeued": requeued,
            "candidates": len(candidates),
            "environment_rebuilt": rebuilt,
        },
        reason=reason,
        project_id=task.project_id,
    )
    return requeued
