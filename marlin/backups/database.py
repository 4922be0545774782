"""The database's part of a backup: a consistent dump, its table counts and applied migrations
read in the same snapshot, and the restore of that dump into an empty database.

SQLite: the online backup API from a connection holding one read transaction (writers go on in
WAL mode). PostgreSQL: a REPEATABLE READ transaction exports its snapshot, the counts are read in
it and `pg_dump --snapshot` dumps exactly that state in the custom format `pg_restore` reads.
Each vendor restores only its own dumps (docs/decisions/0015-backups-native-dumps.md).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql

from marlin.backups.manifest import BackupError

SQLITE_FILE = "database/marlin.sqlite3"
# Tables whose rows stay out of backups: a session row's key is a live login cookie. Everyone
# logs in again after a restore.
WITHOUT_ROWS = ("django_session",)
POSTGRES_FILE = "database/marlin.pgdump"


@dataclass
class Snapshot:
    """What the dump holds: row counts per table and applied migrations per app."""

    vendor: str
    file: str
    tool: str
    counts: dict[str, int] = field(default_factory=dict)
    migrations: dict[str, list[str]] = field(default_factory=dict)


def vendor() -> str:
    found = connections["default"].vendor
    if found not in ("sqlite", "postgresql"):
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {found}.")
    return found


def describe_target() -> str:
    params = settings.DATABASES["default"]
    if vendor() == "sqlite":
        return f"SQLite database {params['NAME']}"
    return f"PostgreSQL database {params['NAME']} on {params.get('HOST') or 'localhost'}"


def dump(backup_root: Path) -> Snapshot:
    (backup_root / "database").mkdir(parents=True, exist_ok=True)
    if vendor() == "sqlite":
        return _dump_sqlite(backup_root / SQLITE_FILE)
    return _dump_postgres(backup_root / POSTGRES_FILE)


def tables() -> list[str]:
    """The tables of the configured database now (none when it does not exist yet, for SQLite)."""
    if vendor() == "sqlite":
        path = Path(settings.DATABASES["default"]["NAME"])
        if not path.exists():
            return []
        with _sqlite(path) as connection:
            return _sqlite_tables(connection)
    with _postgres() as connection:
        return _postgres_tables(connection)


def counts() -> dict[str, int]:
    """Rows per table in the configured database, read in one transaction."""
    if vendor() == "sqlite":
        with _sqlite(Path(settings.DATABASES["default"]["NAME"])) as connection:
            connection.execute("BEGIN")
            try:
                return _sqlite_read(connection)[0]
            finally:
                connection.rollback()
    with _postgres() as connection:
        connection.read_only = True
        return _postgres_read(connection)[0]


def restore(backup_root: Path, snapshot_vendor: str) -> None:
    """Load the dump into the configured database, which the caller checked is empty."""
    if snapshot_vendor != vendor():
        raise BackupError(
            f"The backup holds a {snapshot_vendor} database and this Marlin is configured for "
            f"{vendor()}; restore it into {snapshot_vendor} (cross-database restore is not "
            "supported)."
        )
    if snapshot_vendor == "sqlite":
        _restore_sqlite(backup_root / SQLITE_FILE)
    else:
        _restore_postgres(backup_root / POSTGRES_FILE)


# SQLite


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    # Autocommit mode: the transactions below are the ones we open, no implicit BEGIN.
    connection = sqlite3.connect(path, isolation_level=None, timeout=15)
    try:
        connection.execute("PRAGMA busy_timeout=15000")
        yield connection
    finally:
        connection.close()


def _sqlite_tables(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    )
    return [name for (name,) in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_read(connection: sqlite3.Connection) -> tuple[dict[str, int], dict[str, list[str]]]:
    _require_schema(_sqlite_tables(connection))
    found = {
        # Table names from sqlite_master, quoted: nothing a user typed.
        table: connection.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]  # noqa: S608
        for table in _sqlite_tables(connection)
    }
    return found, _migrations(connection.execute("SELECT app, name FROM django_migrations"))


def _dump_sqlite(target: Path) -> Snapshot:
    source_path = Path(settings.DATABASES["default"]["NAME"])
    if not source_path.is_file():
        raise BackupError(f"There is no database at {source_path} to back up.")
    with _sqlite(source_path) as source:
        # One read transaction: the counts and the copy see the same state of the database.
        source.execute("BEGIN")
        try:
            found, migrations = _sqlite_read(source)
            with _sqlite(target) as copy:
                source.backup(copy)
                # One self-contained file: no -wal beside it.
                copy.execute("PRAGMA journal_mode=DELETE")
                for table in set(WITHOUT_ROWS) & set(found):
                    copy.execute(f"DELETE FROM {_quote(table)}")  # noqa: S608
                    found[table] = 0
                copy.execute("VACUUM")  # the deleted rows' pages too
        finally:
            source.rollback()
    version = sqlite3.sqlite_version
    return Snapshot(
        "sqlite", SQLITE_FILE, f"sqlite3 online backup API ({version})", found, migrations
    )


def _restore_sqlite(dump_file: Path) -> None:
    target = Path(settings.DATABASES["default"]["NAME"])
    target.parent.mkdir(parents=True, exist_ok=True)
    # An empty database file's journal would be replayed onto the restored one: remove them.
    for stale in (Path(f"{target}-wal"), Path(f"{target}-shm"), target):
        stale.unlink(missing_ok=True)
    draft = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(dump_file, draft)
    with _sqlite(draft) as connection:
        status = connection.execute("PRAGMA integrity_check").fetchone()[0]
    if status != "ok":
        draft.unlink()
        raise BackupError(f"The backup's database fails SQLite's integrity check: {status}.")
    os.replace(draft, target)


# PostgreSQL


def _pg_params() -> dict[str, Any]:
    params = settings.DATABASES["default"]
    return {
        "dbname": params["NAME"],
        "user": params.get("USER") or None,
        "password": params.get("PASSWORD") or None,
        "host": params.get("HOST") or None,
        "port": params.get("PORT") or None,
    }


def _pg_env() -> dict[str, str]:
    """libpq's variables for pg_dump and pg_restore: the password never on a command line."""
    names = {"dbname": "PGDATABASE", "user": "PGUSER", "password": "PGPASSWORD"}
    names |= {"host": "PGHOST", "port": "PGPORT"}
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    env.update({names[key]: str(value) for key, value in _pg_params().items() if value})
    return env


def _postgres() -> psycopg.Connection[Any]:
    params = {key: value for key, value in _pg_params().items() if value}
    try:
        return psycopg.connect(**params, connect_timeout=15)
    except psycopg.OperationalError as exc:
        raise BackupError(
            f"Cannot connect to the {describe_target()}: {str(exc).strip()}. Create it first "
            "(createdb) and check MARLIN_DATABASE_URL."
        ) from None


def _postgres_tables(connection: psycopg.Connection[Any]) -> list[str]:
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
    )
    return [name for (name,) in rows]


def _postgres_read(
    connection: psycopg.Connection[Any],
) -> tuple[dict[str, int], dict[str, list[str]]]:
    found = {}
    _require_schema(_postgres_tables(connection))
    for table in _postgres_tables(connection):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        row = connection.execute(query).fetchone()
        found[table] = int(row[0]) if row else 0
    return found, _migrations(connection.execute("SELECT app, name FROM django_migrations"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed; install the PostgreSQL client of the server's major "
            "version or newer (Debian: apt-get install postgresql-client)."
        )
    return path


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, env=_pg_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _dump_postgres(target: Path) -> Snapshot:
    pg_dump = _tool("pg_dump")
    version = _run([pg_dump, "--version"], "pg_dump --version").strip()
    with _postgres() as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        row = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        found, migrations = _postgres_read(connection)
        # pg_dump joins the snapshot while this transaction keeps it alive.
        command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges"]
        for table in set(WITHOUT_ROWS) & set(found):
            command.append(f"--exclude-table-data={table}")
            found[table] = 0
        _run([*command, f"--snapshot={row[0]}", f"--file={target}"], "pg_dump")
    return Snapshot("postgresql", POSTGRES_FILE, version, found, migrations)


def _restore_postgres(dump_file: Path) -> None:
    pg_restore = _tool("pg_restore")
    command = [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error"]
    dbname = str(settings.DATABASES["default"]["NAME"])
    _run([*command, "--single-transaction", f"--dbname={dbname}", str(dump_file)], "pg_restore")


def _require_schema(tables: list[str]) -> None:
    if "django_migrations" not in tables:
        raise BackupError(
            f"The {describe_target()} has no Marlin tables: there is nothing to back up (is "
            "MARLIN_DATABASE_URL or MARLIN_DATA_DIR the instance you meant?)."
        )


def _migrations(rows: Any) -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in rows:
        applied.setdefault(app, []).append(name)
    return {app: sorted(names) for app, names in sorted(applied.items())}
