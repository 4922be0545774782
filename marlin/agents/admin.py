"""Agents, runs, turns, candidates and trajectories, read-only: agents change on their own pages
(do_update_agent validates settings so no key is stored in clear), the rest is written by the
agent loop and its jobs."""

from django.contrib import admin

from marlin.adminsite import ReadOnlyAdmin
from marlin.agents.models import Agent, Candidate, Run, TrajectoryStep, Turn


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = ["name", "version_label", "provider", "is_active", "created_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name", "version_label"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "agent", "task", "status", "created_at"]
    list_filter = ["status", "agent__provider"]
    search_fields = ["agent__name", "task__title"]
    list_select_related = ["agent", "task"]


@admin.register(Turn)
class TurnAdmin(ReadOnlyAdmin):
    list_display = ["pk", "run", "number", "status", "exit_status", "finished_at"]
    list_filter = ["status", "exit_status"]
    list_select_related = ["run__agent", "run__task"]


@admin.register(Candidate)
class CandidateAdmin(ReadOnlyAdmin):
    list_display = ["pk", "turn", "files_changed", "lines_added", "lines_removed", "created_at"]
    list_select_related = ["turn__run__agent", "turn__run__task"]


@admin.register(TrajectoryStep)
class TrajectoryStepAdmin(ReadOnlyAdmin):
    list_display = ["pk", "turn", "index", "kind", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["turn__run__agent", "turn__run__task"]
