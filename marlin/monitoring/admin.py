"""Workers' heartbeats, read-only: written by `marlin worker` itself."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.monitoring.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["worker_id", "hostname", "pid", "started_at", "last_seen_at"]
    search_fields = ["hostname"]
    ordering = ["-last_seen_at"]
