"""Single sign-on in chromium against a real OpenID Connect provider on 127.0.0.1
(django-oidc-provider in its own process, tests/sso/provider): the authorisation-code flow with
PKCE, roles from the provider's groups, a group removed at the provider taking its role away at
the next login, and logging out of Marlin and the provider."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from marlin.accounts.models import SsoIdentity, User
from marlin.audit.models import AuditEvent
from tests.sso.fixtures import (
    IDP_PASSWORD,
    PROVIDER_NAME,
    oidc_provider,  # noqa: F401 (a fixture)
    use_provider,
)


def _sign_in_at_the_provider(page, username: str) -> None:
    page.get_by_label("IdP username").fill(username)
    page.get_by_label("IdP password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to the IdP").click()


def test_an_expert_logs_in_through_the_provider_and_loses_a_role_the_provider_took_away(
    page,
    live_server,
    settings,
    oidc_provider,  # noqa: F811
    transactional_db,
    artifacts_dir,
):
    use_provider(settings, oidc_provider, live_server.url)
    oidc_provider.set_user(
        "alice", IDP_PASSWORD, ["marlin-annotators", "marlin-reviewers"], email="alice@example.org"
    )
    authorisation_requests: list[str] = []
    page.on(
        "request",
        lambda request: (
            authorisation_requests.append(request.url)
            if request.url.startswith(f"{oidc_provider.issuer}/authorize")
            else None
        ),
    )

    page.goto(f"{live_server.url}/account/login/")
    page.screenshot(path=str(artifacts_dir / "sso-login-page.png"))
    page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
    page.get_by_label("IdP username").wait_for()
    _sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{live_server.url}/")

    query = parse_qs(urlsplit(authorisation_requests[0]).query)
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Annotate").is_visible()
    assert nav.get_by_role("link", name="Review queue").is_visible()
    assert nav.get_by_role("link", name="Disputes").count() == 0
    assert page.locator(".who").get_by_role("link", name="alice").is_visible()
    page.screenshot(path=str(artifacts_dir / "sso-logged-in.png"), full_page=True)
    alice = User.objects.get(username="alice")
    assert alice.role_names() == {"annotator", "reviewer"}
    assert SsoIdentity.objects.get(user=alice).issuer == oidc_provider.issuer

    # The provider's admin takes alice out of the reviewers; she logs out and back in.
    oidc_provider.set_user("alice", IDP_PASSWORD, ["marlin-annotators"])
    page.get_by_role("button", name="Log out").click()
    # Marlin's session ends, then the provider's (its end_session_endpoint), which sends the
    # browser back to Marlin's login page.
    page.wait_for_url(f"{live_server.url}/account/login/")
    page.goto(f"{live_server.url}/")
    page.wait_for_url(f"{live_server.url}/account/login/?next=/")

    page.get_by_role("button", name=f"Log in with {PROVIDER_NAME}").click()
    # The provider asks again: its session ended with Marlin's.
    page.get_by_label("IdP username").wait_for()
    _sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{live_server.url}/")

    assert nav.get_by_role("link", name="Annotate").is_visible()
    assert nav.get_by_role("link", name="Review queue").count() == 0
    page.screenshot(path=str(artifacts_dir / "sso-role-removed.png"), full_page=True)
    alice.forget_roles()
    assert alice.role_names() == {"annotator"}
    assert page.goto(f"{live_server.url}/review/queue/").status == 403
    events = list(
        AuditEvent.objects.filter(actor_name__in=["alice", "system"])
        .order_by("sequence")
        .values_list("verb", "new_values", "old_values")
    )
    assert [verb for verb, _, _ in events] == [
        "user.create",
        "user.sso_link",
        "role.grant",
        "role.grant",
        "user.login",
        "user.logout",
        "role.revoke",
        "user.login",
    ]
    assert events[6][2] == {"role": "reviewer"}
