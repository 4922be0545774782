import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from marlin.audit.models import AuditEvent
from marlin.demo.sample_repo import head_commit
from marlin.tasks import actions
from marlin.tasks.models import Task, TaskStatus


def _form(project, repository, **overrides):
    data = {
        "project": project.pk,
        "repository": repository.pk,
        "base_ref": "main",
        "title": "Accept (12.50) as a negative amount",
        "kind": "bug_fix",
        "prompt": "Make `parse_amount` accept accounting negatives.\n\n<script>alert('x')</script>",
        "setup_command": "",
        "checks": json.dumps(
            [{"kind": "command", "name": "tests", "command": "python -m pytest -q"}]
        ),
    }
    data.update(overrides)
    return data


def test_an_author_creates_a_task_and_the_branch_resolves_to_a_sha(
    client_for, dave, project, demo_repository
):
    response = client_for(dave).post("/tasks/new/", _form(project, demo_repository))
    task = Task.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    assert task.base_ref == "main"
    assert task.base_commit == head_commit(__import__("pathlib").Path(demo_repository.url))
    assert task.status == TaskStatus.DRAFT and task.created_by == dave
    assert task.checks[0]["command"] == "python -m pytest -q"
    event = AuditEvent.objects.get(verb="task.create")
    assert event.actor == dave and event.new_values["title"] == task.title


def test_tags_resolve_and_unknown_refs_are_refused_with_a_clear_message(
    client_for, dave, project, demo_repository
):
    client = client_for(dave)
    response = client.post(
        "/tasks/new/", _form(project, demo_repository, base_ref="no-such-branch")
    )
    assert response.status_code == 200
    assert "is not a branch, tag or commit in the mirror" in response.content.decode()
    response = client.post(
        "/tasks/new/", _form(project, demo_repository, base_ref="--upload-pack=touch /tmp/x")
    )
    assert response.status_code == 200 and Task.objects.count() == 0
    client.post("/tasks/new/", _form(project, demo_repository, base_ref="v0.3.0"))
    assert len(Task.objects.get().base_commit) == 40


def test_an_unknown_ref_is_refused_without_the_servers_mirror_path(
    client_for, client, dave, project, demo_repository, settings
):
    from marlin.accounts.models import ApiToken

    page = client_for(dave).post(
        "/tasks/new/", _form(project, demo_repository, base_ref="no-such-branch")
    )
    html = page.content.decode()
    assert "&#x27;no-such-branch&#x27; is not a branch, tag or commit in the mirror" in html
    _, raw = ApiToken.issue(dave, "tests")
    api = client.post(
        "/api/tasks",
        {
            "project_id": project.pk,
            "repository_id": demo_repository.pk,
            "base_ref": "no-such-branch",
            "title": "t",
            "kind": "bug_fix",
            "prompt": "p",
            "checks": [],
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert api.status_code == 422
    detail = api.json()["detail"]
    assert "'no-such-branch' is not a branch, tag or commit in the mirror" in detail
    for text in (html, detail):
        assert demo_repository.mirror_path not in text and str(settings.DATA_DIR) not in text
        assert ".git" not in text.replace(".github", "")
    assert Task.objects.count() == 0


def test_bad_checks_json_is_refused_and_the_form_keeps_the_input(
    client_for, dave, project, demo_repository
):
    response = client_for(dave).post(
        "/tasks/new/", _form(project, demo_repository, checks='[{"kind": "telepathy"}]')
    )
    body = response.content.decode()
    assert response.status_code == 200 and "Check 1" in body
    assert "Accept (12.50) as a negative amount" in body  # nothing the author typed is lost
    assert Task.objects.count() == 0


def test_prompts_render_markdown_without_raw_html(client_for, dave, project, demo_repository):
    client = client_for(dave)
    client.post("/tasks/new/", _form(project, demo_repository))
    page = client.get(f"/tasks/{Task.objects.get().pk}/").content.decode()
    assert "<code>parse_amount</code>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


def _task(dave, project, demo_repository):
    return actions.do_create_task(
        dave,
        project,
        repository=demo_repository,
        base_ref="main",
        base_commit="a" * 40,
        title="t",
        prompt="p",
        kind="feature",
    )


def test_a_reviewer_approves_or_sends_back_a_draft_with_a_comment(
    client_for, dave, bob, project, demo_repository
):
    task = _task(dave, project, demo_repository)
    client = client_for(bob)
    client.post(
        f"/tasks/{task.pk}/review/", {"decision": "send_back", "comment": "Say which module."}
    )
    task.refresh_from_db()
    assert (
        task.status == TaskStatus.CHANGES_REQUESTED and task.review_comment == "Say which module."
    )
    actions.do_resubmit_task(dave, task)
    client.post(f"/tasks/{task.pk}/review/", {"decision": "approve", "comment": ""})
    task.refresh_from_db()
    assert task.status == TaskStatus.APPROVED
    verbs = list(
        AuditEvent.objects.for_object("tasks.task", task.pk).values_list("verb", flat=True)
    )
    assert verbs == ["task.create", "task.send_back", "task.resubmit", "task.approve"]


def test_sending_back_needs_a_comment_and_approving_twice_is_refused(
    dave, bob, project, demo_repository
):
    task = _task(dave, project, demo_repository)
    with pytest.raises(ValidationError, match="comment is required"):
        actions.do_send_back_task(bob, task, comment=" ")
    actions.do_approve_task(bob, task)
    with pytest.raises(actions.IllegalTransition, match="approved"):
        actions.do_approve_task(bob, task)


def test_authors_cannot_approve_their_own_tasks(make_user, project, demo_repository):
    both = make_user("pat", "author", "reviewer")
    task = _task(both, project, demo_repository)
    with pytest.raises(PermissionDenied):
        actions.do_approve_task(both, task)


def test_annotators_cannot_review_tasks(client_for, alice, dave, project, demo_repository):
    task = _task(dave, project, demo_repository)
    assert (
        client_for(alice).post(f"/tasks/{task.pk}/review/", {"decision": "approve"}).status_code
        == 403
    )
    task.refresh_from_db()
    assert task.status == TaskStatus.DRAFT


def test_editing_an_approved_task_returns_it_to_draft(dave, bob, project, demo_repository):
    task = _task(dave, project, demo_repository)
    actions.do_approve_task(bob, task)
    task = actions.do_update_task(dave, task, {"prompt": "clearer"}, reason="clarify")
    assert task.status == TaskStatus.DRAFT
    event = AuditEvent.objects.get(verb="task.update")
    assert event.old_values == {"prompt": "p", "status": "approved"} and event.reason == "clarify"
