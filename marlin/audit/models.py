"""Append-only, hash-chained audit events.

Each event stores an HMAC-SHA256 of its own content, keyed with a key that is not in the
database (marlin.audit.keys), and the hash of the event before it. A row changed or removed
behind the application's back breaks the chain at a place `marlin audit verify` can name, and
someone who can write the database but does not hold the key cannot sign a rewritten chain.
Events written before the keyed chain carry plain SHA-256 (algorithm "sha256"); they stay
verifiable and are sealed by the first keyed event after them. docs/security.md says what the
chain proves and what it does not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from marlin.audit.keys import AuditKey, keyring

GENESIS_HASH = "0" * 64


class Algorithm(models.TextChoices):
    SHA256 = "sha256", "SHA-256, unkeyed (written before the keyed chain)"
    HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256 with the audit key named by key_id"


class UnknownKey(Exception):
    """The event names a key id that is neither the current audit key nor an old one."""

    def __init__(self, key_id: str) -> None:
        super().__init__(key_id)
        self.key_id = key_id


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")

    def for_object(self, object_type: str, object_id: object) -> AuditEventQuerySet:
        return self.filter(object_type=object_type, object_id=str(object_id))


class AuditChainHead(models.Model):
    """A single row holding the chain's tip. A transaction locks it right before it commits, to
    seal its events (marlin.audit.chain), so the chain is one sequence in commit order."""

    last_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    last_sequence = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_sequence}"


class AuditEvent(models.Model):
    sequence = models.BigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
    )
    actor_name = models.CharField(max_length=150, help_text="The actor's username at the time.")
    verb = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, db_index=True)
    object_id = models.CharField(max_length=64, db_index=True)
    project_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    old_values = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    new_values = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, editable=False)
    key_id = models.CharField(
        max_length=16, blank=True, editable=False, help_text="Which audit key signed it."
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["sequence"]
        indexes = [models.Index(fields=["object_type", "object_id", "sequence"])]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.actor_name} {self.verb} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")

    def canonical_payload(self) -> bytes:
        return canonical_payload(self)

    def compute_hash(self, ring: Mapping[str, AuditKey] | None = None) -> str:
        """What `hash` must be; raise UnknownKey when the key named by key_id is not in `ring`
        (by default the configured keys)."""
        if self.algorithm == Algorithm.SHA256:
            return hashlib.sha256(self.canonical_payload()).hexdigest()
        if self.algorithm != Algorithm.HMAC_SHA256:
            raise ValueError(f"unknown audit algorithm {self.algorithm!r}")
        key = (keyring() if ring is None else ring).get(self.key_id)
        if key is None:
            raise UnknownKey(self.key_id)
        return key.sign(self.canonical_payload())


def canonical_payload(event: Any) -> bytes:
    """The bytes an event's hash covers: every field except the hash itself, in a fixed form.
    A plain function so that migrations can hash their historical rows the same way."""
    payload = {
        "sequence": event.sequence,
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "verb": event.verb,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "project_id": event.project_id,
        "old_values": event.old_values,
        "new_values": event.new_values,
        "reason": event.reason,
        "prev_hash": event.prev_hash,
    }
    if event.algorithm != Algorithm.SHA256:
        # Unkeyed events hash exactly what they hashed when they were written.
        payload |= {"algorithm": event.algorithm, "key_id": event.key_id}
    return json.dumps(
        payload, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":")
    ).encode()
