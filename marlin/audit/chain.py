"""Linking a transaction's audit events into the chain, as the last thing before it commits.

`record()` does not touch the chain: it builds the event and leaves it pending on the database
connection. When the transaction commits, the connection (marlin.audit.backends) calls `seal()`,
which takes the chain head, gives each pending event its sequence number, the previous hash and
its HMAC, inserts them and moves the head; then the commit follows. The head's row lock is
therefore held for three short statements and the commit, not from the action's first audited
change to its end, so the chain stays one sequence in commit order while audited writes of the
whole installation no longer queue behind each other's work (docs/decisions/0016).

Pending events follow their transaction: a savepoint rolled back drops the events recorded under
it, a rolled back transaction drops them all, the way Django treats `on_commit` callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from marlin.audit.backends import Pending, in_own_transaction
from marlin.audit.keys import AuditKey
from marlin.audit.models import GENESIS_HASH, AuditEvent


@dataclass(frozen=True)
class PendingEvent:
    event: AuditEvent
    key: AuditKey


def add_pending(connection: BaseDatabaseWrapper, event: AuditEvent, key: AuditKey) -> None:
    """Leave the event to be sealed right before the connection's transaction commits."""
    pending = getattr(connection, "audit_pending", None)
    if not isinstance(pending, Pending):
        raise RuntimeError(
            f"the database connection {connection.alias!r} cannot seal audit events: its ENGINE "
            f"must be one of marlin.audit.backends (marlin.settings sets it), not "
            f"{connection.settings_dict['ENGINE']!r}"
        )
    pending.add(connection, PendingEvent(event, key), seal)
    if not in_own_transaction(connection):
        pending.seal(connection, committing=False)


def seal(
    connection: BaseDatabaseWrapper, pending: Sequence[PendingEvent], *, committing: bool
) -> None:
    """Chain and insert a transaction's pending events, in the order they were recorded. Runs
    inside the transaction, right before it commits (`committing`), or before the outermost
    savepoint of a test is released."""
    sequence, prev_hash = _take_head(connection, len(pending))
    events: list[AuditEvent] = []
    now = timezone.now()  # written now, under the head's lock: times follow the sequence
    for item in pending:
        event = item.event
        sequence += 1
        event.sequence, event.prev_hash, event.created_at = sequence, prev_hash, now
        event.hash = event.compute_hash({item.key.id: item.key})
        prev_hash = event.hash
        events.append(event)
    if committing and connection.vendor == "postgresql":
        _insert_move_head_and_commit(connection, events)
        return
    AuditEvent.objects.using(connection.alias).bulk_create(events)
    _execute(connection, "UPDATE audit_auditchainhead SET last_hash = %s WHERE id = 1", [prev_hash])


def _insert_move_head_and_commit(connection: BaseDatabaseWrapper, events: list[AuditEvent]) -> None:
    """PostgreSQL: the insert, the head's new hash and the COMMIT in one round trip, so the head
    is held for two round trips in all. Under load the thread that holds it waits for the GIL
    and a CPU after every round trip; the commit's WAL flush is part of the last one. Django's
    cursors bind parameters on the client, which allows several statements in one call; Django's
    own commit afterwards finds no transaction open and does nothing."""
    fields = [field for field in AuditEvent._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = [
        field.get_db_prep_save(getattr(event, field.attname), connection)
        for event in events
        for field in fields
    ]
    statements = (
        f"INSERT INTO audit_auditevent ({columns}) VALUES {', '.join([row] * len(events))} "  # noqa: S608 - columns from the model
        "RETURNING id; UPDATE audit_auditchainhead SET last_hash = %s WHERE id = 1; COMMIT"
    )
    with connection.cursor() as cursor:
        cursor.execute(statements, [*params, events[-1].hash])
        for event, (pk,) in zip(events, cursor.fetchall(), strict=True):
            event.pk = pk
            event._state.adding, event._state.db = False, connection.alias


def _take_head(connection: BaseDatabaseWrapper, count: int) -> tuple[int, str]:
    """Lock the head row and reserve `count` sequence numbers in one statement; return the
    sequence and hash the chain ended with."""
    reserve = (
        "UPDATE audit_auditchainhead SET last_sequence = last_sequence + %s WHERE id = 1 "
        "RETURNING last_sequence, last_hash"
    )
    row = _execute(connection, reserve, [count])
    if row is None:  # the first event of a new database
        _execute(
            connection,
            "INSERT INTO audit_auditchainhead (id, last_hash, last_sequence) VALUES (1, %s, 0) "
            "ON CONFLICT (id) DO NOTHING",
            [GENESIS_HASH],
        )
        row = _execute(connection, reserve, [count])
    if row is None:
        raise RuntimeError("the audit chain head could not be created")
    return int(row[0]) - count, str(row[1])


def _execute(connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any]) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None
