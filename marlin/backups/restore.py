"""`marlin restore SRC`: check the backup, then load it into an empty database and data
directory. Every refusal happens before the first write, so a refused restore changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.db import connections
from django.db.migrations.loader import MigrationLoader

from marlin.audit.checkpoints import checkpoint_file
from marlin.audit.keys import available_keys
from marlin.backups import database
from marlin.backups.backup import CHECKPOINTS_FILE, marlin_version
from marlin.backups.manifest import BackupError, check_files, read_manifest, signature_problem
from marlin.catalog.models import Repository
from marlin.exports.models import Export
from marlin.paths import data_dir

# What may already be in the target data directory: keys the operator put there (never in a
# backup), and an SQLite file without tables.
KEY_FILES = {"secret_key", "audit_key"}
WITHOUT_KEY_FLAG = "--without-audit-key"


def restore(src: Path, *, without_audit_key: bool = False) -> list[str]:
    """Restore the backup in ``src``; return notes for the operator. BackupError before any
    write when the backup is damaged, newer, for another database, or the target is not empty."""
    manifest = read_manifest(src)
    check_files(src, manifest)
    keys = available_keys()
    problem = signature_problem(manifest, keys)
    if problem:
        raise BackupError(f"Refusing the backup in {src}: {problem}. Nothing was restored.")
    backup_vendor = str(manifest["database"]["vendor"])
    if backup_vendor != database.vendor():
        raise BackupError(
            f"The backup holds a {backup_vendor} database and this Marlin is configured for "
            f"{database.vendor()} (the {database.describe_target()}). Restoring across "
            f"databases is not supported: set MARLIN_DATABASE_URL to an empty {backup_vendor} "
            "database."
        )
    notes = _schema_notes(manifest)
    _check_target_empty()
    notes += _key_notes(manifest, set(keys), without_audit_key)
    keep_checkpoints = _checkpoints_to_keep(src, manifest)

    database.restore(src, backup_vendor)
    connections.close_all()
    restored = database.counts()
    if restored != manifest["counts"]:
        differ = sorted(
            name
            for name in set(restored) | set(manifest["counts"])
            if restored.get(name) != manifest["counts"].get(name)
        )
        raise BackupError(
            f"The restored database does not match the backup's counts ({', '.join(differ[:5])}); "
            f"empty the {database.describe_target()} again before another try."
        )
    _copy_files(src, manifest, keep_checkpoints)
    notes += _move_paths(str(manifest["source"]["data_dir"]))
    total = sum(restored.values())
    notes.insert(
        0,
        f"Restored the {database.describe_target()}: {len(restored)} tables, {total} rows, the "
        f"same as the backup made {manifest['created_at']} by {manifest['created_by']}.",
    )
    if not manifest["contents"]["mirrors"]:
        notes.append(
            "Mirrors were not in the backup: fetch them again with `marlin repos mirror --all`."
        )
    notes.append("Built environments and workspaces are not in backups; they are rebuilt on use.")
    notes.append("Next: `marlin audit verify`.")
    return notes


def _schema_notes(manifest: dict[str, Any]) -> list[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set(loader.disk_migrations)
    applied = {(app, name) for app, names in manifest["schema"].items() for name in names}
    ours = {(app, name) for app, name in applied if app in loader.migrated_apps}
    newer = sorted(f"{app}.{name}" for app, name in ours - known)
    if newer:
        raise BackupError(
            f"The backup was made by a newer Marlin ({manifest['marlin_version']}; this is "
            f"{marlin_version()}): its database has migrations this version does not know "
            f"({', '.join(newer[:5])}). Restore it with that version or a newer one."
        )
    if known - applied:
        return [
            "The backup's schema is older than this Marlin's: run `marlin migrate` "
            "(`marlin serve` does it at start)."
        ]
    return []


def _check_target_empty() -> None:
    tables = database.tables()
    if tables:
        raise BackupError(
            f"The {database.describe_target()} is not empty ({len(tables)} tables, such as "
            f"{', '.join(tables[:3])}). Restore only into an empty database: create a new one, "
            "or move this one aside after checking it holds nothing you need. Nothing was changed."
        )
    root = data_dir()
    sqlite_name = Path(str(connections["default"].settings_dict["NAME"])).name
    allowed = KEY_FILES | {sqlite_name, f"{sqlite_name}-wal", f"{sqlite_name}-shm"}
    found = sorted(p.name for p in root.iterdir() if p.name not in allowed) if root.exists() else []
    if found:
        raise BackupError(
            f"The data directory {root} is not empty ({', '.join(found[:5])}). Restore into a "
            "new, empty data directory (MARLIN_DATA_DIR); only the key files secret_key and "
            "audit_key may be there. Nothing was changed."
        )


def _key_notes(manifest: dict[str, Any], have: set[str], without_key: bool) -> list[str]:
    ids = manifest["keys"]
    needed = set(ids["audit_key_ids_used_by_events"]) | set(
        ids["audit_key_ids_used_by_checkpoints"]
    )
    needed.add(str(manifest["signature"]["key_id"]))
    missing = sorted(needed - have)
    if not missing:
        return []
    where = (
        "Set MARLIN_AUDIT_KEY (or MARLIN_AUDIT_KEY_FILE) to the key with that id, older ones in "
        "MARLIN_AUDIT_OLD_KEYS, or copy the old DATA_DIR/audit_key file into the new data "
        "directory"
    )
    if not without_key:
        raise BackupError(
            f"The audit key that signed this backup's events is not configured here (key id "
            f"{', '.join(missing)}); backups never hold it. {where}, then run the restore again. "
            f"({WITHOUT_KEY_FLAG} restores anyway; `marlin audit verify` fails until the key is "
            "there.) Nothing was changed."
        )
    return [
        f"Restored without the audit key {', '.join(missing)}: the manifest's signature was not "
        f"checked and `marlin audit verify` fails until the key is there. {where}."
    ]


def _checkpoints_to_keep(src: Path, manifest: dict[str, Any]) -> bool:
    """True when a checkpoint file kept outside the data directory already holds the backup's
    checkpoints (and maybe later ones, which then show what the restore lost): keep it."""
    target = checkpoint_file()
    if not manifest["contents"]["audit_checkpoints"] or not target.exists():
        return False
    ours = (src / CHECKPOINTS_FILE).read_bytes()
    if target.read_bytes().startswith(ours):
        return True
    raise BackupError(
        f"The audit checkpoint file {target} exists and does not begin with the backup's "
        "checkpoints: it belongs to another instance. Point MARLIN_AUDIT_CHECKPOINT_FILE at a "
        "new file (or move this one aside). Nothing was changed."
    )


def _copy_files(src: Path, manifest: dict[str, Any], keep_checkpoints: bool) -> None:
    for entry in manifest["files"]:
        relative = Path(entry["path"])
        if relative.parts[0] == "data":
            target = data_dir().joinpath(*relative.parts[1:])
        elif entry["path"] == CHECKPOINTS_FILE and not keep_checkpoints:
            target = checkpoint_file()
        else:
            continue  # the database, restored above
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / relative, target)


def _move_paths(old_root: str) -> list[str]:
    """Paths the database keeps inside the data directory (mirrors, export folders) follow it
    to the new one. They are places, not records: nothing audited changes."""
    new_root = str(data_dir())
    if old_root == new_root:
        return []
    moved = 0
    for model, column in ((Repository, "mirror_path"), (Export, "directory")):
        rows = model.objects.filter(**{f"{column}__startswith": old_root + "/"})
        for pk, value in rows.values_list("pk", column):
            model.objects.filter(pk=pk).update(**{column: new_root + value[len(old_root) :]})
            moved += 1
    return (
        [f"{moved} mirror and export paths moved from {old_root} to {new_root}."] if moved else []
    )
