"""A real `marlin worker` killed with SIGKILL in the middle of a check, and a second worker that
finishes it: one result row, run to the end once.

The workers are separate processes, so they share a SQLite database file (WAL) with this test
rather than pytest-django's in-memory test database; the test reads the rows with sqlite3.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.migrated_sqlite import copy_migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


class Workers:
    def __init__(self, tmp_path: Path, data_dir: Path) -> None:
        self.db = tmp_path / "marlin.sqlite3"
        self.data_dir = data_dir
        self.logs = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "marlin.settings",
            "MARLIN_DATABASE_URL": f"sqlite:///{self.db}",
            "MARLIN_DATA_DIR": str(data_dir),
            "MARLIN_TASKS_BACKEND": "database",
            # Short leases so that the dead worker's claim runs out within the test.
            "MARLIN_JOB_LEASE_SECONDS": "2",
        }
        self.started: list[subprocess.Popen[bytes]] = []

    def call(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def start(
        self, name: str, *, module: str = "marlin", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`python -m marlin worker` (or another module that runs Marlin's command line)."""
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                module,
                "worker",
                "--interval",
                "0.2",
                "--recover-every",
                "0.5",
            ],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def rows(self, candidate_id: int) -> list[tuple[str, int]]:
        with sqlite3.connect(self.db, timeout=15) as connection:
            return connection.execute(
                "SELECT status, attempts FROM agents_checkresult WHERE candidate_id = ?",
                (candidate_id,),
            ).fetchall()

    def wait_for(
        self, candidate_id: int, statuses: set[str], timeout: float
    ) -> list[tuple[str, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.rows(candidate_id)
            if rows and all(status in statuses for status, _ in rows):
                return rows
            time.sleep(0.1)
        raise AssertionError(f"check rows still {self.rows(candidate_id)} after {timeout} s")

    def workspaces(self) -> list[Path]:
        return sorted((self.data_dir / "workspaces").glob("ws-*"))


@pytest.fixture
def workers(
    tmp_path: Path, _data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    pool = Workers(tmp_path, _data_dir)
    copy_migrated_sqlite(tmp_path_factory, pool.db)
    yield pool
    for process in pool.started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_check_interrupted_by_a_killed_worker_finishes_once_on_the_next_worker(
    workers: Workers,
) -> None:
    made = json.loads(
        workers.call(
            "-m",
            "tests.checks.scenario",
            "setup",
            "--command",
            "sleep 4 && python -m pytest -q",
        )
    )
    candidate = made["candidate"]
    assert workers.rows(candidate) == [("queued", 0)]

    first = workers.start("first")
    workers.wait_for(candidate, {"running"}, timeout=60)
    deadline = time.monotonic() + 10
    while not workers.workspaces() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers.workspaces(), "the check never got a workspace"
    time.sleep(1)  # well inside the `sleep 4` of the check
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert workers.rows(candidate) == [("running", 1)]  # killed mid-check

    workers.start("second")
    rows = workers.wait_for(candidate, {"passed", "failed", "error", "timed_out"}, timeout=90)
    assert rows == [("passed", 2)], workers.log("second")
    log = workers.log("second")
    assert "Recovery: 1 stale workspace(s) swept" in log, log
    # A sweep queued the lost check again: the second worker's, or (on a loaded machine, where
    # the first worker took longer to start than the 2 s lease) the first worker's own.
    assert "checks of 1 candidate(s) queued again" in workers.log("first") + log, log
    # The dead worker's workspace was swept and the finished check removed its own.
    assert workers.workspaces() == []


# The busy timeout of Marlin's SQLite connections (settings: PRAGMA busy_timeout=15000); the
# lock below is held longer, so every write the worker tries while it is held fails.
SQLITE_BUSY_TIMEOUT_SECONDS = 15


def test_a_worker_survives_a_database_locked_longer_than_the_busy_timeout(
    workers: Workers,
) -> None:
    worker = workers.start("worker")
    # Past its first recovery sweep and polling the queue. Waiting for the log line rather than
    # a fixed 2 s: on a loaded machine Django alone can take longer than that to start, and a
    # worker that is not yet running never meets the lock.
    deadline = time.monotonic() + 120
    while "Starting worker" not in workers.log("worker") and time.monotonic() < deadline:
        assert worker.poll() is None, workers.log("worker")
        time.sleep(0.1)
    assert "Starting worker" in workers.log("worker"), workers.log("worker")
    assert worker.poll() is None, workers.log("worker")

    blocker = sqlite3.connect(workers.db, timeout=15, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(SQLITE_BUSY_TIMEOUT_SECONDS + 4)
        blocker.execute("COMMIT")
    finally:
        blocker.close()
    assert worker.poll() is None, "the worker exited:\n" + workers.log("worker")[-3000:]
    assert "database is locked" in workers.log("worker")

    # Alive is not enough: it still takes work.
    made = json.loads(workers.call("-m", "tests.checks.scenario", "setup", "--command", "true"))
    rows = workers.wait_for(made["candidate"], {"passed", "failed", "error"}, timeout=60)
    assert rows == [("passed", 1)], workers.log("worker")
    assert worker.poll() is None
