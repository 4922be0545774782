"""`marlin backup` and `marlin restore`, run as an operator runs them: the demo loaded into one
data directory (and database), backed up, restored into an empty one; then `marlin audit verify`
passes, every table has the same rows and the pages show the same content. Refusals (a
non-empty target, a changed backup, a missing audit key, a newer schema) change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backups"), pytest.mark.timeout(1200)]

# Renders two pages through Django's test client in the process `marlin shell` starts: the
# leaderboard as erin (admin) and, as alice, the comparison she was asked to revise.
PROBE = """
import json, os
from django.test import Client
from marlin.accounts.models import User
from marlin.review.models import Judgment, JudgmentStatus
from marlin.tasks.models import Project

def page(username, url):
    client = Client()
    client.force_login(User.objects.get(username=username))
    response = client.get(url)
    return {"status": response.status_code, "html": response.content.decode(),
            "session": client.session.session_key}

project = Project.objects.get(name="Ledgerlite pilot")
judgment = Judgment.objects.filter(
    annotator__username="alice", status=JudgmentStatus.REVISION_REQUESTED
).order_by("pk").first()
pages = {
    "leaderboard": page("erin", f"/leaderboard/{project.pk}/"),
    "comparison": page("alice", f"/compare/{judgment.comparison.public_id}/"),
}
open(os.environ["PROBE_OUT"], "w").write(json.dumps(pages))
"""
# Differ on every request: the CSRF token and the signed, timestamped heartbeat ticket.
_PER_REQUEST = re.compile(r'(csrfmiddlewaretoken" value|data-ticket)="[^"]*"')


def environ(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `marlin` command on this data directory, nothing inherited from the
    test run's own MARLIN_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MARLIN_")}
    return {**env, "MARLIN_DATA_DIR": str(data_dir), **extra}


def marlin(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "marlin", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    else:
        assert result.returncode != 0, (args, result.stdout)
    return result


def pages(env: dict[str, str], out: Path) -> dict[str, dict]:
    marlin({**env, "PROBE_OUT": str(out)}, "shell", "--no-imports", "-c", PROBE)
    found = json.loads(out.read_text())
    for name, page in found.items():
        assert page["status"] == 200, name
        page["html"] = _PER_REQUEST.sub(r'\1="-"', page["html"])
    return found


def sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608


def backup_bytes(backup: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(backup.rglob("*")) if p.is_file())


def tree_digest(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def sqlite_source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The demo on SQLite with a checkpoint, two logged-in sessions and an export file, and its
    backup (made once for the module: loading the demo takes a while)."""
    root = tmp_path_factory.mktemp("backup-sqlite")
    data = root / "src"
    env = environ(data)
    marlin(env, "demo", "--load-only", "--model-server", "127.0.0.1:9")
    marlin(env, "audit", "checkpoint")
    marlin(env, "export", "preferences", "--project", "Ledgerlite pilot", "--format", "jsonl")
    assert list((data / "exports").rglob("*.jsonl"))
    before = pages(env, root / "src-pages.json")
    backup = root / "backup"
    made = marlin(env, "backup", str(backup))
    assert "Backup written to" in made.stdout
    return {"root": root, "data": data, "env": env, "pages": before, "backup": backup}


def empty_target(source: dict, name: str, *, with_key: bool = True) -> tuple[Path, dict]:
    data = source["root"] / name
    data.mkdir()
    if with_key:
        # The operator provides the audit key: here the generated one, copied from the source.
        shutil.copy(source["data"] / "audit_key", data / "audit_key")
    return data, environ(data)


def test_a_sqlite_backup_restores_the_same_data_and_pages(sqlite_source: dict) -> None:
    data, env = empty_target(sqlite_source, "restored")
    restored = marlin(env, "restore", str(sqlite_source["backup"]))
    assert "Restored the SQLite database" in restored.stdout
    assert "marlin repos mirror --all" in restored.stdout  # no mirrors without --with-mirrors

    verified = marlin(env, "audit", "verify")
    assert "Audit chain OK" in verified.stdout
    assert "1 checkpoints in" in verified.stdout and "match the log" in verified.stdout
    assert (data / "audit-checkpoints.jsonl").stat().st_mode & 0o777 == 0o600
    source_counts = sqlite_counts(sqlite_source["data"] / "marlin.sqlite3")
    assert source_counts["review_comparison"] > 60 and source_counts["audit_auditevent"] > 500
    # Every table has the same rows, but sessions: everyone logs in again after a restore.
    assert source_counts.pop("django_session") == 2
    after = sqlite_counts(data / "marlin.sqlite3")
    assert after.pop("django_session") == 0
    assert after == source_counts
    assert tree_digest(data / "exports") == tree_digest(sqlite_source["data"] / "exports")

    again = pages(env, sqlite_source["root"] / "restored-pages.json")
    for name, page in sqlite_source["pages"].items():
        assert again[name]["html"] == page["html"], name
    assert "atlas-coder" in again["leaderboard"]["html"]


def test_the_backup_holds_no_key_and_no_session(sqlite_source: dict) -> None:
    content = backup_bytes(sqlite_source["backup"])
    data = sqlite_source["data"]
    secrets = {
        "audit key": (data / "audit_key").read_text().strip(),
        "secret key": (data / "secret_key").read_text().strip(),
        **{f"{name} session": page["session"] for name, page in sqlite_source["pages"].items()},
    }
    with sqlite3.connect(data / "marlin.sqlite3") as db:
        sessions = {key for (key,) in db.execute("SELECT session_key FROM django_session")}
    for what, value in secrets.items():
        assert len(value) >= 32, what
        if what.endswith("session"):
            assert value in sessions, what  # in the database that was backed up
        assert value.encode() not in content, f"the backup holds the {what}"
    manifest = json.loads((sqlite_source["backup"] / "manifest.json").read_text())
    key_id = manifest["keys"]["audit_key_ids_used_by_events"]
    assert key_id == [manifest["signature"]["key_id"]] and len(key_id[0]) == 8


def test_restoring_over_data_refuses_and_changes_nothing(sqlite_source: dict) -> None:
    source = sqlite_source["data"]
    before = (sqlite_counts(source / "marlin.sqlite3"), tree_digest(source / "exports"))
    refused = marlin(sqlite_source["env"], "restore", str(sqlite_source["backup"]), ok=False)
    assert "is not empty" in refused.stderr and "Nothing was changed" in refused.stderr
    assert (sqlite_counts(source / "marlin.sqlite3"), tree_digest(source / "exports")) == before

    # A data directory with anything but the key files in it is not empty either.
    data, env = empty_target(sqlite_source, "not-empty")
    (data / "notes.txt").write_text("mine")
    refused = marlin(env, "restore", str(sqlite_source["backup"]), ok=False)
    assert f"The data directory {data} is not empty (notes.txt)" in refused.stderr
    assert sorted(p.name for p in data.iterdir()) == ["audit_key", "notes.txt", "secret_key"]


def test_a_changed_backup_is_refused(sqlite_source: dict) -> None:
    backup = sqlite_source["root"] / "changed"
    shutil.copytree(sqlite_source["backup"], backup)
    dump = backup / "database" / "marlin.sqlite3"
    content = bytearray(dump.read_bytes())
    content[len(content) // 2] ^= 0x01  # one bit, same size
    dump.write_bytes(bytes(content))
    data, env = empty_target(sqlite_source, "from-changed")
    refused = marlin(env, "restore", str(backup), ok=False)
    assert "damaged or was changed" in refused.stderr
    assert "database/marlin.sqlite3 does not match its SHA-256" in refused.stderr
    assert not (data / "marlin.sqlite3").exists()
    shutil.copy(sqlite_source["backup"] / "database" / "marlin.sqlite3", dump)

    # The checksum changed with the file: the manifest's signature (the audit key) shows it.
    checkpoints = backup / "audit" / "checkpoints.jsonl"
    checkpoints.write_text(checkpoints.read_text().replace('"sequence":', '"sequence": '))
    manifest_path = backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["files"]:
        if entry["path"] == "audit/checkpoints.jsonl":
            entry["size"] = checkpoints.stat().st_size
            entry["sha256"] = hashlib.sha256(checkpoints.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    refused = marlin(env, "restore", str(backup), ok=False)
    assert "the manifest was edited after the backup was made" in refused.stderr
    assert not (data / "marlin.sqlite3").exists()


def test_without_the_audit_key_the_restore_says_which_key_it_needs(sqlite_source: dict) -> None:
    data, env = empty_target(sqlite_source, "no-key", with_key=False)
    refused = marlin(env, "restore", str(sqlite_source["backup"]), ok=False)
    key_id = json.loads((sqlite_source["backup"] / "manifest.json").read_text())["signature"]
    assert f"(key id {key_id['key_id']})" in refused.stderr
    assert "MARLIN_AUDIT_KEY" in refused.stderr and "Nothing was changed" in refused.stderr
    assert [p.name for p in data.iterdir()] == ["secret_key"]


def test_a_backup_from_a_newer_schema_is_refused(sqlite_source: dict) -> None:
    # A Marlin of the future: its database has a migration this one does not know.
    future, future_env = empty_target(sqlite_source, "future")
    with sqlite3.connect(sqlite_source["data"] / "marlin.sqlite3") as source:
        with sqlite3.connect(future / "marlin.sqlite3") as db:
            source.backup(db)
    with sqlite3.connect(future / "marlin.sqlite3") as db:
        db.execute(
            "INSERT INTO django_migrations (app, name, applied) "
            "VALUES ('review', '9999_from_the_future', '2030-01-01')"
        )
    marlin(future_env, "backup", str(sqlite_source["root"] / "future-backup"))
    data, env = empty_target(sqlite_source, "from-future")
    refused = marlin(env, "restore", str(sqlite_source["root"] / "future-backup"), ok=False)
    assert "made by a newer Marlin" in refused.stderr
    assert "review.9999_from_the_future" in refused.stderr
    assert not (data / "marlin.sqlite3").exists()


# Creates users (each an audited action) until the file STOP_FILE exists.
WRITER = """
import itertools, os, pathlib
from marlin.accounts.actions import do_create_user
stop = pathlib.Path(os.environ["STOP_FILE"])
for n in itertools.count():
    if stop.exists():
        break
    do_create_user(None, f"busy{n}", None, roles=["annotator"], reason="writes during a backup")
"""


def _users(path: Path) -> int:
    with sqlite3.connect(path, timeout=30) as db:
        return db.execute("SELECT count(*) FROM accounts_user").fetchone()[0]


def write_during_backup(env: dict[str, str], users: Callable[[], int], backup: Path) -> int:
    """Back up while a writer creates users, from after its third to before its last; return
    how many users there were before it started."""
    stop = backup.parent / f"{backup.name}.stop"
    writer = subprocess.Popen(
        [sys.executable, "-m", "marlin", "shell", "--no-imports", "-c", WRITER],
        cwd=ROOT,
        env={**env, "STOP_FILE": str(stop)},
    )
    try:
        start = users()
        for enough in (start + 3, None):
            if enough is None:
                marlin(env, "backup", str(backup))
                enough = users() + 3
            while users() < enough:
                assert writer.poll() is None, "the writer stopped"
                time.sleep(0.2)
    finally:
        stop.touch()
        writer.wait(timeout=120)
    assert writer.returncode == 0
    return start


def test_a_backup_taken_while_writes_go_on_restores_one_consistent_state(
    sqlite_source: dict,
) -> None:
    busy, busy_env = empty_target(sqlite_source, "busy")
    with sqlite3.connect(sqlite_source["data"] / "marlin.sqlite3") as source:
        with sqlite3.connect(busy / "marlin.sqlite3") as db:
            source.backup(db)
    backup = sqlite_source["root"] / "busy-backup"
    start = write_during_backup(busy_env, lambda: _users(busy / "marlin.sqlite3"), backup)

    data, env = empty_target(sqlite_source, "from-busy")
    # The restore compares every table's rows with the counts read in the dump's transaction.
    marlin(env, "restore", str(backup))
    assert "Audit chain OK" in marlin(env, "audit", "verify").stdout
    assert start + 3 <= _users(data / "marlin.sqlite3") < _users(busy / "marlin.sqlite3")


def _postgres_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as db:
        tables = [
            name
            for (name,) in db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        counts = {}
        for table in tables:
            row = db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = row.fetchone()[0]  # type: ignore[index]
        return counts


KEY = {"MARLIN_AUDIT_KEY": "backup-test-audit-key-" + "k" * 24}


@pytest.fixture
def postgres_databases(db) -> Iterator[Callable[..., list[str]]]:
    """Makes empty databases of our own on the suite's PostgreSQL server; drops them after."""
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    params = connection.settings_dict
    server = f"postgres://{params['USER']}@{params['HOST']}:{params['PORT'] or 5432}"
    made: list[str] = []

    def create(*names: str) -> list[str]:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                made.append(name)
        return [f"{server}/{name}" for name in names]

    yield create
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        for name in made:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.postgres
def test_a_postgresql_backup_restores_the_same_data_and_pages(
    tmp_path: Path, postgres_databases: Callable[..., list[str]]
) -> None:
    src_url, dst_url = postgres_databases("marlin_backup_src", "marlin_backup_dst")
    src = environ(tmp_path / "src", MARLIN_DATABASE_URL=src_url, **KEY)
    marlin(src, "demo", "--load-only", "--model-server", "127.0.0.1:9")
    marlin(src, "audit", "checkpoint")
    before = pages(src, tmp_path / "src-pages.json")
    marlin(src, "backup", str(tmp_path / "backup"), "--with-mirrors")
    content = backup_bytes(tmp_path / "backup")
    assert KEY["MARLIN_AUDIT_KEY"].encode() not in content
    assert before["comparison"]["session"].encode() not in content

    dst = environ(tmp_path / "dst", MARLIN_DATABASE_URL=dst_url, **KEY)
    restored = marlin(dst, "restore", str(tmp_path / "backup"))
    assert "Restored the PostgreSQL database marlin_backup_dst" in restored.stdout
    assert "Audit chain OK" in marlin(dst, "audit", "verify").stdout
    source_counts, after = _postgres_counts(src_url), _postgres_counts(dst_url)
    assert source_counts.pop("django_session") == 2 and after.pop("django_session") == 0
    assert after == source_counts and source_counts["review_decision"] > 50
    assert (tmp_path / "dst" / "mirrors" / "demo-ledgerlite.git" / "HEAD").is_file()
    again = pages(dst, tmp_path / "dst-pages.json")
    for name, page in before.items():
        assert again[name]["html"] == page["html"], name

    # The restored database is not empty any more: a second restore refuses, changes nothing.
    (tmp_path / "dst2").mkdir()
    refused = marlin(
        {**dst, "MARLIN_DATA_DIR": str(tmp_path / "dst2")},
        "restore",
        str(tmp_path / "backup"),
        ok=False,
    )
    assert "PostgreSQL database marlin_backup_dst" in refused.stderr
    assert "is not empty" in refused.stderr
    assert _postgres_counts(dst_url) == {**after, "django_session": 2}

    # Nor does a PostgreSQL backup go into SQLite: the restore says so and writes nothing.
    sqlite_env = environ(tmp_path / "sqlite-dst", **KEY)
    refused = marlin(sqlite_env, "restore", str(tmp_path / "backup"), ok=False)
    assert "Restoring across databases is not supported" in refused.stderr
    assert not (tmp_path / "sqlite-dst" / "marlin.sqlite3").exists()


def _postgres_users(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT count(*) FROM accounts_user").fetchone()
        return int(row[0]) if row else 0


@pytest.mark.postgres
def test_a_postgresql_backup_taken_while_writes_go_on_restores_one_consistent_state(
    tmp_path: Path, postgres_databases: Callable[..., list[str]]
) -> None:
    src_url, dst_url = postgres_databases("marlin_backup_busy", "marlin_backup_busy_dst")
    src = environ(tmp_path / "src", MARLIN_DATABASE_URL=src_url, **KEY)
    marlin(src, "migrate")
    backup = tmp_path / "backup"
    start = write_during_backup(src, lambda: _postgres_users(src_url), backup)

    dst = environ(tmp_path / "dst", MARLIN_DATABASE_URL=dst_url, **KEY)
    marlin(dst, "restore", str(backup))  # compares every table with the snapshot's counts
    assert "Audit chain OK" in marlin(dst, "audit", "verify").stdout
    assert start + 3 <= _postgres_users(dst_url) < _postgres_users(src_url)
