"""Read-only admin views of comparisons, claims and judgments (admins only: see marlin/urls.py).

State changes go through the audited actions (queue, actions, pipeline), never through these
forms, so every field is read-only here.
"""

from django.contrib import admin

from marlin.review.models import Claim, Comparison, Decision, Judgment, Review


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Comparison)
class ComparisonAdmin(ReadOnly):
    list_display = ["public_id", "project", "task", "state", "turn_count", "created_at"]
    list_filter = ["state", "project"]
    search_fields = ["public_id", "task__title"]


@admin.register(Claim)
class ClaimAdmin(ReadOnly):
    list_display = ["comparison", "annotator", "claimed_at", "last_seen_at", "released_at"]
    list_filter = ["released_at"]


@admin.register(Judgment)
class JudgmentAdmin(ReadOnly):
    list_display = [
        "pk",
        "comparison",
        "annotator",
        "status",
        "overall",
        "active_seconds",
        "submitted_at",
    ]
    list_filter = ["status"]
    search_fields = ["comparison__public_id", "annotator__username"]


@admin.register(Review)
class ReviewAdmin(ReadOnly):
    list_display = ["pk", "judgment", "reviewer", "verdict", "created_at"]
    list_filter = ["verdict"]


@admin.register(Decision)
class DecisionAdmin(ReadOnly):
    list_display = ["comparison", "source", "overall", "decided_by", "decided_at"]
    list_filter = ["source"]
