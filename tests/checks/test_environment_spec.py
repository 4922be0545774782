"""Environments built the way a spec says (issue 13, item 2): a venv made by uv on the Python
version the spec names, found on this worker and mounted read-only; steps that need the system
package manager reported on the task page, not skipped in silence; a missing interpreter is a
failed environment whose log says how to provide it.

Runs the check jobs for real (bwrap, the demo repository's mirror, uv, the worker's pythons).
Nothing is downloaded: the specs install nothing from the package registry."""

from __future__ import annotations

import json

import pytest

from marlin.accounts.models import ApiToken
from marlin.catalog.models import Repository
from marlin.checks.jobs import enqueue_checks, run_candidate_checks
from marlin.checks.models import CheckResult
from marlin.sandbox.interpreters import InterpreterNotFound, find_interpreter
from marlin.tasks.jobs import build_environment, environment_for
from marlin.tasks.models import EnvironmentStatus, Task
from tests.checks.scenario import demo_patches, demo_task, make_candidate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

APT = "apt-get update && apt-get install -y locales"
CHECK_PYTHON = (
    "python -c 'import sys; assert sys.version_info[:2] == (3, 9), sys.version; "
    'print("python", sys.version.split()[0], sys.prefix)\' && cat pre-install.txt built.txt'
)


def _python39() -> None:
    try:
        find_interpreter("3.9")
    except InterpreterNotFound as exc:
        pytest.skip(f"this worker has no Python 3.9: {exc}")


def _with_spec(spec: dict, checks: list[dict], setup: str = ""):  # type: ignore[no-untyped-def]
    task = demo_task(checks=checks, setup_command=setup)
    task.environment_spec = spec
    task.save(update_fields=["environment_spec"])
    return task


def test_a_spec_builds_a_venv_on_its_python_and_reports_what_it_cannot_run(
    dave, client_for
) -> None:  # type: ignore[no-untyped-def]
    _python39()
    spec = {
        "python": "3.9",
        "pre_install": [APT, "echo pre-install ran > pre-install.txt"],
        "install": "python -c 'import sys; print(sys.version_info[:2])' > built.txt",
    }
    task = _with_spec(spec, [{"kind": "command", "name": "python 3.9", "command": CHECK_PYTHON}])
    task.created_by = dave
    task.save(update_fields=["created_by"])
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)

    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.READY, environment.log
    assert environment.unsupported == [
        f"pre_install `{APT}`: needs the system package manager or system tools (apt-get)"
    ]
    assert f"[not run here: pre_install `{APT}`" in environment.log
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "passed", row.log + row.detail
    # The venv's python is 3.9 (the check asserted it), at /env; the pre_install step and the
    # install command ran in the checkout the check sees.
    assert "python 3.9." in row.log and " /env" in row.log
    assert "pre-install ran" in row.log and "(3, 9)" in row.log

    page = client_for(dave).get(f"/tasks/{task.pk}/").content.decode()
    assert "built from the environment spec on Python 3.9" in page
    assert 'id="environment-unsupported"' in page
    assert "needs the system package manager" in page


def test_a_python_the_worker_does_not_have_fails_the_environment_saying_how_to_get_it() -> None:
    task = _with_spec(
        {"python": "3.1", "install": "true"},
        [{"kind": "command", "name": "anything", "command": "true"}],
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)
    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.FAILED
    assert "Python 3.1 is not installed on this worker" in environment.log
    assert "uv python install 3.1" in environment.log
    assert "MARLIN_PYTHON_INTERPRETERS='3.1=/path/to/bin/python3.1'" in environment.log
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "error" and "the environment is failed" in row.detail


def test_a_configured_interpreter_that_is_not_that_version_is_named(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PYTHON_INTERPRETERS = "3.8=/usr/bin/true"
    task = _with_spec({"python": "3.8"}, [])
    environment = environment_for(task)
    assert build_environment.call(environment.pk) == "failed"
    environment.refresh_from_db()
    assert "MARLIN_PYTHON_INTERPRETERS names /usr/bin/true for Python 3.8" in environment.log


def test_the_same_setup_with_another_spec_is_another_environment() -> None:
    plain = demo_task(checks=[], setup_command="true")
    specced = _with_spec({"python": "3.9"}, [], setup="true")
    assert environment_for(plain) != environment_for(specced)
    assert environment_for(specced).spec == {"python": "3.9"}


def test_an_author_types_the_spec_in_the_task_form_and_mistakes_are_named(dave, client_for) -> None:  # type: ignore[no-untyped-def]
    existing = demo_task(checks=[])
    repository = Repository.objects.get(pk=existing.repository_id)
    client = client_for(dave)
    form = {
        "project": existing.project_id,
        "repository": repository.pk,
        "base_ref": existing.base_commit,
        "title": "with a spec",
        "kind": "bug_fix",
        "prompt": "Fix it.",
        "setup_command": "",
        "checks": "",
    }
    bad = client.post("/tasks/new/", {**form, "environment_spec": '{"python": "three"}'})
    assert bad.status_code == 200
    assert "python must be a version such as &#x27;3.9&#x27;" in bad.content.decode()
    not_object = client.post("/tasks/new/", {**form, "environment_spec": '["3.9"]'})
    assert "must be a JSON object" in not_object.content.decode()
    assert not Task.objects.filter(title="with a spec").exists()

    spec = {"python": "3.9", "pip_packages": ["pytest==7.4.0"], "install": "pip install -e ."}
    good = client.post("/tasks/new/", {**form, "environment_spec": json.dumps(spec)})
    assert good.status_code == 302, good.content.decode()[:2000]
    task = Task.objects.get(title="with a spec")
    assert task.environment_spec == spec
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "Environment spec" in page and "pytest==7.4.0" in page


def test_the_api_takes_the_spec_validates_it_and_returns_it(client, dave) -> None:  # type: ignore[no-untyped-def]
    existing = demo_task(checks=[])
    _, raw = ApiToken.issue(dave, "tests")
    headers = {"Authorization": f"Bearer {raw}"}
    body = {
        "project_id": existing.project_id,
        "repository_id": existing.repository_id,
        "base_ref": existing.base_commit,
        "title": "spec over the API",
        "prompt": "Fix it.",
    }
    bad = client.post(
        "/api/tasks",
        {**body, "environment_spec": {"python": "3.x"}},
        content_type="application/json",
        headers=headers,
    )
    assert bad.status_code == 422
    assert "python must be a version such as '3.9'" in bad.json()["detail"]
    spec = {"python": "3.11", "pre_install": ["apt-get install -y graphviz"]}
    made = client.post(
        "/api/tasks",
        {**body, "environment_spec": spec},
        content_type="application/json",
        headers=headers,
    )
    assert made.status_code == 201, made.content
    assert made.json()["environment_spec"] == spec
    got = client.get(f"/api/tasks/{made.json()['id']}", headers=headers).json()
    assert got["environment_spec"] == spec
