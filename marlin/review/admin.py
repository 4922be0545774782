"""Comparisons, claims, judgments, reviews and decisions, read-only: they change through the
audited actions (queue, actions, pipeline) on the product's pages, never through these forms."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.review.models import Claim, Comparison, Decision, Judgment, Review, WorkSession


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "project", "task", "state", "turn_count", "created_at"]
    list_filter = ["state", "project"]
    search_fields = ["public_id", "task__title"]
    list_select_related = ["project", "task"]


@admin.register(Claim)
class ClaimAdmin(ReadOnlyAdmin):
    list_display = ["comparison", "annotator", "claimed_at", "last_seen_at", "released_at"]
    list_filter = ["released_at"]
    list_select_related = ["comparison", "annotator"]


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
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
    list_select_related = ["comparison", "annotator"]


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["pk", "judgment", "reviewer", "verdict", "created_at"]
    list_filter = ["verdict"]
    list_select_related = ["judgment", "reviewer"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ["comparison", "source", "overall", "decided_by", "decided_at"]
    list_filter = ["source"]
    list_select_related = ["comparison", "decided_by"]


@admin.register(WorkSession)
class WorkSessionAdmin(ReadOnlyAdmin):
    """Server-measured time: written only by heartbeats and submissions."""

    list_display = [
        "pk",
        "user",
        "kind",
        "comparison",
        "heartbeats",
        "intervals",
        "active_ms",
        "closed_ms",
        "work_id",
    ]
    list_filter = ["kind"]
    list_select_related = ["user", "comparison"]
