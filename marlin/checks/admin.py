"""Check results, read-only: written by the check jobs, re-run from the candidate's page."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.checks.models import CheckResult


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin):
    list_display = ["pk", "candidate", "name", "kind", "status", "passed", "failed", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["name"]
    list_select_related = ["candidate__turn"]
