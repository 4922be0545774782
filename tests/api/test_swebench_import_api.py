"""POST /api/imports/swebench-tasks: a named registered repository and the per-line report."""

from __future__ import annotations

import json

from marlin.catalog.models import Repository
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Task


def test_the_api_imports_into_a_named_repository_and_reports_every_line(
    client, erin, token_for
) -> None:
    project = task_actions.do_create_project(erin, "API imports")
    repository = Repository.objects.create(
        url="https://example.org/mirrors/calc",
        normalized_url="example.org/mirrors/calc",
        name="mirrors/calc",
        host="example.org",
    )
    record = {
        "instance_id": "octo__calc-1",
        "repo": "octo/calc",
        "base_commit": "a" * 40,
        "title": "add() subtracts",  # no problem_statement: the prompt comes from the title
        "FAIL_TO_PASS": ["tests/test_calc.py::test_add"],
    }
    text = json.dumps(record) + "\n" + json.dumps({"instance_id": "x"}) + "\n"
    body = {"project_id": project.pk, "text": text, "repository": "mirrors/calc"}
    response = client.post(
        "/api/imports/swebench-tasks",
        data=json.dumps(body),
        content_type="application/json",
        headers=token_for(erin),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert [(x["line"], x["instance_id"], x["outcome"]) for x in data["lines"]] == [
        (1, "octo__calc-1", "created"),
        (2, "x", "error"),
    ]
    assert "the prompt is its 'title' field" in data["lines"][0]["reason"]
    assert Task.objects.get().repository == repository
    unknown = client.post(
        "/api/imports/swebench-tasks",
        data=json.dumps(body | {"repository": "nowhere/none"}),
        content_type="application/json",
        headers=token_for(erin),
    )
    assert unknown.status_code == 422 and "no registered repository" in unknown.content.decode()
