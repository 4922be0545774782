"""The heartbeat a running `marlin worker` keeps in the database, and how fresh the freshest is.

A row, not a file: workers run on many machines and /readyz may be asked on any web machine.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone
from django.utils.crypto import get_random_string

from marlin.monitoring.models import WorkerHeartbeat

# Rows of workers that were killed (no orderly stop removed them) are dropped after this long.
FORGET_AFTER = timedelta(days=1)


def new_worker_id() -> str:
    return get_random_string(32)


def beat(worker_id: str, *, started_at: datetime) -> None:
    """Stamp this worker's row with the current time (one UPDATE; the first beat inserts it, and
    drops rows of workers gone for a day)."""
    now = timezone.now()
    if WorkerHeartbeat.objects.filter(worker_id=worker_id).update(last_seen_at=now):
        return
    WorkerHeartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()
    WorkerHeartbeat.objects.create(
        worker_id=worker_id,
        hostname=socket.gethostname()[:255],
        pid=os.getpid(),
        started_at=started_at,
        last_seen_at=now,
    )


def forget(worker_id: str) -> None:
    """The worker stops in order: it no longer counts as alive."""
    WorkerHeartbeat.objects.filter(worker_id=worker_id).delete()


def latest_beat() -> datetime | None:
    """When the freshest worker last beat, or None if no worker ever did (or all stopped)."""
    latest: datetime | None = WorkerHeartbeat.objects.aggregate(latest=Max("last_seen_at"))[
        "latest"
    ]
    return latest


def alive_since(moment: datetime) -> int:
    """How many workers beat after `moment`."""
    return WorkerHeartbeat.objects.filter(last_seen_at__gte=moment).count()
