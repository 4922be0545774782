"""Projects, rubrics, tasks and environments, read-only: they change on the product's pages
(tasks/actions.py), where every change is audited and rubric versions stay immutable."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.tasks.models import Environment, Project, Rubric, RubricVersion, Task


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["name", "rubric", "is_active", "overlap", "pay_mode", "created_at"]
    list_filter = ["is_active", "pay_mode"]
    search_fields = ["name"]
    list_select_related = ["rubric"]


@admin.register(Rubric)
class RubricAdmin(ReadOnlyAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(RubricVersion)
class RubricVersionAdmin(ReadOnlyAdmin):
    list_display = ["rubric", "number", "created_by", "created_at"]
    list_filter = ["rubric"]
    list_select_related = ["rubric", "created_by"]


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["title", "project", "repository", "kind", "status", "source", "created_at"]
    list_filter = ["status", "kind", "source", "project"]
    search_fields = ["title", "external_id", "repository__name"]
    list_select_related = ["project", "repository"]


@admin.register(Environment)
class EnvironmentAdmin(ReadOnlyAdmin):
    list_display = ["pk", "repository", "commit", "status", "duration_seconds", "finished_at"]
    list_filter = ["status"]
    search_fields = ["repository__name", "commit"]
    list_select_related = ["repository"]
