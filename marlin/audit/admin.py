"""The audit log in the admin: read-only, like everywhere else (it is append-only)."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.audit.models import AuditChainHead, AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "created_at", "actor_name", "verb", "object_type", "object_id")
    list_filter = ("verb", "object_type", "key_id")
    search_fields = ("actor_name", "object_id", "reason")
    date_hierarchy = "created_at"


@admin.register(AuditChainHead)
class AuditChainHeadAdmin(ReadOnlyAdmin):
    list_display = ("last_sequence", "last_hash")
