"""Every change to projects, rubrics and tasks goes through a do_* action that writes one
audit event.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from marlin.accounts.models import User
from marlin.audit.actions import record
from marlin.errors import IllegalTransition
from marlin.permissions import require_role
from marlin.tasks.models import (
    PROJECT_POLICY_FIELDS,
    Project,
    Rubric,
    RubricVersion,
    Task,
    TaskStatus,
)
from marlin.tasks.rubric import DEFAULT_CRITERIA, validate_criteria

TASK_FIELDS = [
    "repository_id",
    "base_ref",
    "base_commit",
    "title",
    "prompt",
    "kind",
    "setup_command",
    "environment_spec",
    "checks",
]


@transaction.atomic
def do_create_rubric(
    actor: User, name: str, criteria: list[dict] | None = None, *, note: str = ""
) -> Rubric:
    require_role(actor, "admin")
    rubric = Rubric.objects.create(name=name)
    version = RubricVersion.objects.create(
        rubric=rubric,
        number=1,
        criteria=validate_criteria(criteria if criteria is not None else DEFAULT_CRITERIA),
        change_note=note or "Initial version.",
        created_by=actor,
    )
    record(
        actor,
        "rubric.create",
        rubric,
        new={"name": name, "version": 1, "criteria": version.criteria},
        reason=version.change_note,
    )
    return rubric


@transaction.atomic
def do_revise_rubric(
    actor: User, rubric: Rubric, criteria: list[dict], *, note: str
) -> RubricVersion:
    """Create a new immutable version. Old judgments stay bound to the version they used."""
    require_role(actor, "admin")
    if not note or not note.strip():
        raise ValidationError("A change note is required: say what changed and why.")
    rubric = Rubric.objects.select_for_update().get(pk=rubric.pk)
    current = rubric.current_version()
    normalised = validate_criteria(criteria)
    # Compared normalised: a version saved before a field was added holds it implicitly.
    if validate_criteria(current.criteria) == normalised:
        raise ValidationError("Nothing changed: the criteria are the same as the current version.")
    version = RubricVersion.objects.create(
        rubric=rubric,
        number=(current.number + 1) if current else 1,
        criteria=normalised,
        change_note=note.strip(),
        created_by=actor,
    )
    record(
        actor,
        "rubric.revise",
        rubric,
        old={
            "version": current.number if current else None,
            "criteria": current.criteria if current else None,
        },
        new={"version": version.number, "criteria": normalised},
        reason=version.change_note,
    )
    return version


@transaction.atomic
def do_create_project(
    actor: User, name: str, *, rubric: Rubric | None = None, **policy: Any
) -> Project:
    require_role(actor, "admin")
    if rubric is None:
        rubric = do_create_rubric(actor, f"{name} rubric")
    unknown = set(policy) - set(PROJECT_POLICY_FIELDS)
    if unknown:
        raise ValueError(f"Unknown project setting(s): {', '.join(sorted(unknown))}")
    project = Project(name=name, rubric=rubric, created_by=actor, **policy)
    project.full_clean()
    project.save()
    record(
        actor,
        "project.create",
        project,
        new={"name": name, "rubric_id": rubric.pk, **policy},
        project_id=project.pk,
    )
    return project


@transaction.atomic
def do_update_project(
    actor: User, project: Project, changes: dict[str, Any], *, reason: str = ""
) -> Project:
    require_role(actor, "admin")
    unknown = set(changes) - set(PROJECT_POLICY_FIELDS) - {"name", "rubric"}
    if unknown:
        raise ValueError(f"Unknown project setting(s): {', '.join(sorted(unknown))}")
    project = Project.objects.select_for_update().get(pk=project.pk)
    old = {name: getattr(project, name) for name in changes}
    changed = {name: value for name, value in changes.items() if old[name] != value}
    if not changed:
        return project
    for name, value in changed.items():
        setattr(project, name, value)
    project.full_clean()
    project.save(update_fields=list(changed))
    as_json = {k: (v.pk if hasattr(v, "pk") else v) for k, v in changed.items()}
    record(
        actor,
        "project.update",
        project,
        old={k: (old[k].pk if hasattr(old[k], "pk") else old[k]) for k in changed},
        new=as_json,
        reason=reason,
    )
    return project


def _task_values(task: Task) -> dict[str, Any]:
    return {name: getattr(task, name) for name in TASK_FIELDS} | {"status": task.status}


@transaction.atomic
def do_create_task(actor: User, project: Project, **fields: Any) -> Task:
    require_role(actor, "author")
    task = Task(project=project, created_by=actor, status=TaskStatus.DRAFT, **fields)
    task.full_clean()
    task.save()
    record(actor, "task.create", task, new=_task_values(task))
    return task


@transaction.atomic
def do_update_task(actor: User, task: Task, changes: dict[str, Any], *, reason: str = "") -> Task:
    require_role(actor, "author")
    task = Task.objects.select_for_update().get(pk=task.pk)
    if task.created_by_id != actor.pk and not actor.has_role("admin"):
        raise PermissionDenied("Only the task's author or an admin may edit it.")
    if task.status == TaskStatus.RETIRED:
        raise IllegalTransition("A retired task cannot be edited.")
    old = _task_values(task)
    for name, value in changes.items():
        setattr(task, name, value)
    # Editing an approved task sends it back to draft: reviewers approved the old text.
    if task.status in (TaskStatus.APPROVED, TaskStatus.CHANGES_REQUESTED):
        task.status = TaskStatus.DRAFT
    task.full_clean()
    task.save()
    new = _task_values(task)
    diff_old = {k: v for k, v in old.items() if new[k] != v}
    if diff_old:
        record(
            actor,
            "task.update",
            task,
            old=diff_old,
            new={k: new[k] for k in diff_old},
            reason=reason,
        )
    return task


def _transition(
    actor: User,
    task: Task,
    *,
    allowed_from: set[str],
    to: str,
    verb: str,
    reason: str,
    comment: str | None = None,
) -> Task:
    task = Task.objects.select_for_update().get(pk=task.pk)
    if task.status not in allowed_from:
        raise IllegalTransition(
            f"Cannot {verb.split('.')[-1].replace('_', ' ')} a task that is "
            f"{task.get_status_display().lower()}."
        )
    old = {"status": task.status, "review_comment": task.review_comment}
    task.status = to
    fields = ["status", "updated_at"]
    if comment is not None:
        task.review_comment = comment
        fields.append("review_comment")
    task.save(update_fields=fields)
    record(
        actor,
        verb,
        task,
        old=old,
        new={"status": to, "review_comment": task.review_comment},
        reason=reason,
    )
    return task


@transaction.atomic
def do_approve_task(actor: User, task: Task, *, comment: str = "") -> Task:
    require_role(actor, "reviewer")
    if task.created_by_id == actor.pk and not actor.has_role("admin"):
        raise PermissionDenied("You cannot approve a task you wrote; another reviewer must.")
    return _transition(
        actor,
        task,
        allowed_from={TaskStatus.DRAFT},
        to=TaskStatus.APPROVED,
        verb="task.approve",
        reason=comment,
        comment=comment,
    )


@transaction.atomic
def do_send_back_task(actor: User, task: Task, *, comment: str) -> Task:
    require_role(actor, "reviewer")
    if not comment or not comment.strip():
        raise ValidationError(
            "Say what needs to change: a comment is required to send a task back."
        )
    return _transition(
        actor,
        task,
        allowed_from={TaskStatus.DRAFT},
        to=TaskStatus.CHANGES_REQUESTED,
        verb="task.send_back",
        reason=comment,
        comment=comment.strip(),
    )


@transaction.atomic
def do_resubmit_task(actor: User, task: Task) -> Task:
    require_role(actor, "author")
    return _transition(
        actor,
        task,
        allowed_from={TaskStatus.CHANGES_REQUESTED},
        to=TaskStatus.DRAFT,
        verb="task.resubmit",
        reason="",
    )


@transaction.atomic
def do_retire_task(actor: User, task: Task, *, reason: str) -> Task:
    require_role(actor, "author", "reviewer")
    if not reason.strip():
        raise ValidationError("A reason is required to retire a task.")
    return _transition(
        actor,
        task,
        allowed_from={TaskStatus.DRAFT, TaskStatus.APPROVED, TaskStatus.CHANGES_REQUESTED},
        to=TaskStatus.RETIRED,
        verb="task.retire",
        reason=reason,
    )
