from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from pydantic import ValidationError as PydanticValidationError

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.audit.models import AuditEvent
from marlin.permissions import role_required
from marlin.tasks import actions
from marlin.tasks.forms import (
    CriterionFormSet,
    ProjectForm,
    ReviewTaskForm,
    RubricNoteForm,
    TaskForm,
    criteria_problems,
)
from marlin.tasks.models import Project, Rubric, Task, TaskKind, TaskStatus
from marlin.tasks.rubric import validate_criteria
from marlin.tasks.rubric_diff import criteria_changes

TASK_READERS = ("author", "reviewer")


def _get_task_for_user(request: AuthenticatedHttpRequest, task_id: int) -> Task:
    return get_object_or_404(
        Task.objects.select_related("project", "repository", "created_by"), pk=task_id
    )


@role_required(*TASK_READERS)
def task_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    tasks = Task.objects.select_related("project", "repository", "created_by").order_by(
        "-created_at"
    )
    query = request.GET.get("q", "").strip()
    if query:
        tasks = tasks.filter(Q(title__icontains=query) | Q(repository__name__icontains=query))
    for field in ("status", "kind", "project"):
        value = request.GET.get(field)
        if value:
            tasks = tasks.filter(**{field if field != "project" else "project_id": value})
    if request.GET.get("mine"):
        tasks = tasks.filter(created_by=request.user)
    page = Paginator(tasks, 50).get_page(request.GET.get("page"))
    filters = request.GET.copy()
    filters.pop("page", None)
    return render(
        request,
        "tasks/task_list.html",
        {
            "page": page,
            "query": query,
            "statuses": TaskStatus.choices,
            "kinds": TaskKind.choices,
            "projects": Project.objects.all(),
            "filters": filters.urlencode(),
        },
    )


@role_required("author")
def task_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TaskForm(request.POST or None, initial={"project": request.GET.get("project")})
    if request.method == "POST" and form.is_valid():
        try:
            task = actions.do_create_task(
                request.user, form.cleaned_data["project"], **form.task_fields()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Task created as a draft. A reviewer will approve it.")
            return redirect("tasks:detail", task_id=task.pk)
    return render(request, "tasks/task_form.html", {"form": form, "creating": True})


@role_required("author")
def task_edit(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_user(request, task_id)
    if task.created_by_id != request.user.pk and not request.user.has_role("admin"):
        raise PermissionDenied("Only the task's author or an admin may edit it.")
    initial = {
        "project": task.project_id,
        "repository": task.repository_id,
        "base_ref": task.base_ref,
        "title": task.title,
        "kind": task.kind,
        "prompt": task.prompt,
        "setup_command": task.setup_command,
        "checks": json.dumps(task.checks, indent=2) if task.checks else "",
        "environment_spec": (
            json.dumps(task.environment_spec, indent=2) if task.environment_spec else ""
        ),
    }
    form = TaskForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            actions.do_update_task(
                request.user, task, form.task_fields(), reason=request.POST.get("reason", "")
            )
        except (ValidationError, actions.IllegalTransition) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Task saved.")
            return redirect("tasks:detail", task_id=task.pk)
    return render(request, "tasks/task_form.html", {"form": form, "task": task, "creating": False})


@role_required(*TASK_READERS)
def task_detail(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_user(request, task_id)
    history = AuditEvent.objects.for_object("tasks.task", task.pk).select_related("actor")
    context = {"task": task, "history": history, "review_form": ReviewTaskForm()}
    return render(request, "tasks/task_detail.html", context)


@role_required("reviewer", "author")
@require_POST
def task_review(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_user(request, task_id)
    form = ReviewTaskForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or send back.")
        return redirect("tasks:detail", task_id=task.pk)
    decision = form.cleaned_data["decision"]
    comment = form.cleaned_data["comment"]
    try:
        if decision == "approve":
            actions.do_approve_task(request.user, task, comment=comment)
            messages.success(request, "Task approved.")
        else:
            actions.do_send_back_task(request.user, task, comment=comment)
            messages.success(request, "Task sent back to its author.")
    except (actions.IllegalTransition, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("tasks:detail", task_id=task.pk)


@role_required("author", "reviewer")
@require_POST
def task_status(request: AuthenticatedHttpRequest, task_id: int) -> HttpResponse:
    task = _get_task_for_user(request, task_id)
    action = request.POST.get("action")
    try:
        if action == "retire":
            actions.do_retire_task(request.user, task, reason=request.POST.get("reason", ""))
            messages.success(request, "Task retired.")
        elif action == "resubmit":
            actions.do_resubmit_task(request.user, task)
            messages.success(request, "Task resubmitted for review.")
        else:
            messages.error(request, "Unknown action.")
    except (actions.IllegalTransition, ValidationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("tasks:detail", task_id=task.pk)


@role_required("author", "reviewer", "annotator", "adjudicator")
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    projects = Project.objects.select_related("rubric").annotate(task_count=Count("tasks"))
    return render(request, "tasks/project_list.html", {"projects": projects})


@role_required("author", "reviewer", "annotator", "adjudicator")
def project_detail(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.select_related("rubric"), pk=project_id)
    counts = dict(project.tasks.values_list("status").annotate(n=Count("id")))
    # The head of the annotators' queue and why (agent names: staff only, as the pool card).
    # Through the reverse relation: the review app sits above this one.
    next_items = (
        project.comparisons.filter(state="awaiting_judgments")
        .select_related("task", "run_a__agent", "run_b__agent")
        .order_by("-priority", "created_at", "pk")[:5]
        if request.user.has_role("admin", "author")
        else []
    )
    return render(
        request,
        "tasks/project_detail.html",
        {"project": project, "counts": counts, "next_items": next_items},
    )


@role_required()
def project_form(request: AuthenticatedHttpRequest, project_id: int | None = None) -> HttpResponse:
    project = get_object_or_404(Project, pk=project_id) if project_id else None
    form = ProjectForm(request.POST or None, instance=project)
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.Meta.fields}
        if project is None:
            name = data.pop("name")
            project = actions.do_create_project(request.user, name, **data)
            messages.success(request, "Project created with the default rubric.")
        else:
            actions.do_update_project(
                request.user, project, data, reason=request.POST.get("reason", "")
            )
            messages.success(request, "Project saved.")
        return redirect("tasks:project", project_id=project.pk)
    return render(request, "tasks/project_form.html", {"form": form, "project": project})


@role_required("author", "reviewer", "annotator", "adjudicator")
def rubric_detail(request: AuthenticatedHttpRequest, rubric_id: int) -> HttpResponse:
    rubric = get_object_or_404(Rubric, pk=rubric_id)
    versions = list(rubric.versions.select_related("created_by").order_by("-number"))
    selected = versions[0]
    if request.GET.get("version"):
        selected = next((v for v in versions if str(v.number) == request.GET["version"]), selected)
    return render(
        request,
        "tasks/rubric_detail.html",
        {"rubric": rubric, "versions": versions, "version": selected},
    )


@role_required("author", "reviewer", "annotator", "adjudicator")
def rubric_history(request: AuthenticatedHttpRequest, rubric_id: int) -> HttpResponse:
    rubric = get_object_or_404(Rubric, pk=rubric_id)
    versions = list(rubric.versions.select_related("created_by").order_by("number"))
    entries = []
    for previous, version in zip([None, *versions], versions, strict=False):
        changes = [] if previous is None else criteria_changes(previous.criteria, version.criteria)
        entries.append({"version": version, "changes": changes})
    entries.reverse()
    return render(request, "tasks/rubric_history.html", {"rubric": rubric, "entries": entries})


@role_required()
def rubric_edit(request: AuthenticatedHttpRequest, rubric_id: int) -> HttpResponse:
    """The rubric as a form, a block per criterion (add, remove, reorder); saving makes the
    next immutable version through do_revise_rubric, as before."""
    rubric = get_object_or_404(Rubric, pk=rubric_id)
    current = rubric.current_version()
    data = request.POST if request.method == "POST" else None
    formset = CriterionFormSet(data, initial=validate_criteria(current.criteria), prefix="c")
    note = RubricNoteForm(data)
    problems: list[str] = []
    if data is not None and formset.is_valid() and note.is_valid():
        criteria = [form.criterion() for form in formset.ordered_forms]
        try:
            version = actions.do_revise_rubric(
                request.user, rubric, criteria, note=note.cleaned_data["change_note"]
            )
        except PydanticValidationError as exc:
            problems = criteria_problems(exc)
        except ValidationError as exc:
            problems = exc.messages
        else:
            messages.success(request, f"Saved as version {version.number}.")
            return redirect("tasks:rubric_history", rubric_id=rubric.pk)
    return render(
        request,
        "tasks/rubric_edit.html",
        {
            "rubric": rubric,
            "formset": formset,
            "note": note,
            "problems": problems,
            "current": current,
        },
        status=200 if data is None else 400,  # a POST that reaches here was refused
    )
