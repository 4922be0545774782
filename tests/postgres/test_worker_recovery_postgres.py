"""The killed-worker test on PostgreSQL: rows made by this test (committed, transaction=True)
in pytest-django's test database, two real `marlin worker` processes pointed at that database.
Runs in the PostgreSQL pass (`make test`); on SQLite the file-database variant in
tests/checks/test_worker_recovery.py covers the same ground."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from marlin.checks.jobs import enqueue_checks
from marlin.checks.models import CheckResult
from tests.checks.scenario import demo_patches, demo_task, link_shared_tools, make_candidate
from tests.checks.test_worker_recovery import Workers

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class PostgresWorkers(Workers):
    def rows(self, candidate_id: int) -> list[tuple[str, int]]:
        return list(
            CheckResult.objects.filter(candidate_id=candidate_id).values_list("status", "attempts")
        )


def _database_url() -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_killed_worker_s_check_finishes_once_on_postgres(
    settings, tmp_path: Path, _data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip(
            "runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...); SQLite has its own variant"
        )
    settings.JOB_LEASE_SECONDS = 2
    link_shared_tools(_data_dir)
    task = demo_task(
        checks=[
            {"kind": "command", "name": "slow tests", "command": "sleep 4 && python -m pytest -q"}
        ]
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)  # autocommit: the job row is in the queue now

    workers = PostgresWorkers(tmp_path, _data_dir)
    workers.env["MARLIN_DATABASE_URL"] = _database_url()
    try:
        first = workers.start("first")
        workers.wait_for(candidate.pk, {"running"}, timeout=60)
        time.sleep(1.5)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert workers.rows(candidate.pk) == [("running", 1)]
        workers.start("second")
        rows = workers.wait_for(
            candidate.pk, {"passed", "failed", "error", "timed_out"}, timeout=90
        )
        assert rows == [("passed", 2)], workers.log("second")
        assert workers.workspaces() == []
    finally:
        for process in workers.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)
        connection.close()  # the workers' rows are read through a fresh connection next time


def _backends(application_name: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return [pid for (pid,) in cursor.fetchall()]


def _terminate(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


def test_a_worker_survives_its_postgres_connections_being_terminated(
    settings, tmp_path: Path, _data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    if connection.vendor != "postgresql":
        pytest.skip("runs on PostgreSQL; the SQLite variant holds an exclusive lock instead")
    link_shared_tools(_data_dir)
    workers = PostgresWorkers(tmp_path, _data_dir)
    # Our own name on the worker's connections, so only they are terminated.
    name = f"marlin-test-worker-{uuid.uuid4().hex[:12]}"
    workers.env["MARLIN_DATABASE_URL"] = f"{_database_url()}?application_name={name}"
    try:
        worker = workers.start("worker")
        deadline = time.monotonic() + 30
        while not _backends(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _backends(name), "the worker never connected:\n" + workers.log("worker")
        # Terminate every connection it opens for a few seconds: the polling loop's, the
        # recovery sweep's, and the ones it opens again in between.
        terminated = 0
        until = time.monotonic() + 4
        while time.monotonic() < until:
            terminated += _terminate(name)
            time.sleep(0.2)
        assert terminated >= 1
        time.sleep(1)
        assert worker.poll() is None, "the worker exited:\n" + workers.log("worker")[-3000:]
        assert "terminating connection" in workers.log("worker")

        # Alive is not enough: it still takes work.
        task = demo_task(checks=[{"kind": "command", "name": "quick", "command": "true"}])
        candidate = make_candidate(task, demo_patches()["good"])
        enqueue_checks(candidate)
        rows = workers.wait_for(candidate.pk, {"passed", "failed", "error"}, timeout=60)
        assert rows == [("passed", 1)], workers.log("worker")
        assert worker.poll() is None
    finally:
        for process in workers.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=15)
        connection.close()
