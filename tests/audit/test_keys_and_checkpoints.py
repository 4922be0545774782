"""The audit key (from the environment, a *_FILE, or generated into the data directory), its
rotation, and checkpoints: the file, forged lines, the refusal to sign a broken chain, syslog."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection

from marlin.audit.checkpoints import Checkpoint
from marlin.audit.models import AuditEvent
from marlin.tasks.actions import do_create_project, do_update_project

ROOT = Path(__file__).resolve().parents[2]
OLD_KEY = "old-audit-key-" + "o" * 40
NEW_KEY = "new-audit-key-" + "n" * 40


def _key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def _events(erin, name: str = "Shop fixes"):
    project = do_create_project(erin, name)
    do_update_project(erin, project, {"hourly_rate_cents": 5000}, reason="a rate")
    return project


def _verify(*args: str) -> None:
    call_command("audit", "verify", *args)


def test_events_name_their_key_and_old_keys_still_verify_after_a_rotation(erin, settings, capsys):
    settings.AUDIT_KEY = OLD_KEY
    _events(erin, "Before")
    settings.AUDIT_KEY, settings.AUDIT_OLD_KEYS = NEW_KEY, [OLD_KEY]
    _events(erin, "After")
    key_ids = list(AuditEvent.objects.order_by("sequence").values_list("key_id", flat=True))
    assert key_ids == [_key_id(OLD_KEY)] * 3 + [_key_id(NEW_KEY)] * 3

    _verify()
    out = capsys.readouterr().out
    assert "6 events verified" in out
    assert f"{_key_id(OLD_KEY)} (3)" in out and f"{_key_id(NEW_KEY)} (3)" in out

    settings.AUDIT_OLD_KEYS = []
    with pytest.raises(CommandError, match="event #1"):
        _verify()
    err = capsys.readouterr().err
    assert f"audit key '{_key_id(OLD_KEY)}', which is not configured" in err
    assert "MARLIN_AUDIT_OLD_KEYS" in err


def test_without_a_configured_key_one_is_generated_once_into_the_data_directory(
    erin, settings, _data_dir: Path
):
    settings.AUDIT_KEY = None
    _events(erin)
    key_file = _data_dir / "audit_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert set(AuditEvent.objects.values_list("key_id", flat=True)) == {_key_id(key)}
    assert key not in json.dumps(list(AuditEvent.objects.values()), default=str)
    _verify()


def test_a_short_key_is_refused_with_how_to_make_one(erin, settings):
    settings.AUDIT_KEY = "hunter2"
    with pytest.raises(ImproperlyConfigured, match="at least 32") as refused:
        do_create_project(erin, "Shop fixes")
    assert "token_urlsafe" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert not AuditEvent.objects.exists()


def test_checkpoint_prints_and_appends_a_signed_head(erin, tmp_path: Path, capsys):
    path = tmp_path / "anchors" / "checkpoints.jsonl"
    _events(erin)
    call_command("audit", "checkpoint", "--file", str(path))
    first = capsys.readouterr().out.strip()
    do_create_project(erin, "Another")
    call_command("audit", "checkpoint", "--file", str(path))
    second = capsys.readouterr().out.strip()

    assert path.read_text().splitlines() == [first, second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    a, b = Checkpoint.parse(first), Checkpoint.parse(second)
    assert (a.sequence, b.sequence) == (3, 5)
    assert b.hash == AuditEvent.objects.get(sequence=5).hash
    assert len(b.signature) == 64 and b.key_id == AuditEvent.objects.get(sequence=5).key_id
    _verify("--checkpoints", str(path))
    assert "2 checkpoints" in capsys.readouterr().out


def test_a_forged_or_garbled_checkpoint_line_is_reported(erin, tmp_path: Path, capsys):
    path = tmp_path / "checkpoints.jsonl"
    _events(erin)
    call_command("audit", "checkpoint", "--file", str(path))
    real = json.loads(path.read_text())
    # Someone who can write the file but lacks the key moves the anchor back to event #1.
    forged = {**real, "sequence": 1, "hash": AuditEvent.objects.get(sequence=1).hash}
    with path.open("a") as handle:
        handle.write(json.dumps(forged) + "\n" + "rm -rf /\n")
    capsys.readouterr()
    with pytest.raises(CommandError, match="line 2"):
        _verify("--all", "--checkpoints", str(path))
    err = capsys.readouterr().err
    assert "not signed by a configured audit key" in err
    assert "line 3 of" in err and "is not a checkpoint: not JSON" in err


def test_checkpoint_refuses_to_sign_a_broken_chain(erin, tmp_path: Path):
    path = tmp_path / "checkpoints.jsonl"
    _events(erin)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET reason = 'edited' WHERE sequence = 2")
    with pytest.raises(CommandError, match="not signing a broken chain: event #2"):
        call_command("audit", "checkpoint", "--file", str(path))
    assert not path.exists()


def test_verify_compares_with_the_configured_checkpoint_file_by_default(
    erin, settings, tmp_path: Path
):
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "anchors.jsonl")
    _events(erin)
    call_command("audit", "checkpoint")
    assert Path(settings.AUDIT_CHECKPOINT_FILE).read_text().count("\n") == 1
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE sequence = 3")
        cursor.execute("UPDATE audit_auditchainhead SET last_sequence = 2")
    with pytest.raises(CommandError, match="events #3 to #3 are missing"):
        _verify()


def test_checkpoints_go_to_a_syslog_unix_socket(erin, settings, tmp_path: Path, capsys):
    address = str(tmp_path / "log.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(5)
    settings.AUDIT_SYSLOG = address
    _events(erin)
    try:
        call_command("audit", "checkpoint", "--file", str(tmp_path / "c.jsonl"))
        message = listener.recv(65536).decode()
    finally:
        listener.close()
    line = capsys.readouterr().out.strip()
    assert message.startswith("<14>marlin-audit-checkpoint: ")  # facility user, level info
    assert message.rstrip("\x00").endswith(line)


def test_checkpoints_go_to_syslog_over_udp_on_loopback(erin, settings, tmp_path: Path, capsys):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    settings.AUDIT_SYSLOG = f"127.0.0.1:{listener.getsockname()[1]}"
    _events(erin)
    try:
        call_command("audit", "checkpoint", "--file", str(tmp_path / "c.jsonl"))
        message = listener.recv(65536).decode()
    finally:
        listener.close()
    assert capsys.readouterr().out.strip() in message


def test_an_unreachable_syslog_socket_fails_the_checkpoint_loudly(erin, settings, tmp_path: Path):
    settings.AUDIT_SYSLOG = str(tmp_path / "nobody-listens.sock")
    _events(erin)
    with pytest.raises(CommandError, match="cannot send the checkpoint to syslog at"):
        call_command("audit", "checkpoint", "--file", str(tmp_path / "c.jsonl"))
    # The file, written first, keeps the checkpoint.
    assert (tmp_path / "c.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_a_database_attacker_cutting_the_log_is_caught_by_the_real_command(tmp_path: Path):
    """Real `marlin` processes on a SQLite file, the key read from MARLIN_AUDIT_KEY_FILE; the
    attacker edits the database file with sqlite3 and never sees the key or the checkpoints."""
    db = tmp_path / "marlin.sqlite3"
    key_file = tmp_path / "secrets" / "audit_key"
    key_file.parent.mkdir()
    key_file.write_text(NEW_KEY + "\n")
    checkpoints = tmp_path / "anchors" / "audit.jsonl"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": f"sqlite:///{db}",
        "MARLIN_DATA_DIR": str(tmp_path / "data"),
        "MARLIN_AUDIT_KEY_FILE": str(key_file),
        "MARLIN_AUDIT_CHECKPOINT_FILE": str(checkpoints),
        "MARLIN_NEW_PASSWORD": "correct-horse-battery-staple",
    }
    env.pop("MARLIN_AUDIT_KEY", None)

    def marlin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "marlin", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert marlin("migrate", "--verbosity", "0").returncode == 0
    for name, role in [("erin", "admin"), ("alice", "annotator")]:
        assert marlin("createuser", name, "--role", role).returncode == 0
    assert marlin("audit", "checkpoint").returncode == 0
    with sqlite3.connect(db) as attacker:
        keys = {row[0] for row in attacker.execute("SELECT key_id FROM audit_auditevent")}
        assert keys == {_key_id(NEW_KEY)}
        # alice's account and role grant never happened: drop the newest events.
        attacker.execute("DELETE FROM audit_auditevent WHERE sequence > 2")
        attacker.execute(
            "UPDATE audit_auditchainhead SET last_sequence = 2, last_hash = "
            "(SELECT hash FROM audit_auditevent WHERE sequence = 2)"
        )
    verify = marlin("audit", "verify")
    assert verify.returncode == 1, verify.stdout
    assert "events #3 to #4 are missing" in verify.stderr
    assert NEW_KEY not in verify.stdout + verify.stderr


def test_a_short_configured_key_stops_the_commands_at_start(settings):
    settings.AUDIT_OLD_KEYS = ["too-short"]
    with pytest.raises(SystemCheckError, match="MARLIN_AUDIT_OLD_KEYS is 9 characters long"):
        call_command("check")


@pytest.mark.slow
def test_processes_starting_at_once_agree_on_one_generated_key(tmp_path: Path):
    data = tmp_path / "data"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "marlin.settings", "MARLIN_DATA_DIR": str(data)}
    env.pop("MARLIN_AUDIT_KEY", None)
    env.pop("MARLIN_AUDIT_KEY_FILE", None)
    script = "import django; django.setup(); from marlin.audit.keys import current_key; " + (
        "print(current_key().id)"
    )
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    ids = {process.communicate(timeout=120)[0].strip() for process in starts}
    assert ids == {_key_id((data / "audit_key").read_text().strip())}
    assert [p.name for p in data.iterdir() if p.name.startswith(".audit_key")] == []
