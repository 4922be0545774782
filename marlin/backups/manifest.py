"""The backup's manifest: what is in the backup, each file's SHA-256, and a signature.

The manifest is signed with the audit key (an HMAC over its canonical JSON), so an edit to a file
*and* its checksum shows too, unless whoever edited it holds the audit key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from marlin.audit.keys import AuditKey

FORMAT = "marlin-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# The top folders a backup may hold; restore maps each to its place (marlin.backups.restore).
TOP_FOLDERS = ("database", "data", "audit")
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says what was wrong and what to do."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path) -> list[dict[str, Any]]:
    """Every regular file under ``root`` (but the manifest) with its size and SHA-256."""
    entries = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if relative == MANIFEST_NAME:
                continue
            entries.append(
                {"path": relative, "size": path.stat().st_size, "sha256": sha256_file(path)}
            )
    return entries


def _canonical(manifest: dict[str, Any]) -> bytes:
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict[str, Any], key: AuditKey) -> dict[str, Any]:
    return {**manifest, "signature": {"key_id": key.id, "hmac": key.sign(_canonical(manifest))}}


def signature_problem(manifest: dict[str, Any], keys: dict[str, AuditKey]) -> str | None:
    """None when the signature holds; why not otherwise. A missing key is not a problem here:
    restore reports missing keys on their own, with what to do."""
    signature = manifest.get("signature")
    if not isinstance(signature, dict) or not {"key_id", "hmac"} <= set(signature):
        return "the manifest is not signed"
    key = keys.get(str(signature["key_id"]))
    if key is None:
        return None
    if not hmac.compare_digest(key.sign(_canonical(manifest)), str(signature["hmac"])):
        return (
            f"the manifest's signature does not match (audit key {key.id}): the manifest was "
            "edited after the backup was made"
        )
    return None


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (root / MANIFEST_NAME).write_text(text, encoding="utf-8")


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest of the backup in ``root``, checked for shape; BackupError otherwise."""
    path = root / MANIFEST_NAME
    if not root.is_dir():
        raise BackupError(f"{root} is not a directory; name the folder `marlin backup` wrote.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{root} has no {MANIFEST_NAME}: it is not a Marlin backup.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"Cannot read {path}: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a Marlin backup manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(
            f"The backup has format version {version!r}; this Marlin reads version "
            f"{FORMAT_VERSION} and older. Restore it with the Marlin version that wrote it "
            f"({manifest.get('marlin_version', 'unknown')}) or a newer one."
        )
    files = manifest.get("files")
    if not isinstance(files, list) or not all(_is_entry(entry) for entry in files):
        raise BackupError(f"{path} has no valid file list.")
    for entry in files:
        _check_path(entry["path"])
    return manifest


def _is_entry(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("sha256"), str)
    )


def _check_path(text: str) -> None:
    # A crafted manifest must not make restore write outside the data directory.
    path = PurePosixPath(text)
    if (
        path.is_absolute()
        or ".." in path.parts
        or not path.parts
        or path.parts[0] not in TOP_FOLDERS
    ):
        raise BackupError(f"The manifest lists a file outside the backup's folders: {text!r}.")


def check_files(root: Path, manifest: dict[str, Any]) -> None:
    """Every listed file is there with its size and SHA-256; BackupError naming them if not."""
    problems = []
    for entry in manifest["files"]:
        path = root / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']} is missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{entry['path']} has {path.stat().st_size} bytes, not {entry['size']}")
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{entry['path']} does not match its SHA-256")
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        )
        raise BackupError(
            f"The backup in {root} is damaged or was changed after it was made ({shown}). "
            "Nothing was restored; use another copy of the backup."
        )
