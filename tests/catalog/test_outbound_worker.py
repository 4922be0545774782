"""A real `marlin worker` mirroring from a server that never answers, stopped with SIGTERM: git
and its git-remote-https helpers die with the job, the repository says why, the worker exits.

The worker is a separate process, so it shares a SQLite database file with this test; the test
reads the row with sqlite3. The server listens on loopback and is allowed by name.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.catalog.servers import SilentServer, processes_naming_port
from tests.migrated_sqlite import copy_migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.stop()


def test_sigterm_stops_a_worker_stuck_on_a_silent_git_server_with_its_git_helpers(
    tmp_path: Path,
    _data_dir: Path,
    silent_server: SilentServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    db = tmp_path / "marlin.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": f"sqlite:///{db}",
        "MARLIN_DATA_DIR": str(_data_dir),
        "MARLIN_TASKS_BACKEND": "database",
        "MARLIN_ALLOWED_INTERNAL_GIT_HOSTS": "127.0.0.1",
        "MARLIN_NEW_PASSWORD": "correct-horse-battery-staple",
    }

    def marlin(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "marlin", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    copy_migrated_sqlite(tmp_path_factory, db)
    marlin("createuser", "erin", "--role", "admin", "--role", "author")
    marlin("repos", "add", silent_server.url())  # queues the mirror job

    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "marlin", "worker", "--interval", "0.2"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert silent_server.accepted.wait(timeout=60), log_path.read_text(errors="replace")
        assert processes_naming_port(silent_server.port), "git should be waiting on the server"
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    log = log_path.read_text(errors="replace")
    assert returncode == 0, log
    assert silent_server.hung_up.wait(timeout=5), "git-remote-https still holds the connection"
    deadline = time.monotonic() + 5
    while processes_naming_port(silent_server.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming_port(silent_server.port) == [], log
    with sqlite3.connect(db, timeout=15) as connection:
        status, error = connection.execute(
            "SELECT mirror_status, last_error FROM catalog_repository"
        ).fetchone()
    assert status == "failed"
    assert error == "git clone was stopped: this process received SIGTERM"
