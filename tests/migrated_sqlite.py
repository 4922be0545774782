"""A migrated SQLite database file for the tests that run real `marlin` processes on one.

`python -m marlin migrate` on an empty file costs about 13 s of CPU (1 minute of wall time on a
loaded machine), and a dozen such tests each paid it. The schema does not depend on the test:
migrating an empty database leaves no rows of the test's own (no audit events, no users) and no
files in the data directory, so one real migration per test run, copied, gives each test the file
its own `migrate` would have made. The xdist workers of one run share it under a lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker's base is <run's base>/popen-gwN; the run's base is shared by the
    # workers of this run only. Without xdist the base itself is this run's alone.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def copy_migrated_sqlite(tmp_path_factory: pytest.TempPathFactory, dest: Path) -> Path:
    """Write a fully migrated SQLite database to `dest` (a fresh file) and return it."""
    shared = _shared_dir(tmp_path_factory)
    template = shared / "migrated-template.sqlite3"
    with open(shared / "migrated-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not template.exists():
            _migrate(shared, template)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, dest)
    return dest


def _migrate(shared: Path, template: Path) -> None:
    building = shared / "migrated-template-building.sqlite3"
    data_dir = shared / "migrated-template-data"
    data_dir.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "marlin", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "marlin.settings",
            "MARLIN_DATABASE_URL": f"sqlite:///{building}",
            "MARLIN_DATA_DIR": str(data_dir),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Fold the write-ahead log into the file, so that copying the one file copies everything.
    with sqlite3.connect(building) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert connection.execute("SELECT count(*) FROM audit_auditevent").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM accounts_user").fetchone() == (0,)
    connection.close()
    building.rename(template)
