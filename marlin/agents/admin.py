from django.contrib import admin

from marlin.agents.models import Agent, Candidate, Run, TrajectoryStep, Turn


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ["name", "version_label", "provider", "is_active", "created_at"]
    list_filter = ["provider", "is_active"]
    search_fields = ["name"]
    # Settings are validated (no keys in clear) by actions.do_update_agent; edit them there.
    readonly_fields = ["settings", "created_by", "created_at"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["pk", "agent", "task", "status", "created_at"]
    list_filter = ["status", "agent__provider"]
    readonly_fields = ["conversation", "workspace_path", "partner", "lease_expires_at"]
    raw_id_fields = ["task", "agent", "created_by"]


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ["pk", "run", "number", "status", "exit_status", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["run", "requested_by"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["pk", "turn", "files_changed", "lines_added", "lines_removed", "created_at"]
    readonly_fields = ["patch", "scrubbed_patch", "fingerprints"]
    raw_id_fields = ["turn"]


@admin.register(TrajectoryStep)
class TrajectoryStepAdmin(admin.ModelAdmin):
    list_display = ["pk", "turn", "index", "kind", "created_at"]
    raw_id_fields = ["turn"]
