"""`marlin backup DEST`: the database, the exports, the audit checkpoints and (asked for) the
mirrors, into a new directory with a signed manifest. Never a key: the manifest names the keys
the data needs by id, so the operator knows which to keep safe elsewhere."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import tempfile
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from django.utils import timezone

from marlin.agents.models import Agent
from marlin.audit.checkpoints import Checkpoint, checkpoint_file, read_checkpoints
from marlin.audit.keys import current_key, keyring
from marlin.audit.models import AuditEvent
from marlin.backups import database
from marlin.backups.manifest import (
    FORMAT,
    FORMAT_VERSION,
    BackupError,
    list_files,
    sign,
    write_manifest,
)
from marlin.paths import data_dir

# Folders of the data directory a backup holds. Workspaces, built environments and caches are
# not: they are rebuilt from the database and the mirrors.
DATA_FOLDERS = ("exports",)
# Re-fetchable, so only with --with-mirrors: the bare mirrors and the demo's local source.
MIRROR_FOLDERS = ("mirrors", "demo-src")
CHECKPOINTS_FILE = "audit/checkpoints.jsonl"
NOT_INCLUDED = [
    "the audit keys (MARLIN_AUDIT_KEY, MARLIN_AUDIT_OLD_KEYS, or DATA_DIR/audit_key)",
    "Django's secret key (MARLIN_SECRET_KEY, or DATA_DIR/secret_key): sessions and API "
    "heartbeat tickets signed with it end at restore unless the same key is set",
    "agents' API keys: the database holds only the names of their variables or files",
]


def marlin_version() -> str:
    try:
        return package_version("marlin")
    except PackageNotFoundError:
        return "unknown"


def _operator() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _check_destination(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} already exists and is not an empty folder; name a new one.")
    inside = data_dir().resolve()
    if dest.resolve() == inside or inside in dest.resolve().parents:
        raise BackupError(
            f"{dest} is inside the data directory {inside}; keep backups outside what they "
            "protect (another disk or machine is better still)."
        )


def _no_links(folder: str, names: list[str]) -> list[str]:
    # Only regular files and folders: a link could point anywhere on the machine.
    return [name for name in names if os.path.islink(os.path.join(folder, name))]


def _copy_checkpoints(work: Path) -> Path | None:
    source = checkpoint_file()
    if not source.is_file():
        return None
    target = work / CHECKPOINTS_FILE
    target.parent.mkdir(parents=True)
    shutil.copy2(source, target)  # with its mode (0600), which restore keeps
    return target


def _key_ids(checkpoints: Path | None) -> dict[str, Any]:
    used = AuditEvent.objects.exclude(key_id="").values_list("key_id", flat=True).distinct()
    signed_checkpoints = set()
    if checkpoints is not None:
        signed_checkpoints = {
            entry.key_id
            for _, entry in read_checkpoints(checkpoints)
            if isinstance(entry, Checkpoint)
        }
    agents = []
    for agent in Agent.objects.order_by("name", "version_label"):
        for setting in ("api_key_env", "api_key_file"):
            if agent.settings.get(setting):
                agents.append(
                    {
                        "agent": f"{agent.name} v{agent.version_label}",
                        setting: agent.settings[setting],
                    }
                )
    return {
        "audit_signing_key_id": current_key().id,
        "audit_configured_key_ids": sorted(keyring()),
        "audit_key_ids_used_by_events": sorted(set(used)),
        "audit_key_ids_used_by_checkpoints": sorted(signed_checkpoints),
        "agent_api_keys": agents,
        "not_included": NOT_INCLUDED,
    }


def make_backup(dest: Path, *, with_mirrors: bool) -> dict[str, Any]:
    """Write the backup into ``dest`` (new or empty); return its manifest. A backup that fails
    half-way leaves nothing at ``dest``: it is built beside it and renamed when complete."""
    dest = dest.absolute()
    _check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        # Checkpoints first: each one copied was written before the database snapshot, so none
        # names an event the dump lacks (which `audit verify` would report as deleted).
        checkpoints = _copy_checkpoints(work)
        snapshot = database.dump(work)
        # Files after the snapshot: an export the dump says is done has its files here.
        folders = DATA_FOLDERS + (MIRROR_FOLDERS if with_mirrors else ())
        for folder in folders:
            source = data_dir() / folder
            if source.is_dir():
                shutil.copytree(source, work / "data" / folder, ignore=_no_links)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "marlin_version": marlin_version(),
            "created_at": timezone.now().isoformat(),
            "created_by": _operator(),
            "source": {"data_dir": str(data_dir()), "database": database.describe_target()},
            "database": {"vendor": snapshot.vendor, "file": snapshot.file, "tool": snapshot.tool},
            "schema": snapshot.migrations,
            "counts": snapshot.counts,
            "contents": {
                "folders": [folder for folder in folders if (work / "data" / folder).is_dir()],
                "mirrors": with_mirrors,
                "audit_checkpoints": CHECKPOINTS_FILE if checkpoints else None,
            },
            "keys": _key_ids(checkpoints),
            "files": list_files(work),
        }
        manifest = sign(manifest, current_key())
        write_manifest(work, manifest)
        if dest.exists():
            dest.rmdir()  # checked empty above
        work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest
