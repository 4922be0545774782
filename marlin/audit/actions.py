"""Writing and verifying the audit chain. Every `do_*` action elsewhere calls `record()`."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

from marlin.audit.chain import add_pending
from marlin.audit.keys import AuditKey, current_key, keyring
from marlin.audit.models import (
    GENESIS_HASH,
    Algorithm,
    AuditChainHead,
    AuditEvent,
    UnknownKey,
)


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any]:
    # Round-trip through JSON so what we hash is exactly what the database gives back later.
    return json.loads(json.dumps(values or {}, cls=DjangoJSONEncoder, sort_keys=True))


def record(
    actor: AbstractBaseUser | None,
    verb: str,
    obj: models.Model | None = None,
    *,
    object_type: str | None = None,
    object_id: object = None,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    reason: str = "",
    project_id: int | None = None,
) -> AuditEvent:
    """Append one event. Must run inside the caller's transaction so the change and its record
    commit together. The event is linked into the chain and saved right before that transaction
    commits: its sequence, hashes and id are set then, and a rollback discards it."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must be called inside transaction.atomic()")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        if project_id is None:
            project_id = getattr(obj, "project_id", None)
    if not object_type:
        raise ValueError("record() needs an object or an object_type")
    key = current_key()
    event = AuditEvent(
        actor_id=actor.pk if actor is not None else None,
        actor_name=(actor.get_username() if actor is not None else "") or "system",
        verb=verb,
        object_type=object_type,
        object_id=str(object_id if object_id is not None else ""),
        project_id=project_id,
        old_values=_jsonable(old),
        new_values=_jsonable(new),
        reason=reason,
        algorithm=Algorithm.HMAC_SHA256,
        key_id=key.id,
    )
    # Chained when the transaction commits (marlin.audit.chain), so the chain head is locked
    # only for the insert and the commit rather than for the rest of the action.
    add_pending(connection, event, key)
    return event


@dataclass(frozen=True)
class BrokenLink:
    sequence: int
    event_id: int
    problem: str

    def __str__(self) -> str:
        if not self.event_id:  # not about one row: a missing tail, a checkpoint
            return self.problem
        return f"event #{self.sequence} (id {self.event_id}): {self.problem}"


def iter_chain_problems(*, after: tuple[int, str] | None = None) -> Iterator[BrokenLink]:
    """Walk the chain in order and yield every broken link, first one first. With `after`
    (a sequence number and the hash a checkpoint saw there), start at that event instead of the
    beginning; its own hash is compared with the checkpoint's."""
    ring = keyring()
    events = AuditEvent.objects.order_by("sequence")
    newest: AuditEvent | None = None
    expected_prev, expected_sequence = GENESIS_HASH, 1
    if after is not None and after[0] > 0:
        newest = AuditEvent.objects.filter(sequence=after[0]).first()
        if newest is None or newest.hash != after[1]:
            yield BrokenLink(after[0], newest.pk if newest else 0, "differs from its checkpoint")
            return
        expected_prev, expected_sequence = newest.hash, newest.sequence + 1
        events = events.filter(sequence__gt=newest.sequence)
    keyed_seen = newest is not None and newest.algorithm != Algorithm.SHA256
    for event in events.iterator(chunk_size=2000):
        if event.sequence != expected_sequence:
            yield BrokenLink(
                event.sequence,
                event.pk,
                f"sequence jumps from {expected_sequence - 1} to {event.sequence} (events missing)",
            )
        if event.prev_hash != expected_prev:
            yield BrokenLink(
                event.sequence, event.pk, "previous-hash does not match the event before it"
            )
        problem = _content_problem(event, ring, keyed_seen=keyed_seen)
        if problem:
            yield BrokenLink(event.sequence, event.pk, problem)
        keyed_seen = keyed_seen or event.algorithm != Algorithm.SHA256
        expected_prev = event.hash
        expected_sequence = event.sequence + 1
        newest = event
    if newest is not None and newest.algorithm == Algorithm.SHA256:
        # Since the upgrade sealed the unkeyed events (migration 0002), the newest event is
        # always keyed: an unkeyed tip means the log was rewritten without the key or cut back.
        yield BrokenLink(
            newest.sequence,
            newest.pk,
            "the newest event is not keyed; every event since the keyed chain began is signed, "
            "so the log was rewritten or cut back to its unkeyed part",
        )
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != expected_sequence - 1:
        yield BrokenLink(
            head.last_sequence,
            0,
            f"the chain head is at #{head.last_sequence} but the log ends at "
            f"#{expected_sequence - 1}: the newest events are missing or the head was moved",
        )


def _content_problem(
    event: AuditEvent, ring: Mapping[str, AuditKey], *, keyed_seen: bool
) -> str | None:
    if event.algorithm == Algorithm.SHA256 and keyed_seen:
        return (
            "is not keyed, but an earlier event is: no unkeyed event can follow the keyed chain "
            "(rewritten without the key)"
        )
    try:
        expected = event.compute_hash(ring)
    except UnknownKey as exc:
        return (
            f"is signed with audit key {exc.key_id!r}, which is not configured; if that key "
            "was rotated out, list it in MARLIN_AUDIT_OLD_KEYS"
        )
    except ValueError as exc:
        return str(exc)
    if not hmac.compare_digest(expected, event.hash):
        return "content does not match its hash (changed after it was written)"
    return None


def verify_chain() -> BrokenLink | None:
    """The first broken link, or None when the whole chain verifies."""
    return next(iter_chain_problems(), None)


def snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    """The named fields of obj, for an event's old or new values."""
    return {name: getattr(obj, name) for name in fields}
