"""Background jobs of the catalog. The Repository row's mirror_status is the truth, not the queue:
a job claims the row atomically, so a job enqueued twice or run by two workers does the work once,
and a worker that dies mid-clone leaves a lease that another worker takes over once it expires."""

from __future__ import annotations

import fcntl
import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from django_tasks import task

from marlin.audit.actions import record
from marlin.catalog.mirror import is_mirror
from marlin.catalog.models import MirrorStatus, Repository
from marlin.catalog.validation import InvalidRepositoryURL, OutboundPolicy, validate_url
from marlin.paths import mirrors_dir
from marlin.sandbox.gitutil import GitError, clone_mirror, fetch_mirror

logger = logging.getLogger(__name__)

_CLAIMABLE = [MirrorStatus.PENDING, MirrorStatus.FAILED, MirrorStatus.READY]


def mirror_path_for(repository: Repository) -> Path:
    slug = slugify(repository.name.replace("/", "-"))[:80] or "repository"
    return mirrors_dir() / f"{repository.pk}-{slug}.git"


def claim(repository_id: int) -> datetime | None:
    """Mark the repository as mirroring; return the claim time, or None if another worker
    holds a lease that has not expired yet."""
    now = timezone.now()
    claimed = Repository.objects.filter(pk=repository_id, mirror_status__in=_CLAIMABLE).update(
        mirror_status=MirrorStatus.MIRRORING, mirror_started_at=now
    )
    if claimed == 1:
        return now
    stale = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    taken_over = (
        Repository.objects.filter(pk=repository_id, mirror_status=MirrorStatus.MIRRORING)
        .filter(Q(mirror_started_at__lt=stale) | Q(mirror_started_at__isnull=True))
        .update(mirror_started_at=now)
    )
    return now if taken_over == 1 else None


@task()
def mirror_repository(repository_id: int) -> None:
    """Clone the repository's mirror, or fetch it when it exists. Running it twice is harmless."""
    claimed_at = claim(repository_id)
    if claimed_at is None:
        logger.info("repository %s is being mirrored by another worker; skipping", repository_id)
        return
    repository = Repository.objects.get(pk=repository_id)
    dest = mirror_path_for(repository)
    try:
        _clone_or_fetch(repository, dest)
    except (GitError, InvalidRepositoryURL) as exc:
        _finish(repository_id, claimed_at, MirrorStatus.FAILED, last_error=str(exc))
        # git's own words (with paths) are for the operator's log, not for the page.
        said = getattr(exc, "stderr", "") or "-"
        logger.warning("mirroring repository %s failed: %s (git: %s)", repository_id, exc, said)
        return
    except BaseException as exc:
        # Anything unexpected still releases the row, so it is not stuck until the lease ends;
        # its details (paths, perhaps) go to the worker's log only.
        stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
        _finish(
            repository_id,
            claimed_at,
            MirrorStatus.FAILED,
            last_error="stopped before the mirror was finished; request it again"
            if stopped
            else "internal error while mirroring; the worker's log has the details",
        )
        raise
    _finish(
        repository_id,
        claimed_at,
        MirrorStatus.READY,
        last_error="",
        mirror_path=str(dest),
        last_fetched_at=timezone.now(),
    )


def _clone_or_fetch(repository: Repository, dest: Path) -> None:
    allow_local = bool(settings.ALLOW_LOCAL_REPOSITORIES)
    if repository.is_local and not allow_local:
        raise InvalidRepositoryURL(
            "local repositories are disabled now (MARLIN_ALLOW_LOCAL_REPOSITORIES is off)"
        )
    # Validated again: the row may have been edited since it was added (admin, shell), and the
    # host's DNS answer may have changed since it was checked; git gets the addresses checked now.
    parsed = validate_url(repository.url, allow_local=repository.is_local and allow_local)
    addresses = outbound_policy().check(parsed)
    timeout = settings.GIT_TIMEOUT_SECONDS
    low_speed = (settings.GIT_LOW_SPEED_LIMIT, settings.GIT_LOW_SPEED_SECONDS)
    local = repository.is_local
    if is_mirror(dest):
        fetch_mirror(
            dest,
            url=parsed.url,
            allow_local=local,
            timeout=timeout,
            low_speed=low_speed,
            addresses=addresses,
        )
    else:
        clone_mirror(
            parsed.url,
            dest,
            allow_local=local,
            timeout=timeout,
            low_speed=low_speed,
            addresses=addresses,
        )


def outbound_policy() -> OutboundPolicy:
    """Where git may connect, as the administrator configured it (docs/security.md)."""
    return OutboundPolicy(settings.ALLOWED_INTERNAL_GIT_HOSTS)


def _finish(repository_id: int, claimed_at: datetime, status: str, **fields: object) -> None:
    # Only the holder of the current lease may write the outcome; a worker whose lease was
    # taken over must not overwrite the newer worker's result.
    with transaction.atomic():
        updated = Repository.objects.filter(
            pk=repository_id, mirror_status=MirrorStatus.MIRRORING, mirror_started_at=claimed_at
        ).update(mirror_status=status, **fields)
        if updated == 1:
            record(
                None,
                "repository.mirror",
                object_type="catalog.repository",
                object_id=repository_id,
                old={"mirror_status": MirrorStatus.MIRRORING},
                new={
                    "mirror_status": status,
                    "last_error": str(fields.get("last_error", ""))[:500],
                },
            )
    if updated == 0:
        logger.info("repository %s: lease lost before finishing; result dropped", repository_id)


def local_mirror(repository: Repository) -> Path | None:
    """The repository's mirror on this machine, for the job about to use it; None when the
    repository was never mirrored (or its mirror failed).

    `mirror_path` names the mirror on the machine whose worker made it. A worker on another
    machine, with its own data directory, has no such folder: it clones the mirror into its own
    mirrors directory (the same outbound checks as the mirror job), under a lock so that two
    jobs of this machine needing it at once clone it once, then proceeds. A mirror this machine
    already has is used as it is (the mirror job fetches new commits; a task's base commit is
    in every clone made after the task was created)."""
    if repository.mirror_status != MirrorStatus.READY:
        return None
    recorded = Path(repository.mirror_path) if repository.mirror_path else None
    if recorded is not None and is_mirror(recorded):
        return recorded
    dest = mirror_path_for(repository)
    if is_mirror(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(dest.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if not is_mirror(dest):  # another job of this machine may have cloned it meanwhile
            logger.info("repository %s: no mirror on this machine; cloning it", repository.pk)
            _clone_or_fetch(repository, dest)
    return dest
