from django.contrib import admin

from marlin.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, also through the admin."""

    list_display = ("sequence", "created_at", "actor_name", "verb", "object_type", "object_id")
    list_filter = ("verb", "object_type")
    search_fields = ("actor_name", "object_id", "reason")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
