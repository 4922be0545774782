import pytest
from django.contrib import admin
from django.urls import reverse

from marlin.accounts.actions import do_grant_role
from marlin.accounts.models import ApiToken
from marlin.adminsite import MarlinAdminSite
from tests.conftest import PASSWORD

AUTHOR_AND_ADMIN_PAGES = [
    "/tasks/",
    "/tasks/new/",
    "/repositories/",
    "/audit/",
    "/tasks/projects/new/",
]


@pytest.mark.parametrize("url", AUTHOR_AND_ADMIN_PAGES)
def test_annotators_are_refused_author_and_admin_pages(url, client_for, alice):
    assert client_for(alice).get(url).status_code == 403


@pytest.mark.parametrize("url", AUTHOR_AND_ADMIN_PAGES)
def test_users_without_roles_are_refused(url, client_for, mallory):
    assert client_for(mallory).get(url).status_code == 403


def test_the_django_admin_is_for_admins_only(client_for, alice, erin):
    response = client_for(alice).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    do_grant_role(None, erin, "admin")  # syncs is_staff from the role
    assert client_for(erin).get("/admin/").status_code == 200


def test_a_staff_flag_without_the_admin_role_does_not_open_the_django_admin(client_for, make_user):
    # is_staff alone (set by hand, or left over from a revoked role) is not enough.
    mallory = make_user("mallory", "author", is_staff=True)
    response = client_for(mallory).get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert isinstance(admin.site, MarlinAdminSite)


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/tasks/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_login_logout_and_password_change(client, dave):
    page = client.get("/account/login/")
    assert b'name="username"' in page.content
    bad = client.post("/account/login/", {"username": "dave", "password": "wrong"})
    assert bad.status_code == 200 and b"correct username and password" in bad.content
    assert (
        client.post("/account/login/", {"username": "dave", "password": PASSWORD}).status_code
        == 302
    )
    assert client.get("/").status_code == 200
    changed = client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-secret-42",
            "new_password2": "a-much-longer-secret-42",
        },
    )
    assert changed.status_code == 302
    client.post("/account/logout/")
    assert client.get("/").status_code == 302
    assert client.login(username="dave", password="a-much-longer-secret-42")


def test_tokens_are_stored_hashed_shown_once_and_revocable(client_for, alice):
    client = client_for(alice)
    response = client.post("/account/profile/", {"form": "token", "name": "script"})
    token = ApiToken.objects.get(user=alice)
    raw = response.context["new_token"]
    assert raw.startswith("mrl_") and raw.encode() in response.content
    assert raw not in token.token_hash and token.prefix == raw[:12]
    assert ApiToken.authenticate(raw) == alice
    assert raw.encode() not in client.get("/account/profile/").content
    client.post(f"/account/tokens/{token.pk}/revoke/")
    assert ApiToken.authenticate(raw) is None


def test_you_cannot_revoke_someone_elses_token(client_for, alice, mallory):
    token, raw = ApiToken.issue(alice, "mine")
    assert client_for(mallory).post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.authenticate(raw) == alice


def test_profile_edits_are_saved_and_audited(client_for, alice):
    from marlin.audit.models import AuditEvent

    client_for(alice).post(
        "/account/profile/",
        {
            "form": "profile",
            "skills": "Security, backend",
            "languages": "Python; Go",
            "years_experience": 7,
            "bio": "",
        },
    )
    alice.refresh_from_db()
    assert alice.expert_profile.languages == ["go", "python"]
    # alice was made without a profile: her first save creates it.
    assert AuditEvent.objects.filter(verb="profile.create", actor=alice).count() == 1
    client_for(alice).post(
        "/account/profile/",
        {"form": "profile", "skills": "", "languages": "Go", "years_experience": 8, "bio": ""},
    )
    [update] = AuditEvent.objects.filter(verb="profile.update", actor=alice)
    assert update.old_values["years_experience"] == 7 and update.new_values["languages"] == ["go"]


def test_createuser_command_grants_roles(db, capsys):
    from django.core.management import call_command

    from marlin.accounts.models import User

    call_command(
        "createuser",
        "zoe",
        "--role",
        "annotator",
        "--role",
        "reviewer",
        "--password",
        "pw-for-zoe-123",
    )
    zoe = User.objects.get(username="zoe")
    assert zoe.has_role("annotator") and zoe.has_role("reviewer") and not zoe.has_role("admin")
    assert "Created zoe" in capsys.readouterr().out
