"""Fixtures for the single sign-on tests: a real provider (tests.sso.provider) and Marlin
configured against it, plus the provider side of a login done with `requests` (for the tests
that drive Marlin through Django's test client rather than a browser)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from tests.sso.provider.running import Provider, running_provider

CLIENT_ID = "marlin"
CLIENT_SECRET = "test-client-secret-not-for-production"
PROVIDER_NAME = "Test IdP"
ROLE_MAP = [
    "marlin-annotators=annotator",
    "marlin-reviewers=reviewer",
    # One group may map to several roles, and a role may come from several groups.
    "marlin-leads=reviewer",
    "marlin-leads=adjudicator",
]
IDP_PASSWORD = "idp-password-for-tests"


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(tmp_path_factory.mktemp("oidc-provider")) as provider:
        yield provider


def use_provider(settings, provider: Provider, marlin_url: str, *, only: bool = False) -> None:
    """Point Marlin (its settings, for this test) at the provider, and register Marlin's URLs
    there as the provider's operator would."""
    provider.set_client(
        CLIENT_ID,
        CLIENT_SECRET,
        redirect_uris=[f"{marlin_url}/account/sso/callback/"],
        logout_uris=[f"{marlin_url}/account/login/"],
    )
    provider.override_id_tokens()
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_ENABLED = True
    settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
    settings.OIDC_RP_SCOPES = "openid email profile groups"
    settings.OIDC_ROLE_MAP = ROLE_MAP
    settings.OIDC_ONLY = only
    settings.AUTHENTICATION_BACKENDS = [
        "marlin.accounts.sso.SsoBackend",
        *([] if only else ["django.contrib.auth.backends.ModelBackend"]),
    ]


def sign_in_at_provider(authorize_url: str, username: str, password: str = IDP_PASSWORD) -> str:
    """What a browser does at the provider after Marlin sent it there: log in, and follow the
    provider back. Returns the URL the provider sends the browser to (Marlin's callback)."""
    browser = requests.Session()
    answer = browser.get(authorize_url, allow_redirects=False, timeout=30)
    assert answer.status_code == 302, answer.text[:500]
    login_url = urljoin(authorize_url, answer.headers["Location"])
    browser.get(login_url, timeout=30).raise_for_status()
    next_url = parse_qs(urlsplit(login_url).query)["next"][0]
    answer = browser.post(
        login_url,
        data={
            "username": username,
            "password": password,
            "next": next_url,
            "csrfmiddlewaretoken": browser.cookies["provider_csrftoken"],
        },
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:500]
    answer = browser.get(urljoin(login_url, answer.headers["Location"]), allow_redirects=False)
    assert answer.status_code == 302, answer.text[:500]
    return answer.headers["Location"]
