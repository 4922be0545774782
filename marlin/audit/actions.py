"""Writing and verifying the audit chain. Every `do_*` action elsewhere calls `record()`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.utils import timezone

from marlin.audit.models import GENESIS_HASH, AuditChainHead, AuditEvent


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
    commit together."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit.record() must be called inside transaction.atomic()")
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        if project_id is None:
            project_id = getattr(obj, "project_id", None)
    if not object_type:
        raise ValueError("record() needs an object or an object_type")
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    event = AuditEvent(
        sequence=head.last_sequence + 1,
        created_at=timezone.now(),
        actor_id=actor.pk if actor is not None else None,
        actor_name=(actor.get_username() if actor is not None else "") or "system",
        verb=verb,
        object_type=object_type,
        object_id=str(object_id if object_id is not None else ""),
        project_id=project_id,
        old_values=_jsonable(old),
        new_values=_jsonable(new),
        reason=reason,
        prev_hash=head.last_hash,
    )
    event.hash = event.compute_hash()
    event.save()
    head.last_hash = event.hash
    head.last_sequence = event.sequence
    head.save(update_fields=["last_hash", "last_sequence"])
    return event


@dataclass(frozen=True)
class BrokenLink:
    sequence: int
    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"event #{self.sequence} (id {self.event_id}): {self.problem}"


def iter_chain_problems() -> Iterator[BrokenLink]:
    """Walk the chain in order and yield every broken link, first one first."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
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
        if event.compute_hash() != event.hash:
            yield BrokenLink(
                event.sequence,
                event.pk,
                "content does not match its hash (changed after it was written)",
            )
        expected_prev = event.hash
        expected_sequence = event.sequence + 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != expected_sequence - 1:
        yield BrokenLink(
            head.last_sequence,
            0,
            "the newest events are missing (chain head points past the last event)",
        )


def verify_chain() -> BrokenLink | None:
    """The first broken link, or None when the whole chain verifies."""
    return next(iter_chain_problems(), None)


def snapshot(obj: Any, fields: list[str]) -> dict[str, Any]:
    """The named fields of obj, for an event's old or new values."""
    return {name: getattr(obj, name) for name in fields}
