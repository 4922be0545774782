"""Exports, read-only: started and downloaded on the project's export page."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.exports.models import Export


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "kind", "status", "progress", "created_by", "created_at"]
    list_filter = ["kind", "status", "project"]
    list_select_related = ["project", "created_by"]
