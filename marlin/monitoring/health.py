"""Readiness: what must hold for this web process to be worth a load balancer's traffic.

Each check answers ok or not with a short reason meant for the operator's dashboard: never a
path, a host name, a URL or an error message (they may name users, hosts or secrets); those go
to the log. The database is probed on a connection of its own with a short connect timeout, so
an unreachable PostgreSQL fails the probe in seconds instead of hanging on the pool's wait.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from marlin.monitoring import workers

logger = logging.getLogger("marlin.monitoring")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _probe_database(statements: list[str]) -> None:
    """Run `statements` on the default database; raise if it cannot be reached or they fail."""
    if connection.vendor == "postgresql":
        params = connection.get_connection_params()
        params["connect_timeout"] = settings.READY_TIMEOUT_SECONDS
        with psycopg.connect(**params) as probe, probe.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
        return
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def check_database() -> Check:
    try:
        _probe_database(["SELECT 1"])
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the log says which
        logger.warning("readiness: database unreachable (%s: %s)", type(exc).__name__, exc)
        return Check("database", False, "unreachable")
    return Check("database", True, "reachable")


def check_queue() -> Check:
    """The job backend accepts work: the queue table is readable (database backend), or Redis
    answers a PING (RQ)."""
    backend = settings.TASKS_BACKEND
    try:
        if backend == "rq":
            _ping_redis()
        elif backend == "immediate":
            return Check("queue", True, "jobs run inside requests")
        else:
            table = connection.ops.quote_name(DBTaskResult._meta.db_table)
            _probe_database([f"SELECT 1 FROM {table} LIMIT 1"])  # noqa: S608 - our table name
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: job queue unreachable (%s: %s)", type(exc).__name__, exc)
        return Check("queue", False, "unreachable")
    return Check("queue", True, "reachable")


def _ping_redis() -> None:
    # Only the RQ backend needs Redis (the `redis` extra); it is imported where it is used.
    import redis

    url = settings.RQ_QUEUES["default"]["URL"]
    timeout = settings.READY_TIMEOUT_SECONDS
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()


def check_disk() -> Check:
    needed = settings.READY_MIN_FREE_MB
    try:
        free = shutil.disk_usage(settings.DATA_DIR).free // (1024 * 1024)
    except OSError as exc:
        logger.warning("readiness: cannot read the data directory's free space (%s)", exc)
        return Check("disk", False, "free space unknown")
    if free < needed:
        return Check("disk", False, f"{free} MB free, below the {needed} MB threshold")
    return Check("disk", True, f"{free} MB free")


def check_worker(*, database_ok: bool) -> Check:
    stale_after = settings.READY_WORKER_SECONDS
    if stale_after <= 0:
        return Check("worker", True, "not checked (MARLIN_READY_WORKER_SECONDS=0)")
    if not database_ok:
        return Check("worker", False, "unknown: the database is unreachable")
    latest = workers.latest_beat()
    if latest is None:
        return Check("worker", False, "no job worker is running")
    age = (timezone.now() - latest).total_seconds()
    if age > stale_after:
        return Check("worker", False, f"last heartbeat {age:.0f} s ago (limit {stale_after} s)")
    return Check("worker", True, f"last heartbeat {max(age, 0):.0f} s ago")


def readiness() -> list[Check]:
    database = check_database()
    return [
        database,
        check_queue(),
        check_disk(),
        check_worker(database_ok=database.ok),
    ]
