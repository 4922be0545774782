"""Reference judgments, read-only: written by `marlin import judgments`, never edited."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.analytics.models import ReferenceJudgment, ReferenceSet


@admin.register(ReferenceSet)
class ReferenceSetAdmin(ReadOnlyAdmin):
    list_display = ["pk", "project", "name", "format", "records", "imported_by", "imported_at"]
    list_select_related = ["project", "imported_by"]
    search_fields = ["name"]


@admin.register(ReferenceJudgment)
class ReferenceJudgmentAdmin(ReadOnlyAdmin):
    list_display = ["pk", "reference_set", "line_no", "model_a", "model_b", "winner", "judge"]
    list_filter = ["winner"]
    list_select_related = ["reference_set"]
    search_fields = ["model_a", "model_b"]
