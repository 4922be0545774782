"""Check jobs: run every check of a task against one candidate, in the sandbox.

`enqueue_checks(candidate)` writes one CheckResult row per check (queued) and queues
`run_candidate_checks(candidate_id)`. The job claims each row atomically (queued, or running
with an expired lease, becomes running with a fresh lease it keeps renewing), runs the check in
a workspace of its own at the base commit with the candidate's patch applied, and saves the
outcome. Finished rows are never run again, so the job may run twice, on any worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task
from pydantic import ValidationError

from marlin.agents.models import Candidate, TurnStatus
from marlin.audit.actions import record
from marlin.catalog.jobs import local_mirror
from marlin.catalog.validation import InvalidRepositoryURL
from marlin.checks.models import CheckResult, CheckStatus
from marlin.grading.runner import run_check
from marlin.grading.spec import CheckOutcome, CheckSpec
from marlin.leases import heartbeat, lease_until
from marlin.paths import tools_root, workspaces_dir
from marlin.sandbox import Mount, SandboxError
from marlin.sandbox.gitutil import GitError
from marlin.sandbox.tools import tools_mount
from marlin.sandbox.workspace import (
    PatchRejected,
    WorkspaceError,
    apply_patch,
    create_layer,
    create_workspace,
    remove_workspace,
)
from marlin.tasks.jobs import (
    cap_log,
    environment_base,
    environment_for,
    environment_mounts,
    ready_environment,
)
from marlin.tasks.models import Environment, EnvironmentStatus, Task

logger = logging.getLogger(__name__)

FINISHED = (CheckStatus.PASSED, CheckStatus.FAILED, CheckStatus.ERROR, CheckStatus.TIMED_OUT)


def enqueue_checks(candidate: Candidate) -> list[CheckResult]:
    """One queued CheckResult per check of the candidate's task (existing rows are kept), and
    a job to run them once the caller's transaction commits."""
    task = Task.objects.get(runs__turns__candidate=candidate)
    rows = []
    for index, raw in enumerate(task.checks or []):
        name = str(raw.get("name", "")) if isinstance(raw, dict) else ""
        kind = str(raw.get("kind", "")) if isinstance(raw, dict) else ""
        row, _ = CheckResult.objects.get_or_create(
            candidate=candidate,
            check_index=index,
            defaults={
                "name": name[:200] or f"check {index + 1}",
                "kind": kind[:20],
                "lease_expires_at": lease_until(settings.JOB_LEASE_SECONDS),
            },
        )
        rows.append(row)
    if rows:
        environment_for(task)  # so the task page shows the environment as pending already
        candidate_id = candidate.pk
        transaction.on_commit(lambda: run_candidate_checks.enqueue(candidate_id))
    return rows


def claim_check(check_id: int) -> bool:
    now = timezone.now()
    claimable = Q(status=CheckStatus.QUEUED) | Q(
        status=CheckStatus.RUNNING, lease_expires_at__lt=now
    )
    claimed = (
        CheckResult.objects.filter(pk=check_id)
        .filter(claimable)
        .update(
            status=CheckStatus.RUNNING,
            lease_expires_at=lease_until(settings.JOB_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )
    return claimed == 1


def _runnable(candidate_id: int) -> list[int]:
    now = timezone.now()
    return list(
        CheckResult.objects.filter(candidate_id=candidate_id)
        .filter(
            Q(status=CheckStatus.QUEUED) | Q(status=CheckStatus.RUNNING, lease_expires_at__lt=now)
        )
        .order_by("check_index")
        .values_list("pk", flat=True)
    )


@task()
def run_candidate_checks(candidate_id: int) -> dict[str, int]:
    """Run the candidate's unfinished checks; return how many ran and how many were skipped."""
    candidate = (
        Candidate.objects.select_related("turn__run__task__repository", "turn__run__task__project")
        .filter(pk=candidate_id)
        .first()
    )
    if candidate is None or not _runnable(candidate_id):
        return {"ran": 0, "skipped": 0}
    task = candidate.turn.run.task
    # While this job waits for a long environment build, its queued rows are not lost work:
    # keep their enqueue lease fresh so the recovery sweep does not queue duplicate jobs.
    with heartbeat(
        CheckResult.objects.filter(candidate_id=candidate_id, status=CheckStatus.QUEUED),
        lease_seconds=settings.JOB_LEASE_SECONDS,
        on_thread_exit=connections.close_all,
    ):
        environment = ready_environment(task)
    ran = skipped = 0
    for check_id in _runnable(candidate_id):
        if not claim_check(check_id):
            skipped += 1  # another worker took it in the meantime
            continue
        _run_claimed(check_id, candidate, task, environment)
        ran += 1
    return {"ran": ran, "skipped": skipped}


def _run_claimed(check_id: int, candidate: Candidate, task: Task, environment: Environment) -> None:
    row = CheckResult.objects.get(pk=check_id)
    try:
        with heartbeat(
            CheckResult.objects.filter(pk=check_id, status=CheckStatus.RUNNING),
            lease_seconds=settings.JOB_LEASE_SECONDS,
            on_thread_exit=connections.close_all,
        ):
            outcome = _outcome(row, candidate, task, environment)
    except BaseException as exc:
        # Release the row on a crash of ours too, so it is not stuck until the lease ends.
        _save(row, task, CheckOutcome(status="error", detail=f"internal error: {exc!r}"))
        raise
    _save(row, task, outcome)


def _outcome(
    row: CheckResult, candidate: Candidate, task: Task, environment: Environment
) -> CheckOutcome:
    try:
        spec = CheckSpec.model_validate(task.checks[row.check_index])
    except (IndexError, KeyError, TypeError):
        return CheckOutcome(status="error", detail="the task no longer has this check")
    except ValidationError as exc:
        return CheckOutcome(status="error", detail=f"the check's definition is invalid: {exc}")
    if environment.status != EnvironmentStatus.READY:
        return CheckOutcome(
            status="error",
            detail=(
                f"the environment is {environment.get_status_display().lower()}, so the check "
                "did not run; the setup log is on the task page"
            ),
        )
    try:
        # On a worker of another machine the mirror is cloned here first (catalog.jobs).
        mirror = local_mirror(task.repository)
    except (GitError, InvalidRepositoryURL) as exc:
        return CheckOutcome(
            status="error",
            detail=f"the repository {task.repository.name} could not be mirrored here: {exc}",
        )
    if mirror is None:
        return CheckOutcome(
            status="error", detail=f"the repository {task.repository.name} has no mirror"
        )
    try:
        with _candidate_workspace(environment, mirror, task.base_commit) as ws:
            if candidate.patch.strip():
                try:
                    apply_patch(ws, candidate.patch)
                except PatchRejected as exc:
                    return CheckOutcome(
                        status="error", detail=f"the candidate's patch was rejected: {exc.reason}"
                    )
            return run_check(spec, workdir=ws, mounts=_mounts(environment))
    except (SandboxError, GitError, WorkspaceError) as exc:
        return CheckOutcome(status="error", detail=f"the check could not be run: {exc}")


@contextmanager
def _candidate_workspace(environment: Environment, mirror: Path, commit: str) -> Iterator[Path]:
    """A copy-on-write layer over the environment's built tree, shared by every candidate of
    the task (nothing of the tree is copied); a fresh worktree when there is no built tree."""
    base = environment_base(environment)
    path = (
        create_layer(base, workspaces_dir())
        if base is not None
        else create_workspace(mirror, commit, workspaces_dir())
    )
    try:
        yield path
    finally:
        remove_workspace(path)


def _mounts(environment: Environment) -> list[Mount]:
    return [tools_mount(tools_root()), *environment_mounts(environment)]


def _save(row: CheckResult, task: Task, outcome: CheckOutcome) -> None:
    with transaction.atomic():
        saved = _store(row.pk, outcome)
        if saved:
            # One event per check outcome (the log stays on the row, not in the audit log).
            record(
                None,
                "check.finished",
                row,
                old={"status": CheckStatus.RUNNING},
                new={
                    "status": outcome.status,
                    "candidate": row.candidate_id,
                    "check": row.name,
                    "passed": outcome.passed,
                    "failed": outcome.failed,
                    "errors": outcome.errors,
                    "skipped": outcome.skipped,
                    "duration_seconds": outcome.duration,
                },
                project_id=task.project_id,
            )
    logger.info("check %s: %s (%s)", row.pk, outcome.status, outcome.detail[:200])


def _store(check_id: int, outcome: CheckOutcome) -> int:
    return CheckResult.objects.filter(pk=check_id, status=CheckStatus.RUNNING).update(
        status=outcome.status,
        passed=outcome.passed,
        failed=outcome.failed,
        errors=outcome.errors,
        skipped=outcome.skipped,
        tests=[t.model_dump() for t in outcome.tests],
        findings=[f.model_dump() for f in outcome.findings],
        required=[r.model_dump() for r in outcome.required],
        log=cap_log(outcome.log),
        detail=outcome.detail[:10_000],
        limits=outcome.limits,
        duration_seconds=outcome.duration,
        finished_at=timezone.now(),
        lease_expires_at=None,
    )


def reset_checks(candidate_ids: list[int]) -> int:
    """Queue the finished checks of these candidates again (for a re-run); return how many."""
    return CheckResult.objects.filter(candidate_id__in=candidate_ids, status__in=FINISHED).update(
        status=CheckStatus.QUEUED,
        lease_expires_at=lease_until(settings.JOB_LEASE_SECONDS),
        finished_at=None,
        passed=0,
        failed=0,
        errors=0,
        skipped=0,
        tests=[],
        findings=[],
        required=[],
        log="",
        detail="",
        duration_seconds=None,
    )


def recover_checks() -> list[int]:
    """Queue again the checks a dead worker held (running, lease expired) and queued checks
    whose job seems lost (their enqueue lease expired); return the candidates queued."""
    now = timezone.now()
    candidates: set[int] = set()
    expired = CheckResult.objects.filter(lease_expires_at__lt=now) | CheckResult.objects.filter(
        status=CheckStatus.QUEUED, lease_expires_at__isnull=True
    )
    for pk, status, candidate_id, project_id in expired.filter(
        status__in=[CheckStatus.QUEUED, CheckStatus.RUNNING]
    ).values_list("pk", "status", "candidate_id", "candidate__turn__run__task__project_id"):
        # Back to queued with a new lease: the sweep then waits a full lease before it queues
        # this row again, however long the queue is.
        with transaction.atomic():
            reset = (
                CheckResult.objects.filter(pk=pk, status=status)
                .filter(Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True))
                .update(
                    status=CheckStatus.QUEUED,
                    lease_expires_at=lease_until(settings.JOB_LEASE_SECONDS),
                )
            )
            if reset == 1 and status == CheckStatus.RUNNING:
                # A queued row whose job may be lost only gets its job again: no state changes.
                record(
                    None,
                    "check.requeued",
                    object_type="checks.checkresult",
                    object_id=pk,
                    old={"status": status},
                    new={"status": CheckStatus.QUEUED},
                    reason="the worker running it stopped renewing its lease",
                    project_id=project_id,
                )
        if reset == 1:
            candidates.add(candidate_id)
    for candidate_id in sorted(candidates):
        run_candidate_checks.enqueue(candidate_id)
    return sorted(candidates)


def candidates_without_checks() -> list[int]:
    """Candidates of finished turns with no check rows although their task has checks: what a
    worker that died before handing a candidate on left behind (the recovery sweep hands them
    on again). A task edited after the candidate was made is left out: checks added since run
    on older candidates only when the author re-runs them (an audited action)."""
    return list(
        Candidate.objects.filter(
            turn__status=TurnStatus.DONE,
            check_results__isnull=True,
            created_at__gte=F("turn__run__task__updated_at"),
        )
        .exclude(turn__run__task__checks=[])
        .values_list("pk", flat=True)
    )


def queue_checks_of_new_candidate(
    sender: object, *, candidate: Candidate, **kwargs: object
) -> None:
    """Receiver of agents' `candidate_ready`: queue the task's checks for the new candidate."""
    with transaction.atomic():
        enqueue_checks(candidate)
