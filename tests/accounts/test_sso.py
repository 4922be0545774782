"""Single sign-on against a real OpenID Connect provider (django-oidc-provider, a second Django
process on 127.0.0.1): Marlin is driven through Django's test client, the provider through
HTTP as a browser would. The browser walk-through is tests/e2e/test_sso_e2e.py."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from marlin.accounts.actions import do_grant_role, do_issue_token, do_set_user_active
from marlin.accounts.models import SsoIdentity, User
from marlin.audit.models import AuditEvent
from tests.conftest import PASSWORD
from tests.sso.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    IDP_PASSWORD,
    oidc_provider,  # noqa: F401 (a fixture)
    sign_in_at_provider,
    use_provider,
)

MARLIN = "http://testserver"


@pytest.fixture
def sso(settings, oidc_provider, db):  # noqa: F811
    use_provider(settings, oidc_provider, MARLIN)
    return oidc_provider


@pytest.fixture
def sso_only(settings, oidc_provider, db):  # noqa: F811
    use_provider(settings, oidc_provider, MARLIN, only=True)
    return oidc_provider


def start(client) -> str:
    """Click "Log in with …": Marlin answers with the provider's authorisation URL."""
    response = client.get("/account/sso/start/")
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def log_in(client, username: str):
    return client.get(sign_in_at_provider(start(client), username))


def logged_in_user_id(client) -> int | None:
    value = client.session.get("_auth_user_id")
    return int(value) if value else None


def verbs() -> list[str]:
    return list(AuditEvent.objects.order_by("sequence").values_list("verb", flat=True))


def test_a_first_login_creates_the_account_with_the_roles_its_groups_map_to(client, sso):
    subject = sso.set_user(
        "alice",
        IDP_PASSWORD,
        ["marlin-annotators", "marlin-leads", "payroll"],
        email="alice@example.org",
        first_name="Alice",
    )
    authorize = start(client)
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{sso.issuer}/authorize?")
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == [CLIENT_ID] and "nonce" in query and "state" in query

    response = client.get(sign_in_at_provider(authorize, "alice"))

    assert response.status_code == 302 and response["Location"] == "/"
    alice = User.objects.get(username="alice")
    assert logged_in_user_id(client) == alice.pk
    assert alice.role_names() == {"annotator", "reviewer", "adjudicator"}
    assert (alice.email, alice.first_name) == ("alice@example.org", "Alice")
    assert not alice.has_usable_password()
    identity = SsoIdentity.objects.get(user=alice)
    assert (identity.issuer, identity.subject) == (sso.issuer, subject)
    assert verbs() == [
        "user.create",
        "user.sso_link",
        "user.update",
        "role.grant",
        "role.grant",
        "role.grant",
        "user.login",
    ]
    login = AuditEvent.objects.get(verb="user.login")
    assert login.actor == alice and login.new_values == {"method": "sso", "issuer": sso.issuer}
    assert client.get("/").status_code == 200
    profile = client.get("/account/profile/").content
    assert (
        b"Change your password" not in profile and b"You log in through single sign-on" in profile
    )


def test_the_code_alone_is_worthless_without_the_pkce_verifier_marlin_kept(client, sso):
    sso.set_user("alice", IDP_PASSWORD, [])
    callback = sign_in_at_provider(start(client), "alice")
    code = parse_qs(urlsplit(callback).query)["code"][0]

    # Someone who saw the redirect, and even holds the client secret, cannot redeem the code.
    stolen = requests.post(
        f"{sso.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{MARLIN}/account/sso/callback/",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        timeout=30,
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"

    assert client.get(callback).status_code == 302
    assert logged_in_user_id(client) == User.objects.get(username="alice").pk


def test_groups_the_role_map_does_not_name_give_no_role(client, sso):
    sso.set_user("mallory", IDP_PASSWORD, ["payroll", "marlin-annotators-archive"])

    assert log_in(client, "mallory").status_code == 302

    mallory = User.objects.get(username="mallory")
    assert mallory.role_names() == frozenset()
    assert "role.grant" not in verbs()
    assert client.get("/tasks/").status_code == 403


def test_a_group_removed_at_the_provider_takes_its_role_away_at_the_next_login(client, sso, erin):
    sso.set_user("bob", IDP_PASSWORD, ["marlin-reviewers", "marlin-annotators"])
    assert log_in(client, "bob").status_code == 302
    bob = User.objects.get(username="bob")
    assert bob.role_names() == {"reviewer", "annotator"}
    # A role the map never names is the admin's to give and take.
    do_grant_role(erin, bob, "author", reason="writes tasks for the Go project")
    assert client.post("/account/logout/").status_code == 302

    sso.set_user("bob", IDP_PASSWORD, ["marlin-annotators"])
    assert log_in(client, "bob").status_code == 302

    bob.forget_roles()
    assert bob.role_names() == {"annotator", "author"}
    revoked = AuditEvent.objects.get(verb="role.revoke")
    assert revoked.old_values == {"role": "reviewer"} and revoked.actor is None
    assert "no group maps to reviewer" in revoked.reason
    assert verbs()[-3:] == ["user.logout", "role.revoke", "user.login"]


def test_an_answer_for_a_login_this_browser_did_not_start_is_refused(client, sso):
    sso.set_user("mallory", IDP_PASSWORD, ["marlin-leads"])
    callback = urlsplit(sign_in_at_provider(start(client), "mallory"))
    query = parse_qs(callback.query)

    forged_state = {"code": query["code"][0], "state": "x" + query["state"][0]}
    response = client.get(f"/account/sso/callback/?{urlencode(forged_state)}")
    assert response.status_code == 400
    assert b"does not belong to a login started in this browser" in response.content

    # The real answer, opened in another browser (login CSRF): that browser started no login.
    other_browser = Client()
    response = other_browser.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 400 and b"this browser started no login" in response.content

    assert logged_in_user_id(client) is None and logged_in_user_id(other_browser) is None
    assert not User.objects.filter(username="mallory").exists()
    failures = AuditEvent.objects.filter(verb="user.login_failed")
    assert [event.new_values["method"] for event in failures] == ["sso", "sso"]


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        ("aud", "another-client", b"Audience doesn"),
        ("iss", "http://127.0.0.1:9/openid", b"Invalid issuer"),
    ],
)
def test_an_id_token_for_another_client_or_from_another_issuer_is_refused(
    client, sso, claim, value, message
):
    sso.set_user("mallory", IDP_PASSWORD, ["marlin-leads"])
    sso.override_id_tokens(**{claim: value})  # still signed with the provider's key

    response = log_in(client, "mallory")

    assert response.status_code == 403 and message in response.content
    assert b"Single sign-on did not log you in" in response.content
    assert logged_in_user_id(client) is None
    assert not User.objects.filter(username="mallory").exists()
    failure = AuditEvent.objects.get(verb="user.login_failed")
    assert failure.new_values["method"] == "sso" and "ID token was refused" in failure.reason


def test_a_first_login_does_not_take_over_a_local_account_of_the_same_name(
    client, sso, dave, settings
):
    sso.set_user("dave", IDP_PASSWORD, ["marlin-leads"])

    response = log_in(client, "dave")
    assert response.status_code == 403
    assert b"already exists and is not linked to this sign-in" in response.content
    assert logged_in_user_id(client) is None
    assert not SsoIdentity.objects.exists() and dave.role_names() == {"author"}

    settings.OIDC_LINK_EXISTING = True  # the operator moves this instance to single sign-on
    assert log_in(client, "dave").status_code == 302
    assert SsoIdentity.objects.get().user == dave and logged_in_user_id(client) == dave.pk
    dave.forget_roles()
    assert dave.role_names() == {"author", "reviewer", "adjudicator"}


def test_a_refusal_by_the_provider_is_shown_and_audited(client, sso):
    state = parse_qs(urlsplit(start(client)).query)["state"][0]
    answer = {"error": "access_denied", "error_description": "The user cancelled", "state": state}

    response = client.get(f"/account/sso/callback/?{urlencode(answer)}")

    assert response.status_code == 400 and b"The user cancelled" in response.content
    assert AuditEvent.objects.get(verb="user.login_failed").new_values["method"] == "sso"


def test_a_discovery_document_naming_another_issuer_is_refused(client, sso, settings):
    settings.OIDC_ISSUER = sso.issuer + "/"  # the usual slip: a trailing slash

    response = client.get("/account/sso/start/")

    assert response.status_code == 502
    assert b"names the issuer" in response.content and b"MARLIN_OIDC_ISSUER" in response.content


def test_logging_out_ends_the_session_and_goes_to_the_providers_end_session(client, sso):
    sso.set_user("alice", IDP_PASSWORD, ["marlin-annotators"])
    log_in(client, "alice")
    id_token = client.session["oidc_id_token"]

    response = client.post("/account/logout/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{sso.issuer}/end-session"
    query = parse_qs(location.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == [f"{MARLIN}/account/login/"]
    assert logged_in_user_id(client) is None
    assert client.get("/").status_code == 302  # back to the login page


def test_password_logins_and_failed_ones_are_audited(client, dave, erin):
    assert (
        client.post("/account/login/", {"username": "dave", "password": "wrong"}).status_code == 200
    )
    assert (
        client.post("/account/login/", {"username": "dave", "password": PASSWORD}).status_code
        == 302
    )

    failed = AuditEvent.objects.get(verb="user.login_failed")
    assert failed.new_values == {"method": "password", "username": "dave"}
    assert failed.object_id == str(dave.pk) and failed.actor is None
    assert "wrong" not in str(failed.new_values) + failed.reason
    login = AuditEvent.objects.get(verb="user.login")
    assert login.actor == dave and login.new_values == {"method": "password"}
    client.post("/account/logout/")
    client.post("/account/login/", {"username": "nobody", "password": "guess"})
    assert AuditEvent.objects.filter(verb="user.login_failed").count() == 2

    client.force_login(erin)
    log = client.get("/audit/").content.decode()
    assert "user.login_failed" in log and "nobody" in log


def test_with_password_login_off_the_page_offers_only_single_sign_on(client, sso_only, dave):
    page = client.get("/account/login/")
    assert b"Log in with Test IdP" in page.content and b'name="password"' not in page.content

    response = client.post("/account/login/", {"username": "dave", "password": PASSWORD})

    assert response.status_code == 403
    assert b"Password login is turned off on this server" in response.content
    assert logged_in_user_id(client) is None
    failed = AuditEvent.objects.get(verb="user.login_failed")
    assert failed.new_values == {"method": "password", "username": "dave"}
    assert failed.reason == "password login is turned off"
    # API tokens are not passwords: scripts and the `marlin` client keep working.
    _, raw = do_issue_token(dave, "nightly export")
    assert client.get("/api/tasks", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_the_django_admin_sends_visitors_to_marlins_login_page(client):
    response = client.get("/admin/login/?next=/admin/")
    assert (
        response.status_code == 302 and response["Location"] == "/account/login/?next=%2Fadmin%2F"
    )


def test_settings_that_would_lock_everyone_out_stop_the_server(settings):
    settings.OIDC_ONLY, settings.OIDC_ENABLED = True, False
    settings.OIDC_ROLE_MAP = ["marlin-annotators=annotator", "marlin-ops=superhero"]

    with pytest.raises(SystemCheckError) as refused:
        call_command("check")

    assert "nobody could log in" in str(refused.value)
    assert "unknown role 'superhero'" in str(refused.value)


def test_turning_password_login_off_ends_the_sessions_made_with_a_password(
    client, sso, dave, settings
):
    assert (
        client.post("/account/login/", {"username": "dave", "password": PASSWORD}).status_code
        == 302
    )
    assert client.get("/").status_code == 200

    use_provider(settings, sso, MARLIN, only=True)  # the operator sets MARLIN_OIDC_ONLY=1

    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/account/login/")


def test_deactivating_an_sso_account_ends_its_session_and_refuses_its_next_login(client, sso, erin):
    sso.set_user("mallory", IDP_PASSWORD, ["marlin-annotators"])
    log_in(client, "mallory")
    mallory = User.objects.get(username="mallory")
    assert client.get("/").status_code == 200

    do_set_user_active(erin, mallory, False, reason="left the company")

    assert client.get("/").status_code == 302
    response = log_in(client, "mallory")
    assert response.status_code == 403 and b"Your Marlin account is deactivated" in response.content
    assert client.get("/").status_code == 302


@pytest.mark.parametrize(
    ("asked", "lands_on"),
    [("/leaderboard/", "/leaderboard/"), ("https://evil.example/phish", "/")],
)
def test_a_login_goes_back_to_the_page_asked_for_when_it_is_marlins(client, sso, asked, lands_on):
    sso.set_user("alice", IDP_PASSWORD, ["marlin-annotators"])
    response = client.get("/account/sso/start/", {"next": asked})
    assert response.status_code == 302

    answer = client.get(sign_in_at_provider(response["Location"], "alice"))

    assert answer.status_code == 302 and answer["Location"] == lands_on
