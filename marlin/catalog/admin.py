from django.contrib import admin

from marlin.catalog.models import Repository, Tag


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ["name", "host", "language", "stars", "mirror_status", "last_fetched_at"]
    list_filter = ["mirror_status", "language", "is_local"]
    search_fields = ["name", "normalized_url"]
    # URL changes must go through validation (actions.py), so the admin shows them read-only.
    readonly_fields = [
        "url",
        "normalized_url",
        "host",
        "is_local",
        "mirror_status",
        "mirror_path",
        "last_fetched_at",
        "last_error",
        "mirror_started_at",
        "created_at",
        "created_by",
    ]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]
