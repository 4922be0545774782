"""The Django admin through its pages (issue 11, finding 3).

Before: erin (admin role, not a superuser) saw "You don't have permission to view or edit
anything" and a 403 on every list, while a superuser could edit agents, runs, turns and
repositories with no audit event. Now erin can look at every model, nobody can change a domain
row in the admin, and users and roles change only through the audited accounts actions.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone

from marlin.accounts.actions import do_issue_token
from marlin.accounts.models import (
    ApiToken,
    Earning,
    EarningKind,
    ExpertProfile,
    SsoIdentity,
    User,
)
from marlin.agents.models import Agent, Run, TrajectoryStep, Turn
from marlin.analytics.imports import do_import_judgments
from marlin.audit.models import AuditEvent
from marlin.catalog.jobs import mirror_repository
from marlin.catalog.models import Repository, Tag
from marlin.checks.models import CheckResult
from marlin.exports.models import Export
from marlin.monitoring.workers import beat, new_worker_id
from marlin.review.actions import do_judgment_heartbeat
from marlin.review.models import Claim, Decision, Judgment, Review
from marlin.tasks.models import Environment
from tests.conftest import PASSWORD
from tests.review.factories import make_comparison

REGISTERED = sorted(model._meta.label for model in admin.site._registry)
# The one model the admin changes (through the accounts actions); every other one is read-only.
EDITABLE = {"accounts.User"}


def _url(model: Any, view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def world(erin, alice, bob, carol):
    """A row of every model the admin shows, made the way the product makes them where that is
    cheap, and directly where the row is only the given."""
    comparison = make_comparison()
    project, run = comparison.project, comparison.run_a
    turn = run.turns.get()
    candidate = turn.candidate
    version = project.rubric.current_version()
    Tag.objects.create(name="python")
    Environment.objects.create(repository=comparison.task.repository, commit="0" * 40)
    TrajectoryStep.objects.create(turn=turn, index=0, kind="model", content={"text": "hi"})
    CheckResult.objects.create(candidate=candidate, check_index=0, name="tests", kind="pytest")
    Claim.objects.create(comparison=comparison, annotator=alice)
    judgment = Judgment.objects.create(
        comparison=comparison, annotator=alice, rubric_version=version, overall=-2
    )
    Review.objects.create(judgment=judgment, reviewer=bob, verdict="agree", reason="Sound.")
    do_judgment_heartbeat(alice, comparison)  # alice's work session (server-measured time)
    Decision.objects.create(
        comparison=comparison,
        source="adjudication",
        overall=-2,
        rationale="Side A is right.",
        rubric_version=version,
        decided_by=carol,
    )
    ExpertProfile.objects.create(user=alice, hourly_rate_cents=5000)
    SsoIdentity.objects.create(user=bob, issuer="https://id.example.org", subject="b-1")
    Earning.objects.create(
        user=alice,
        project=project,
        kind=EarningKind.JUDGMENT,
        source_type="review.judgment",
        source_id=str(judgment.pk),
        amount_cents=1000,
    )
    Export.objects.create(project=project, kind="records", created_by=erin)
    arena = '{"model_a": "m1", "model_b": "m2", "winner": "model_a"}\n'
    do_import_judgments(erin, project, arena, filename="arena.jsonl")  # a set and its judgment
    token, raw = do_issue_token(alice, "export script")  # also an audit event and the chain head
    mirror_repository.enqueue(comparison.task.repository_id)  # a row in the job queue
    beat(new_worker_id(), started_at=timezone.now())  # a worker's heartbeat row
    return {"token": token, "raw_token": raw}


def test_every_marlin_model_is_in_the_admin():
    missing = [
        model._meta.label
        for model in apps.get_models()
        if model.__module__.startswith("marlin.") and model not in admin.site._registry
    ]
    assert missing == [], "register these in their app's admin.py (ReadOnlyAdmin)"


def test_djangos_groups_are_not_offered_because_roles_are_marlins_access(client_for, erin):
    assert client_for(erin).get("/admin/auth/group/").status_code == 404


@pytest.mark.parametrize("label", REGISTERED)
def test_the_admin_role_opens_every_list_and_row_and_cannot_change_them(
    label, world, client_for, erin
):
    model = apps.get_model(label)
    client = client_for(erin)
    index = client.get("/admin/").content.decode()
    assert "You don’t have permission to view or edit anything" not in index
    assert _url(model, "changelist") in index

    changelist = client.get(_url(model, "changelist"))
    assert changelist.status_code == 200
    row = model._default_manager.first()
    assert row is not None, f"the world fixture needs a row of {label}"
    change_url = _url(model, "change", quote(row.pk))
    page = client.get(change_url)
    assert page.status_code == 200

    secrets = [world["raw_token"], world["token"].token_hash]
    secrets += list(User.objects.values_list("password", flat=True))
    for html in (changelist.content.decode(), page.content.decode()):
        assert not [secret for secret in secrets if secret in html]
    if label in EDITABLE:
        return
    assert 'name="_save"' not in page.content.decode()
    before = AuditEvent.objects.count(), model._default_manager.count()
    assert client.post(change_url, {"name": "changed"}).status_code == 403
    assert client.post(_url(model, "add"), {"name": "new"}).status_code == 403
    assert client.post(_url(model, "delete", quote(row.pk)), {"post": "yes"}).status_code == 403
    assert (AuditEvent.objects.count(), model._default_manager.count()) == before


@pytest.mark.parametrize("url", ["/admin/", "/admin/agents/agent/", "/admin/accounts/user/"])
def test_a_staff_flag_without_the_admin_role_opens_nothing(url, client_for, make_user):
    mallory = make_user("mallory", "annotator", is_staff=True)
    response = client_for(mallory).get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_superuser_cannot_edit_agents_runs_turns_or_repositories(world, client_for, make_user):
    root = make_user("root", is_staff=True, is_superuser=True)
    client = client_for(root)
    agent = Agent.objects.first()
    run, turn, repository = Run.objects.first(), Turn.objects.first(), Repository.objects.first()
    assert agent and run and turn and repository
    edits: list[tuple[Any, dict[str, Any]]] = [
        (agent, {"name": "renamed", "version_label": "9", "provider": "import", "is_active": "on"}),
        (run, {"task": run.task_id, "agent": run.agent_id, "status": "failed", "error": "x"}),
        (turn, {"run": turn.run_id, "number": 1, "prompt": "Delete the tests.", "status": "done"}),
        (repository, {"url": "https://127.0.0.1:5432/x/y", "name": "x/y", "stars": 1}),
    ]
    events, log_entries = AuditEvent.objects.count(), LogEntry.objects.count()
    for row, data in edits:
        before = type(row).objects.values().get(pk=row.pk)
        response = client.post(_url(type(row), "change", row.pk), data)
        assert response.status_code == 403
        assert type(row).objects.values().get(pk=row.pk) == before
        delete = client.post(_url(type(row), "delete", row.pk), {"post": "yes"})
        assert delete.status_code == 403 and type(row).objects.filter(pk=row.pk).exists()
    changelist = client.post(
        _url(Agent, "changelist"), {"action": "delete_selected", "_selected_action": [agent.pk]}
    )
    assert changelist.status_code in (200, 302) and Agent.objects.filter(pk=agent.pk).exists()
    assert (AuditEvent.objects.count(), LogEntry.objects.count()) == (events, log_entries)


def _events(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb).order_by("sequence"))


def _change(user: User, **fields: Any) -> dict[str, Any]:
    """What the user's change page posts when nothing is edited, with `fields` edited."""
    profile = ExpertProfile.objects.filter(user=user).first()
    rate = profile.hourly_rate_cents if profile and profile.hourly_rate_cents is not None else ""
    data = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on" if user.is_active else "",
        "roles": sorted(user.role_grants.values_list("role", flat=True)),
        "hourly_rate_cents": rate,
        "reason": "",
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value != ""}


def test_an_admin_creates_a_user_with_roles_and_the_audit_log_names_them(client_for, erin):
    response = client_for(erin).post(
        _url(User, "add"),
        {
            "username": "frank",
            "email": "frank@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "roles": ["annotator", "reviewer"],
            "reason": "Joins the Rust pilot.",
        },
    )
    assert response.status_code == 302
    frank = User.objects.get(username="frank")
    assert frank.check_password(PASSWORD) and not frank.is_staff
    assert frank.has_role("annotator") and frank.has_role("reviewer")
    assert ExpertProfile.objects.filter(user=frank).exists()
    created = _events("user.create")
    grants = _events("role.grant")
    assert [(e.actor_id, e.object_id, e.reason) for e in created] == [
        (erin.pk, str(frank.pk), "Joins the Rust pilot.")
    ]
    assert sorted(e.new_values["role"] for e in grants) == ["annotator", "reviewer"]
    assert {(e.actor_id, e.reason) for e in grants} == {(erin.pk, "Joins the Rust pilot.")}


@pytest.mark.parametrize(
    ("username", "password2", "reason", "error"),
    [
        ("=1+cmd", PASSWORD, "Pilot.", "valid username"),
        ("<svg onload=alert(1)>", PASSWORD, "Pilot.", "valid username"),
        ("alice", PASSWORD, "Pilot.", "A user with that username already exists"),
        ("ALICE", PASSWORD, "Pilot.", "A user with that username already exists"),
        ("frank", PASSWORD + "x", "Pilot.", "The two password fields didn’t match"),
        ("frank", PASSWORD, "", "This field is required"),
    ],
)
def test_a_bad_new_user_is_refused_with_a_message_and_nothing_is_written(
    username, password2, reason, error, client_for, erin, alice
):
    users, events = User.objects.count(), AuditEvent.objects.count()
    response = client_for(erin).post(
        _url(User, "add"),
        {
            "username": username,
            "password1": PASSWORD,
            "password2": password2,
            "roles": ["annotator"],
            "reason": reason,
        },
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    assert (User.objects.count(), AuditEvent.objects.count()) == (users, events)


def test_an_admin_grants_and_revokes_roles_with_a_reason_in_the_audit_log(client_for, erin, alice):
    url = _url(User, "change", alice.pk)
    response = client_for(erin).post(
        url, _change(alice, roles=["reviewer"], reason="Promoted to reviewer for the pilot.")
    )
    assert response.status_code == 302
    alice.forget_roles()
    assert alice.has_role("reviewer") and not alice.has_role("annotator")
    [grant], [revoke] = _events("role.grant"), _events("role.revoke")
    assert (grant.actor_id, grant.object_id, grant.new_values) == (
        erin.pk,
        str(alice.pk),
        {"role": "reviewer"},
    )
    assert (revoke.old_values, revoke.reason) == (
        {"role": "annotator"},
        "Promoted to reviewer for the pilot.",
    )


def test_granting_the_admin_role_in_the_admin_opens_the_admin_and_is_audited(
    client_for, erin, alice
):
    client_for(erin).post(
        _url(User, "change", alice.pk),
        _change(alice, roles=["admin", "annotator"], reason="Covers for erin."),
    )
    alice.refresh_from_db()
    assert alice.is_staff and [e.new_values for e in _events("role.grant")] == [{"role": "admin"}]
    assert client_for(alice).get("/admin/agents/agent/").status_code == 200


def test_deactivating_a_user_is_audited_and_ends_their_sessions_and_tokens(
    client, client_for, erin, alice
):
    _, raw = do_issue_token(alice, "script")
    client_for(erin).post(
        _url(User, "change", alice.pk), _change(alice, is_active="", reason="Left the project.")
    )
    alice.refresh_from_db()
    assert not alice.is_active
    [event] = _events("user.deactivate")
    assert (event.actor_id, event.object_id, event.reason) == (
        erin.pk,
        str(alice.pk),
        "Left the project.",
    )
    client.logout()
    assert not client.login(username="alice", password=PASSWORD)
    assert ApiToken.authenticate(raw) is None


def test_name_email_and_hourly_rate_changes_are_audited(client_for, erin, alice):
    client_for(erin).post(
        _url(User, "change", alice.pk),
        _change(
            alice,
            email="alice@example.com",
            first_name="Alice",
            hourly_rate_cents=7500,
            reason="Senior rate from May.",
        ),
    )
    alice.refresh_from_db()
    assert (alice.email, alice.first_name) == ("alice@example.com", "Alice")
    assert ExpertProfile.objects.get(user=alice).hourly_rate_cents == 7500
    [update] = _events("user.update")
    assert update.new_values["email"] == "alice@example.com" and update.actor_id == erin.pk
    # alice was made without a profile (like createsuperuser's users): the rate creates it.
    [profile] = _events("profile.create")
    assert (profile.new_values, profile.reason) == (
        {"hourly_rate_cents": 7500},
        "Senior rate from May.",
    )
    client_for(erin).post(
        _url(User, "change", alice.pk), _change(alice, hourly_rate_cents="", reason="Back to it.")
    )
    assert ExpertProfile.objects.get(user=alice).hourly_rate_cents is None
    [update] = _events("profile.update")
    assert (update.old_values, update.new_values) == (
        {"hourly_rate_cents": 7500},
        {"hourly_rate_cents": None},
    )


def test_a_change_without_a_reason_is_refused_and_changes_nothing(client_for, erin, alice):
    response = client_for(erin).post(_url(User, "change", alice.pk), _change(alice, roles=[]))
    assert response.status_code == 200
    assert "it goes into the audit log" in response.content.decode()
    alice.forget_roles()
    assert alice.has_role("annotator") and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        ({"roles": ["annotator"]}, "You cannot remove your own admin role"),
        ({"is_active": ""}, "You cannot deactivate yourself"),
    ],
)
def test_an_admin_cannot_lock_themselves_out(edit, error, client_for, erin):
    response = client_for(erin).post(
        _url(User, "change", erin.pk), _change(erin, reason="Oops.", **edit)
    )
    assert response.status_code == 200 and error in response.content.decode()
    erin.refresh_from_db()
    erin.forget_roles()
    assert erin.is_active and erin.has_role("admin") and not AuditEvent.objects.exists()


def test_users_are_deactivated_not_deleted(client_for, erin, alice):
    response = client_for(erin).post(_url(User, "delete", alice.pk), {"post": "yes"})
    assert response.status_code == 403 and User.objects.filter(pk=alice.pk).exists()


def test_superuser_staff_and_password_cannot_be_set_from_the_user_page(client_for, erin, alice):
    old_hash = alice.password
    response = client_for(erin).post(
        _url(User, "change", alice.pk),
        _change(
            alice,
            is_superuser="on",
            is_staff="on",
            password="md5$x$y",
            username="root",
            reason="Trying the side doors.",
        ),
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert (alice.is_superuser, alice.is_staff, alice.password, alice.username) == (
        False,
        False,
        old_hash,
        "alice",
    )
    assert not AuditEvent.objects.exists()  # nothing the page may change was changed
    # No page sets someone else's password (Django's UserAdmin has one; Marlin's does not).
    page = client_for(erin).get(f"/admin/accounts/user/{alice.pk}/password/", follow=True)
    assert 'name="password1"' not in page.content.decode()


def test_the_role_grant_list_is_read_only_roles_change_on_the_user_page(client_for, erin, alice):
    client = client_for(erin)
    grant = alice.role_grants.get()
    assert client.get(_url(type(grant), "changelist") + "?role=annotator").status_code == 200
    assert client.post(_url(type(grant), "delete", grant.pk), {"post": "yes"}).status_code == 403
    assert alice.role_grants.exists()


def test_the_user_list_shows_roles_and_filters_by_role(client_for, erin, alice, bob):
    page = client_for(erin).get(_url(User, "changelist") + "?role_grants__role=reviewer")
    html = page.content.decode()
    assert page.status_code == 200 and "bob" in html and ">alice<" not in html
