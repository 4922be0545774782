"""Tasks, agents, runs and imports. Agents and runs name agents, so they are for admins and
authors only; tasks are read by authors and reviewers, as on the web."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from marlin.agents.imports import do_import_predictions
from marlin.agents.models import Agent, Run
from marlin.api.auth import require
from marlin.api.types import MAX_ID, Id, Pagination, filter_param
from marlin.tasks.actions import do_create_task
from marlin.tasks.forms import TaskForm
from marlin.tasks.imports import do_import_swebench_tasks, find_repository
from marlin.tasks.models import Project, Task

router = Router()
TASK_READERS = ("author", "reviewer")
AGENT_ROLES = ("author",)


class TaskOut(Schema):
    id: int
    project_id: int
    repository_id: int
    repository_url: str = Field(..., alias="repository.url")
    title: str
    prompt: str
    kind: str
    base_ref: str
    base_commit: str
    setup_command: str
    environment_spec: dict[str, Any]
    checks: list[dict[str, Any]]
    status: str
    external_id: str
    created_at: datetime


class TaskIn(Schema):
    project_id: Id
    repository_id: Id
    base_ref: str = Field(
        ...,
        min_length=1,
        max_length=255,
        description="Commit SHA, branch or tag; resolved in the mirror.",
    )
    title: str = Field(..., min_length=1, max_length=200)
    kind: str = "feature"
    prompt: str = Field(..., min_length=1, max_length=100_000)
    setup_command: str = Field("", max_length=10_000)
    environment_spec: dict[str, Any] = Field(
        default_factory=dict,
        description="python, packages, requirements, pip_packages, pre_install, install "
        "(docs/sandbox.md, Environments)",
    )
    checks: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class AgentOut(Schema):
    id: int
    name: str
    version_label: str
    provider: str
    description: str
    is_active: bool
    created_at: datetime


class CheckOut(Schema):
    name: str
    kind: str
    status: str
    passed: int
    failed: int
    errors: int
    skipped: int


class CandidateOut(Schema):
    id: int
    patch: str
    files_changed: int
    lines_added: int
    lines_removed: int
    cost_usd: float
    fingerprints: list[Any]
    checks: list[CheckOut]

    @staticmethod
    def resolve_checks(obj: Any) -> list[Any]:
        return list(obj.check_results.all())


class TurnOut(Schema):
    number: int
    prompt: str
    status: str
    exit_status: str
    candidate: CandidateOut | None

    @staticmethod
    def resolve_candidate(obj: Any) -> Any:
        return getattr(obj, "candidate", None)


class RunOut(Schema):
    id: int
    task_id: int
    agent: AgentOut
    status: str
    error: str
    created_at: datetime
    turns: list[TurnOut]

    @staticmethod
    def resolve_turns(obj: Run) -> list[Any]:
        return list(obj.turns.all())


class ImportIn(Schema):
    project_id: Id
    text: str = Field(..., max_length=200_000_000, description="JSON lines or a JSON list.")
    filename: str = Field("", max_length=200)


class PredictionsIn(ImportIn):
    version_label: str = Field("1", min_length=1, max_length=100)


class SwebenchTasksIn(ImportIn):
    approve: bool = False
    # A registered repository (name, URL, local path or id) for every record; empty: each
    # record's owner/name is matched in the catalog.
    repository: str = ""


class LineErrorOut(Schema):
    line: int
    reason: str


class LineOutcomeOut(Schema):
    line: int
    instance_id: str
    outcome: str  # created, updated, skipped or error
    reason: str


class ImportOut(Schema):
    format: str
    records: int
    created: int
    skipped: int
    errors: list[LineErrorOut]
    created_ids: list[int]
    updated: int = 0
    # Task imports: every record in the file's order.
    lines: list[LineOutcomeOut] = []


@router.get("/tasks", response=list[TaskOut], tags=["tasks"], summary="List tasks")
@paginate(Pagination)
def list_tasks(
    request: HttpRequest,
    project_id: int | None = Query(None, ge=1, le=MAX_ID),
    status: str = filter_param(),
    kind: str = filter_param(),
    q: str = filter_param(),
) -> QuerySet[Task]:
    require(request, *TASK_READERS)
    qs = Task.objects.select_related("repository").order_by("-created_at", "-pk")
    if project_id is not None:
        qs = qs.filter(project_id=project_id)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(repository__name__icontains=q))
    return qs


@router.get("/tasks/{task_id}", response=TaskOut, tags=["tasks"], summary="Get a task")
def get_task(request: HttpRequest, task_id: int = Path(..., ge=1, le=MAX_ID)) -> Task:
    require(request, *TASK_READERS)
    return Task.objects.select_related("repository").get(pk=task_id)


@router.post(
    "/tasks", response={201: TaskOut}, tags=["tasks"], summary="Create a task (as a draft)"
)
def create_task(request: HttpRequest, body: TaskIn) -> Status[Task]:
    user = require(request, "author")
    # The web form's validation (mirrored repository, ref resolved to a commit, check specs).
    form = TaskForm(
        {
            "project": body.project_id,
            "repository": body.repository_id,
            "base_ref": body.base_ref,
            "title": body.title,
            "kind": body.kind,
            "prompt": body.prompt,
            "setup_command": body.setup_command,
            "environment_spec": json.dumps(body.environment_spec) if body.environment_spec else "",
            "checks": json.dumps(body.checks),
        }
    )
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in form.errors.items()
        )
        raise HttpError(422, problems)
    task = do_create_task(user, form.cleaned_data["project"], **form.task_fields())
    return Status(201, task)


@router.get(
    "/agents", response=list[AgentOut], tags=["agents"], summary="List agents (admins and authors)"
)
@paginate(Pagination)
def list_agents(
    request: HttpRequest, project_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> QuerySet[Agent]:
    require(request, *AGENT_ROLES)
    qs = Agent.objects.order_by("name", "version_label", "pk")
    if project_id is not None:
        qs = qs.filter(projects__id=project_id)
    return qs


@router.get("/agents/{agent_id}", response=AgentOut, tags=["agents"], summary="Get an agent")
def get_agent(request: HttpRequest, agent_id: int = Path(..., ge=1, le=MAX_ID)) -> Agent:
    require(request, *AGENT_ROLES)
    return Agent.objects.get(pk=agent_id)


@router.get(
    "/runs/{run_id}",
    response=RunOut,
    tags=["runs"],
    summary="Get a run with its turns and candidates",
)
def get_run(request: HttpRequest, run_id: int = Path(..., ge=1, le=MAX_ID)) -> Run:
    require(request, *AGENT_ROLES)
    return (
        Run.objects.select_related("agent")
        .prefetch_related("turns__candidate__check_results")
        .get(pk=run_id)
    )


def _import_out(report: Any) -> dict[str, Any]:
    return {
        "format": report.format,
        "records": report.records,
        "created": report.created,
        "skipped": len(report.skipped),
        "errors": [{"line": e.line_no, "reason": e.reason} for e in report.errors[:1000]],
        "created_ids": report.created_ids,
        "updated": report.updated,
        "lines": [
            {
                "line": x.line_no,
                "instance_id": x.instance_id,
                "outcome": x.outcome,
                "reason": x.reason,
            }
            for x in report.lines[:1000]
        ],
    }


@router.post(
    "/imports/predictions",
    response=ImportOut,
    tags=["imports"],
    summary="Import candidates from SWE-bench predictions (JSON lines)",
)
def import_predictions(request: HttpRequest, body: PredictionsIn) -> dict[str, Any]:

    user = require(request, "author")
    project = Project.objects.get(pk=body.project_id)
    try:
        report = do_import_predictions(
            user, project, body.text, version_label=body.version_label, filename=body.filename
        )
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return _import_out(report)


@router.post(
    "/imports/swebench-tasks",
    response=ImportOut,
    tags=["imports"],
    summary="Import tasks from SWE-bench task records (JSON lines)",
)
def import_swebench_tasks(request: HttpRequest, body: SwebenchTasksIn) -> dict[str, Any]:

    user = require(request, "author")
    project = Project.objects.get(pk=body.project_id)
    repository = None
    if body.repository.strip():
        repository = find_repository(body.repository)
        if repository is None:
            raise HttpError(422, f"no registered repository {body.repository!r}")
    try:
        report = do_import_swebench_tasks(
            user,
            project,
            body.text,
            approve=body.approve,
            filename=body.filename,
            repository=repository,
        )
    except ValueError as exc:
        raise HttpError(422, str(exc)) from None
    return _import_out(report)
