"""A project's network policy on its form: the package registries its setup builds may reach
(checked, with a message saying what is wrong) and the host network, set by administrators only
and recorded in the audit log."""

from __future__ import annotations

import json

import pytest
from django.forms.models import model_to_dict

from marlin.audit.models import AuditEvent
from marlin.tasks.actions import do_create_project
from marlin.tasks.forms import ProjectForm
from marlin.tasks.models import Project

pytestmark = pytest.mark.django_db


def form_data(project: Project, **changes: object) -> dict[str, object]:
    data = model_to_dict(project, fields=ProjectForm.Meta.fields)
    data["package_registries"] = json.dumps(data["package_registries"])
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}  # unchecked boxes are not sent


def test_new_projects_reach_pypi_and_npm_only_and_never_the_host(erin) -> None:
    project = do_create_project(erin, "Defaults")

    assert project.package_registries == ["pypi", "npm"]
    assert not project.allow_setup_network and not project.allow_host_network


@pytest.mark.parametrize(
    ("registries", "problem"),
    [
        ('["pypi", "not a registry"]', "must be host:port"),
        ('["mirror.example.com"]', "must be host:port"),
        ('"pypi"', "JSON list of names"),
        ("[1, 2]", "JSON list of names"),
    ],
)
def test_bad_registries_are_refused_with_what_to_write(
    erin, client_for, registries: str, problem: str
) -> None:
    project = do_create_project(erin, "Builds")

    response = client_for(erin).post(
        f"/tasks/projects/{project.pk}/edit/",
        form_data(project, package_registries=registries),
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert problem in page
    if "host:port" in problem:
        assert "Known names: npm, pypi" in page
    project.refresh_from_db()
    assert project.package_registries == ["pypi", "npm"]


def test_an_administrator_sets_the_policy_and_it_is_audited(erin, client_for) -> None:
    project = do_create_project(erin, "Mirrors")

    response = client_for(erin).post(
        f"/tasks/projects/{project.pk}/edit/",
        form_data(
            project,
            package_registries='["pypi", "mirror.example.com:443"]',
            allow_setup_network="on",
            allow_host_network="on",
            reason="internal mirror",
        ),
    )

    assert response.status_code == 302
    project.refresh_from_db()
    assert project.package_registries == ["pypi", "mirror.example.com:443"]
    assert project.allow_setup_network and project.allow_host_network
    event = AuditEvent.objects.filter(verb="project.update", object_id=str(project.pk)).get()
    assert event.actor_name == "erin" and event.reason == "internal mirror"
    assert event.new_values["allow_host_network"] is True
    assert event.new_values["package_registries"] == ["pypi", "mirror.example.com:443"]


def test_only_administrators_change_it(erin, dave, client_for) -> None:
    project = do_create_project(erin, "Locked")

    response = client_for(dave).post(
        f"/tasks/projects/{project.pk}/edit/", form_data(project, allow_host_network="on")
    )

    assert response.status_code == 403
    project.refresh_from_db()
    assert not project.allow_host_network
