"""Leases on job rows: how long a claim lasts, and the heartbeat that keeps it alive.

Our own rows (Environment, CheckResult, Run, Repository) hold the truth about work; the job queue
only says "look at this id". A worker claims a row by moving it to a running state with a lease,
keeps the lease fresh with a heartbeat while it works, and a worker that dies simply stops
renewing it: the worker's recovery sweep (`marlin worker`) queues such rows again. Plain Python:
the rows to renew come in as anything with an `update(**fields)` method (a Django QuerySet).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Renewable(Protocol):
    def update(self, **fields: Any) -> int: ...


def lease_until(seconds: float, *, now: datetime | None = None) -> datetime:
    """When a lease taken now for `seconds` runs out (timezone-aware, UTC)."""
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)


def _nothing() -> None:
    return None


@contextlib.contextmanager
def heartbeat(
    rows: Renewable,
    *,
    lease_seconds: float,
    on_thread_exit: Callable[[], None] = _nothing,
) -> Iterator[None]:
    """Renew the lease of `rows` (set `lease_expires_at`) every third of a lease while the block
    runs, so that only a worker that died loses its claim. `on_thread_exit` runs in the beating
    thread when it stops, and after a beat that failed (Django callers pass
    `connections.close_all`: the thread's own connections, so a connection the database dropped
    is opened again by the next beat instead of failing every beat until the lease is lost)."""
    stop = threading.Event()
    interval = max(lease_seconds / 3, 0.2)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                try:
                    rows.update(lease_expires_at=lease_until(lease_seconds))
                except Exception:  # a missed beat is retried; the lease has slack for two
                    # Not the rows' repr: a QuerySet's is one more query, failing the same way.
                    logger.exception("could not renew a lease; trying again at the next beat")
                    on_thread_exit()
        finally:
            on_thread_exit()

    thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
