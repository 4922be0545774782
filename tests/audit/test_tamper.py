"""Finding 2: an attacker with write access to the database (and not to the audit key or the
checkpoint file) rewrites the audit log. `marlin audit verify` must notice.

The attacker here does what the finding describes: raw SQL, hashes recomputed with plain SHA-256
over the same canonical payload the code uses, the chain head rolled back with the rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from marlin.audit.models import AuditEvent
from marlin.audit.signals import log_verified
from marlin.tasks.actions import do_create_project, do_update_project


@pytest.fixture
def history(erin):
    """Five events: a rubric and a project created, the project changed three times."""
    project = do_create_project(erin, "Shop fixes")
    for rate in (5000, 6000, 7000):
        do_update_project(erin, project, {"hourly_rate_cents": rate}, reason=f"rate {rate}")
    events = list(AuditEvent.objects.order_by("sequence"))
    assert len(events) == 5
    return events


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _rehash_from(sequence: int, *, downgrade: bool = False) -> None:
    """Recompute prev_hash and hash of every event from `sequence` on with plain SHA-256, as
    the audit code of the previous release did, and point the chain head at the new tip."""
    before = AuditEvent.objects.filter(sequence=sequence - 1).first()
    prev = before.hash if before is not None else "0" * 64
    for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"):
        event.prev_hash = prev
        if downgrade:
            # Claim the event was written before the keyed chain existed.
            event.algorithm, event.key_id = "sha256", ""
            _sql(
                "UPDATE audit_auditevent SET algorithm = %s, key_id = %s WHERE id = %s",
                ["sha256", "", event.pk],
            )
        prev = hashlib.sha256(event.canonical_payload()).hexdigest()
        _sql(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
            [event.prev_hash, prev, event.pk],
        )
    _sql("UPDATE audit_auditchainhead SET last_hash = %s", [prev])


def _verify(*args: str) -> None:
    call_command("audit", "verify", *args)


def test_an_edited_event_with_the_rest_of_the_chain_rehashed_is_caught(history, capsys):
    target = history[3]
    _sql("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["nothing to see", target.pk])
    _rehash_from(target.sequence)
    with pytest.raises(CommandError, match=f"event #{target.sequence}"):
        _verify()
    assert "does not match its hash" in capsys.readouterr().err


def test_a_rewrite_that_claims_the_events_predate_the_key_is_caught(history, capsys):
    target = history[2]
    _sql("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["nothing to see", target.pk])
    _rehash_from(target.sequence, downgrade=True)
    with pytest.raises(CommandError, match=f"event #{target.sequence}"):
        _verify()
    assert "not keyed" in capsys.readouterr().err


def test_the_whole_log_rewritten_without_the_key_is_caught(history, capsys):
    _sql("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["rewritten", history[0].pk])
    _rehash_from(1, downgrade=True)
    with pytest.raises(CommandError):
        _verify()
    assert "not keyed" in capsys.readouterr().err


def test_deleting_the_newest_events_and_rolling_the_head_back_is_caught_by_a_checkpoint(
    history, tmp_path: Path, capsys
):
    checkpoints = tmp_path / "checkpoints.jsonl"
    call_command("audit", "checkpoint", "--file", str(checkpoints))
    capsys.readouterr()
    kept = history[2]
    _sql("DELETE FROM audit_auditevent WHERE sequence > %s", [kept.sequence])
    _sql(
        "UPDATE audit_auditchainhead SET last_sequence = %s, last_hash = %s",
        [kept.sequence, kept.hash],
    )
    _verify()  # without an anchor outside the database nothing is missing
    with pytest.raises(CommandError, match="missing"):
        _verify("--checkpoints", str(checkpoints))
    err = capsys.readouterr().err
    assert f"#{kept.sequence + 1}" in err and "#5" in err


def test_a_rehashed_rewrite_is_caught_by_a_checkpoint_even_with_the_key(
    history, tmp_path: Path, settings, capsys
):
    """Someone holding the key can re-sign a rewritten chain; the checkpoint written before
    still names the event whose hash changed."""
    checkpoints = tmp_path / "checkpoints.jsonl"
    call_command("audit", "checkpoint", "--file", str(checkpoints))
    capsys.readouterr()
    _sql("UPDATE audit_auditevent SET reason = %s WHERE id = %s", ["re-signed", history[1].pk])
    _resign_from(history[1].sequence)
    _verify("--checkpoints", "/dev/null")  # the keyed chain alone cannot tell
    with pytest.raises(CommandError, match="rewritten"):
        _verify("--checkpoints", str(checkpoints))
    assert "event #5" in capsys.readouterr().err


def _resign_from(sequence: int) -> None:
    """What an attacker who also holds the key does: sign the rewritten events again."""
    prev = AuditEvent.objects.get(sequence=sequence - 1).hash
    for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"):
        event.prev_hash = prev
        prev = event.compute_hash()
        _sql(
            "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
            [event.prev_hash, prev, event.pk],
        )
    _sql("UPDATE audit_auditchainhead SET last_hash = %s", [prev])


def test_verify_reports_what_the_apps_above_find_against_the_log(history, capsys):
    """Apps above audit (review: pay) compare their rows with the intact log through the
    `log_verified` signal; what they find fails `verify` like a broken link."""

    def ledger(sender, **kwargs):
        return ["project 1: the ledger says 900 cents, the audit log 300"]

    log_verified.connect(ledger, dispatch_uid="test-ledger")
    try:
        with pytest.raises(CommandError, match="the ledger says 900 cents"):
            _verify()
    finally:
        log_verified.disconnect(dispatch_uid="test-ledger")
    _verify()
    assert "events verified" in capsys.readouterr().out


def test_a_chain_head_that_does_not_match_the_newest_event_is_reported(history):
    _sql("UPDATE audit_auditchainhead SET last_sequence = %s", [99])
    with pytest.raises(CommandError, match="the chain head is at #99 but the log ends at #5"):
        _verify()
