"""Repositories and tags, read-only: URLs change only through validation and the mirror status
only through its jobs (catalog/actions.py, catalog/jobs.py)."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.catalog.models import Repository, Tag


@admin.register(Repository)
class RepositoryAdmin(ReadOnlyAdmin):
    list_display = ["name", "host", "language", "stars", "mirror_status", "last_fetched_at"]
    list_filter = ["mirror_status", "language", "is_local"]
    search_fields = ["name", "normalized_url"]


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    search_fields = ["name"]
