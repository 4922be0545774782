"""The keyed chain: each event names its algorithm and the key that signed it.

Events already in the log keep their plain SHA-256 (algorithm "sha256"), so they verify as they
always did. Then one keyed event, "audit.keyed", is appended after them: its HMAC covers the hash
of the newest unkeyed event, so from now on the unkeyed part cannot be rewritten without the key
either, and `marlin audit verify` can insist that the newest event is always keyed.
"""

from django.db import migrations, models
from django.utils import timezone

from marlin.audit.keys import current_key
from marlin.audit.models import canonical_payload

SEAL_VERB = "audit.keyed"


def seal_unkeyed_events(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    newest = AuditEvent.objects.order_by("-sequence").first()
    if newest is None:
        return  # a new database: every event will be keyed
    key = current_key()
    seal = AuditEvent(
        sequence=newest.sequence + 1,
        created_at=timezone.now(),
        actor=None,
        actor_name="system",
        verb=SEAL_VERB,
        object_type="audit.chain",
        object_id="",
        project_id=None,
        old_values={},
        new_values={"unkeyed_events": AuditEvent.objects.count(), "key_id": key.id},
        reason="From here on every event is signed with the audit key; this one seals the "
        "unkeyed events before it.",
        prev_hash=newest.hash,
        algorithm="hmac-sha256",
        key_id=key.id,
    )
    seal.hash = key.sign(canonical_payload(seal))
    seal.save()
    # There is one head row (record() keeps it at pk 1); move it, or make it.
    if not AuditChainHead.objects.update(last_hash=seal.hash, last_sequence=seal.sequence):
        AuditChainHead.objects.create(pk=1, last_hash=seal.hash, last_sequence=seal.sequence)


def unseal(apps, schema_editor):
    """Going back to the unkeyed release: drop the seal when nothing was written after it (the
    old code cannot verify keyed events anyway)."""
    AuditEvent = apps.get_model("audit", "AuditEvent")
    AuditChainHead = apps.get_model("audit", "AuditChainHead")
    newest = AuditEvent.objects.order_by("-sequence").first()
    if newest is None or newest.verb != SEAL_VERB:
        return
    AuditEvent.objects.filter(pk=newest.pk).delete()
    AuditChainHead.objects.update(last_hash=newest.prev_hash, last_sequence=newest.sequence - 1)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="algorithm",
            field=models.CharField(
                choices=[
                    ("sha256", "SHA-256, unkeyed (written before the keyed chain)"),
                    ("hmac-sha256", "HMAC-SHA256 with the audit key named by key_id"),
                ],
                default="sha256",
                editable=False,
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(
                blank=True,
                default="",
                editable=False,
                help_text="Which audit key signed it.",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(seal_unkeyed_events, unseal),
    ]
