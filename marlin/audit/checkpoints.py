"""Signed checkpoints of the audit chain's head, kept outside the database.

A checkpoint is one JSON line: the newest event's sequence number and hash, the time, the id of
the audit key and an HMAC over those four. `marlin audit checkpoint` appends one to a file opened
with O_APPEND (and sends it to syslog when MARLIN_AUDIT_SYSLOG is set). Later,
`marlin audit verify --checkpoints FILE` compares the database with every checkpoint: a sequence
number past the newest event means events were deleted from the end; a different hash at that
sequence means the chain was rewritten, even by someone who holds the key and signed it again.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from marlin.audit.actions import BrokenLink, iter_chain_problems
from marlin.audit.keys import current_key, keyring
from marlin.audit.models import GENESIS_HASH, AuditEvent
from marlin.paths import data_dir

_FIELDS = ("sequence", "hash", "time", "key_id", "signature")
_LOOKUP_CHUNK = 1000


class CheckpointError(Exception):
    """The checkpoint could not be written; the message says why."""


@dataclass(frozen=True)
class Checkpoint:
    sequence: int
    hash: str
    time: str
    key_id: str
    signature: str = ""

    def payload(self) -> bytes:
        signed = {"sequence": self.sequence, "hash": self.hash, "time": self.time}
        signed["key_id"] = self.key_id
        return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Raise ValueError with the reason when the line is not a checkpoint."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        if not isinstance(data, dict) or set(data) != set(_FIELDS):
            raise ValueError(f"a checkpoint has exactly the fields {', '.join(_FIELDS)}")
        if not isinstance(data["sequence"], int) or data["sequence"] < 0:
            raise ValueError("its sequence is not a number")
        if not all(isinstance(data[name], str) for name in _FIELDS[1:]):
            raise ValueError("its hash, time, key_id and signature must be text")
        return cls(**data)


def checkpoint_file() -> Path:
    configured = settings.AUDIT_CHECKPOINT_FILE
    return Path(configured) if configured else data_dir() / "audit-checkpoints.jsonl"


def _newest() -> tuple[int, str]:
    newest = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
    return newest if newest is not None else (0, GENESIS_HASH)


def write_checkpoint(path: Path | None = None) -> Checkpoint:
    """Verify the chain (from the newest checkpoint already in the file that still holds), then
    sign its head and append it to the file and to syslog. Refuse to sign a broken chain."""
    path = path or checkpoint_file()
    # The head first: the walk below covers it and anything written while it runs.
    sequence, head_hash = _newest()
    start: tuple[int, str] | None = None
    if path.exists():
        problems = list(checkpoint_problems(path))
        if problems:
            raise CheckpointError(f"not signing: {problems[0]}")
        checkpoints = [c for _, c in read_checkpoints(path) if isinstance(c, Checkpoint)]
        if checkpoints:
            newest = max(checkpoints, key=lambda c: c.sequence)
            start = (newest.sequence, newest.hash)
    broken = next(iter_chain_problems(after=start), None)
    if broken is not None:
        raise CheckpointError(f"not signing a broken chain: {broken}")
    key = current_key()
    unsigned = Checkpoint(sequence, head_hash, timezone.now().isoformat(), key.id)
    checkpoint = Checkpoint(**{**asdict(unsigned), "signature": key.sign(unsigned.payload())})
    _append(path, checkpoint.line())
    if settings.AUDIT_SYSLOG:
        _send_to_syslog(settings.AUDIT_SYSLOG, checkpoint.line())
    return checkpoint


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: every write lands at the end, even with several writers; nothing is rewritten.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class _StrictSysLogHandler(SysLogHandler):
    """SysLogHandler that raises instead of printing a traceback: a lost checkpoint must show."""

    def handleError(self, record: logging.LogRecord) -> None:
        raise


def syslog_address(value: str) -> str | tuple[str, int]:
    """A socket path (/dev/log) or host:port (UDP) from MARLIN_AUDIT_SYSLOG."""
    if value.startswith("/"):
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise CheckpointError(
            f"MARLIN_AUDIT_SYSLOG={value!r} is neither a socket path (/dev/log) nor host:port"
        )
    return host.strip("[]"), int(port)


def _send_to_syslog(address: str, line: str) -> None:
    record = logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"})
    try:
        handler = _StrictSysLogHandler(address=syslog_address(address))
        try:
            handler.setFormatter(logging.Formatter("marlin-audit-checkpoint: %(message)s"))
            handler.emit(record)
        finally:
            handler.close()
    except OSError as exc:
        raise CheckpointError(
            f"cannot send the checkpoint to syslog at {address}: {exc.strerror or exc}"
        ) from None


def read_checkpoints(path: Path) -> list[tuple[int, Checkpoint | str]]:
    """Each non-empty line of the file with its number: a checkpoint, or why it is not one."""
    lines: list[tuple[int, Checkpoint | str]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                lines.append((number, Checkpoint.parse(text)))
            except ValueError as exc:
                lines.append((number, str(exc)))
    return lines


def _hashes_at(sequences: list[int]) -> dict[int, str]:
    found: dict[int, str] = {0: GENESIS_HASH}
    for start in range(0, len(sequences), _LOOKUP_CHUNK):
        chunk = sequences[start : start + _LOOKUP_CHUNK]
        found.update(AuditEvent.objects.filter(sequence__in=chunk).values_list("sequence", "hash"))
    return found


def checkpoint_problems(path: Path) -> Iterator[BrokenLink]:
    """Compare the database with every checkpoint in the file; yield what does not match."""
    ring = keyring()
    entries = read_checkpoints(path)
    checkpoints = [(n, c) for n, c in entries if isinstance(c, Checkpoint)]
    hashes = _hashes_at(sorted({c.sequence for _, c in checkpoints}))
    newest, _ = _newest()
    for number, entry in entries:
        where = f"line {number} of {path}"
        if isinstance(entry, str):
            yield BrokenLink(0, 0, f"{where} is not a checkpoint: {entry}")
            continue
        key = ring.get(entry.key_id)
        if key is None or not hmac.compare_digest(key.sign(entry.payload()), entry.signature):
            yield BrokenLink(
                entry.sequence,
                0,
                f"the checkpoint on {where} is not signed by a configured audit key "
                f"(key id {entry.key_id!r}); it was forged or its key is not listed",
            )
        elif entry.sequence > newest:
            yield BrokenLink(
                entry.sequence,
                0,
                f"events #{newest + 1} to #{entry.sequence} are missing: the checkpoint on "
                f"{where} ({entry.time}) saw the chain at #{entry.sequence}, the log now ends "
                f"at #{newest}",
            )
        elif hashes.get(entry.sequence) != entry.hash:
            yield BrokenLink(
                entry.sequence,
                0,
                f"event #{entry.sequence} is not the one the checkpoint on {where} "
                f"({entry.time}) signed: the chain was rewritten at or before it",
            )
