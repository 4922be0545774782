"""Agent definitions, a project's agent pool, and runs with their trajectories.

These pages name agents, so they are for admins and authors only; experts judge comparisons
through the blind pages of marlin.review.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.agents import actions
from marlin.agents.clis import shipped_definitions
from marlin.agents.forms import SETTINGS_EXAMPLES, AgentForm, AgentPoolForm, StartRunForm
from marlin.agents.models import Agent, Provider, Run, TrajectoryStep, Turn
from marlin.agents.pairing import PairingError, do_pair_task, do_pair_tasks
from marlin.audit.models import AuditEvent
from marlin.permissions import role_required
from marlin.tasks.models import Project, Task, TaskStatus

AGENT_EDITORS = ("author",)


def _examples() -> str:
    return json.dumps({str(k): v for k, v in SETTINGS_EXAMPLES.items()}, indent=2)


def _ready_made() -> list[dict[str, str]]:
    """The shipped command-line agent definitions, as the settings to paste."""
    return [
        {
            "name": name,
            "description": definition["description"],
            "settings": json.dumps(definition["settings"], indent=2),
        }
        for name, definition in shipped_definitions().items()
    ]


@role_required(*AGENT_EDITORS)
def agent_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    agents = Agent.objects.annotate(run_count=Count("runs")).select_related("created_by")
    provider = request.GET.get("provider")
    if provider:
        agents = agents.filter(provider=provider)
    return render(
        request,
        "agents/agent_list.html",
        {"agents": agents, "providers": Provider.choices, "provider": provider},
    )


@role_required(*AGENT_EDITORS)
def agent_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = AgentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            agent = actions.do_create_agent(
                request.user,
                name=data["name"],
                version_label=data["version_label"],
                provider=data["provider"],
                settings=data["settings"],
                description=data["description"],
                is_active=data["is_active"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Agent {agent} created.")
            return redirect("agents:detail", agent_id=agent.pk)
    context = {"form": form, "examples": _examples(), "ready_made": _ready_made()}
    return render(request, "agents/agent_form.html", context)


@role_required(*AGENT_EDITORS)
def agent_edit(request: AuthenticatedHttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent, pk=agent_id)
    initial = {
        "name": agent.name,
        "version_label": agent.version_label,
        "provider": agent.provider,
        "settings": json.dumps(agent.settings, indent=2),
        "description": agent.description,
        "is_active": agent.is_active,
    }
    form = AgentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_update_agent(
                request.user,
                agent,
                {name: form.cleaned_data[name] for name in actions.AGENT_FIELDS},
                reason=request.POST.get("reason", ""),
            )
        except (ValidationError, actions.IllegalTransition) as exc:
            form.add_error(None, exc if isinstance(exc, ValidationError) else str(exc))
        else:
            messages.success(request, "Agent saved.")
            return redirect("agents:detail", agent_id=agent.pk)
    context = {"form": form, "agent": agent, "examples": _examples(), "ready_made": _ready_made()}
    return render(request, "agents/agent_form.html", context)


@role_required(*AGENT_EDITORS)
def agent_detail(request: AuthenticatedHttpRequest, agent_id: int) -> HttpResponse:
    agent = get_object_or_404(Agent.objects.select_related("created_by"), pk=agent_id)
    runs = agent.runs.select_related("task").annotate(turn_count=Count("turns"))[:50]
    history = AuditEvent.objects.for_object("agents.agent", agent.pk).select_related("actor")
    context = {
        "agent": agent,
        "settings_json": json.dumps(agent.settings, indent=2),
        "runs": runs,
        "history": history,
        "projects": agent.projects.all(),
    }
    return render(request, "agents/agent_detail.html", context)


@role_required(*AGENT_EDITORS)
def run_detail(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(
        Run.objects.select_related("agent", "task__project", "partner__agent"), pk=run_id
    )
    turns = run.turns.select_related("candidate").prefetch_related(
        Prefetch("steps", queryset=TrajectoryStep.objects.order_by("index"))
    )
    return render(request, "agents/run_detail.html", {"run": run, "turns": turns})


@role_required(*AGENT_EDITORS)
@require_POST
def turn_retry(request: AuthenticatedHttpRequest, turn_id: int) -> HttpResponse:
    turn = get_object_or_404(Turn, pk=turn_id)
    try:
        actions.do_retry_turn(request.user, turn)
    except actions.IllegalTransition as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Turn {turn.number} queued again.")
    return redirect("agents:run", run_id=turn.run_id)


@role_required(*AGENT_EDITORS)
def task_runs(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task.objects.select_related("project", "repository"), pk=task_id)
    form = StartRunForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = actions.do_start_run(request.user, task, form.cleaned_data["agent"])
        except actions.IllegalTransition as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Run of {run.agent} queued.")
            return redirect("tasks:detail", task_id=task.pk)
    pool = task.project.agent_pool.filter(is_active=True)
    context = {"task": task, "form": form, "pool": pool}
    return render(request, "agents/task_runs.html", context)


@role_required(*AGENT_EDITORS)
@require_POST
def task_pair(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=task_id)
    try:
        first, second = do_pair_task(request.user, task)
    except (PairingError, actions.IllegalTransition) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Paired {first.agent} with {second.agent}; both runs queued.")
    return redirect("tasks:detail", task_id=task.pk)


@role_required()
def project_pool(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id)
    form = AgentPoolForm(request.POST or None, initial={"agents": project.agent_pool.all()})
    unpaired = project.tasks.filter(status=TaskStatus.APPROVED, runs__isnull=True).distinct()
    if request.method == "POST" and request.POST.get("action") == "pair":
        try:
            pairs = do_pair_tasks(request.user, project, list(unpaired.order_by("pk")))
        except (PairingError, actions.IllegalTransition) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"{len(pairs)} task(s) paired; their runs are queued.")
        return redirect("agents:pool", project_id=project.pk)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_set_agent_pool(
                request.user,
                project,
                list(form.cleaned_data["agents"]),
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Agent pool saved.")
            return redirect("agents:pool", project_id=project.pk)
    context = {
        "project": project,
        "form": form,
        "pool": project.agent_pool.all(),
        "unpaired": unpaired.count(),
    }
    return render(request, "agents/project_pool.html", context)
