"""Single sign-on with OpenID Connect: the authorisation-code flow with PKCE, through
mozilla-django-oidc (docs/decisions/0013-single-sign-on.md).

The library does the flow: state, nonce and PKCE verifier kept in the session, the code
exchanged at the token endpoint, the ID token's signature checked against the provider's JWKS.
This module adds what Marlin needs around it:

- the endpoints come from the issuer's discovery document, fetched when a login first needs them
  (never at import, never on a request that does not log in) and kept for an hour;
- the ID token's issuer, audience and expiry are checked (the library checks only the
  signature and the nonce), and the userinfo answer must be about the same subject;
- the person is found by (issuer, subject), and their roles follow their groups through the
  role map (`MARLIN_OIDC_ROLE_MAP`), in `actions.do_sso_login`.

Every refusal is an `SsoRefused` or `ProviderUnavailable` carrying a sentence for the person;
the views turn it into a page and an audit event.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core import checks
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from marlin.accounts.actions import SsoPerson, SsoRefused, do_sso_login
from marlin.accounts.models import Role, User

logger = logging.getLogger(__name__)

DISCOVERY_TTL_SECONDS = 3600
# Clocks of two servers differ a little; an ID token is accepted this many seconds early or late.
CLOCK_SKEW_SECONDS = 60


class ProviderUnavailable(Exception):
    """The identity provider could not be asked (down, misconfigured, wrong answer)."""


_discovery_lock = threading.Lock()
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


def uses_discovery() -> bool:
    # Naming the authorisation endpoint means naming them all (checked by `check_sso_settings`).
    return not settings.OIDC_OP_AUTHORIZATION_ENDPOINT


def provider_metadata() -> dict[str, Any]:
    """The issuer's discovery document (OpenID Connect Discovery 1.0), cached per process."""
    issuer = settings.OIDC_ISSUER
    with _discovery_lock:
        cached = _discovered.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ProviderUnavailable(
            f"The identity provider's discovery document at {url} could not be read ({exc})."
        ) from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        # Discovery 4.3: the document must name the issuer it was asked for.
        found = document.get("issuer") if isinstance(document, dict) else None
        raise ProviderUnavailable(
            f"The discovery document at {url} names the issuer {found!r}, not "
            f"MARLIN_OIDC_ISSUER {issuer!r}."
        )
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), document)
    return document


def endpoint(setting: str, metadata_key: str, *, required: bool = True) -> str:
    """An endpoint's URL: the setting when discovery is off, else the discovery document's."""
    if not uses_discovery():
        value = getattr(settings, setting, "")
    else:
        value = provider_metadata().get(metadata_key) or ""
    if required and not value:
        raise ProviderUnavailable(f"The identity provider names no {metadata_key}.")
    return str(value)


def role_map() -> dict[str, frozenset[str]]:
    """MARLIN_OIDC_ROLE_MAP as group -> roles. Entries are `group=role`; a group may be named
    more than once, and the group may itself contain `=` (split at the last one)."""
    mapping: dict[str, set[str]] = {}
    for entry in settings.OIDC_ROLE_MAP:
        group, _, role = entry.rpartition("=")
        mapping.setdefault(group.strip(), set()).add(role.strip())
    return {group: frozenset(roles) for group, roles in mapping.items()}


def role_map_problems() -> list[str]:
    problems = []
    for entry in settings.OIDC_ROLE_MAP:
        group, sign, role = entry.rpartition("=")
        if not sign or not group.strip():
            problems.append(f"{entry!r} is not group=role")
        elif role.strip() not in Role.values:
            problems.append(f"{entry!r} names the unknown role {role.strip()!r}")
    return problems


def groups_of(claims: dict[str, Any]) -> frozenset[str]:
    """The groups claim as a set of names: a list of strings, or one string (some providers
    send a single group that way). Anything else counts as no group."""
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(item for item in value if isinstance(item, str))
    return frozenset()


def _text(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ""


class SsoBackend(OIDCAuthenticationBackend):
    """The authentication backend for `/account/sso/callback/`. Constructed by Django on every
    request that reads the session, so it reads nothing from the network until a login."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__: it reads every endpoint, which would mean discovery on
        # every request. The endpoints are the properties below.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (the library's attribute name)
        return endpoint("OIDC_OP_TOKEN_ENDPOINT", "token_endpoint")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return endpoint("OIDC_OP_USER_ENDPOINT", "userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return endpoint("OIDC_OP_JWKS_ENDPOINT", "jwks_uri")

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        # Only the callback view passes code_verifier: a password login whose URL happens to
        # carry ?code=&state= must not start a token exchange.
        if "code_verifier" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"The identity provider refused or did not answer ({_short(exc)})."
            ) from exc

    def get_user(self, user_id: int) -> User | None:
        # Django's rule, not the library's (which returns inactive users too): a deactivated
        # account's sessions end at once, whichever way it logged in.
        return ModelBackend.get_user(self, user_id)

    def get_payload_data(self, token: bytes | str, key: Any) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience and times hold."""
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SsoRefused(f"The identity provider's ID token was refused: {exc}.") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            # Core 3.1.3.7: with several audiences, the authorised party must be Marlin.
            raise SsoRefused("The identity provider's ID token was issued to another client.")
        return claims

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return super().verify_token(token, **kwargs)
        except SuspiciousOperation as exc:  # the nonce, the algorithm, no matching key
            raise SsoRefused(f"The identity provider's ID token was refused: {exc}") from exc

    def get_or_create_user(
        self, access_token: str, id_token: str, payload: dict[str, Any]
    ) -> User | None:
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload["sub"]:
            # Core 5.3.2: the userinfo answer must be about the ID token's subject.
            raise SsoRefused("The identity provider's userinfo is about another person.")
        claims = {**payload, **userinfo}
        person = SsoPerson(
            issuer=payload["iss"],
            subject=str(payload["sub"]),
            username=_text(claims, settings.OIDC_USERNAME_CLAIM),
            email=_text(claims, "email") if claims.get("email_verified", True) else "",
            first_name=_text(claims, "given_name"),
            last_name=_text(claims, "family_name"),
            groups=groups_of(claims),
        )
        return do_sso_login(person, role_map(), link_existing=settings.OIDC_LINK_EXISTING)


def _short(exc: Exception) -> str:
    # The library's token error carries the provider's whole answer; a line is enough here.
    return str(exc).splitlines()[0][:300]


def end_session_url(id_token: str, post_logout_redirect_uri: str) -> str | None:
    """Where to send a person who logged out, so the provider ends its session too; None when
    the provider advertises no end_session_endpoint (or cannot be asked)."""
    try:
        url = endpoint("OIDC_OP_END_SESSION_ENDPOINT", "end_session_endpoint", required=False)
    except ProviderUnavailable as exc:
        logger.warning("logging out locally only: %s", exc)
        return None
    if not url:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{url}{'&' if '?' in url else '?'}{query}"


def check_sso_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse to start with SSO settings that would lock everyone out or map nothing."""
    errors: list[checks.CheckMessage] = []
    if settings.OIDC_ONLY and not settings.OIDC_ENABLED:
        errors.append(
            checks.Error(
                "MARLIN_OIDC_ONLY turns password login off, but single sign-on is not set up: "
                "nobody could log in.",
                hint="Set MARLIN_OIDC_ISSUER and MARLIN_OIDC_CLIENT_ID, or unset MARLIN_OIDC_ONLY.",
                id="marlin.E101",
            )
        )
    for problem in role_map_problems():
        errors.append(
            checks.Error(
                f"MARLIN_OIDC_ROLE_MAP: {problem}.",
                hint=f"Write group=role pairs, comma-separated; roles: {', '.join(Role.values)}.",
                id="marlin.E102",
            )
        )
    if settings.OIDC_ENABLED and not uses_discovery():
        missing = [
            name
            for name, setting in (
                ("MARLIN_OIDC_TOKEN_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT"),
                ("MARLIN_OIDC_USERINFO_ENDPOINT", "OIDC_OP_USER_ENDPOINT"),
                ("MARLIN_OIDC_JWKS_URI", "OIDC_OP_JWKS_ENDPOINT"),
            )
            if not getattr(settings, setting, "")
        ]
        if missing:
            errors.append(
                checks.Error(
                    "MARLIN_OIDC_AUTHORIZATION_ENDPOINT turns discovery off, so these must be set "
                    f"too: {', '.join(missing)}.",
                    hint="Or unset MARLIN_OIDC_AUTHORIZATION_ENDPOINT to use discovery.",
                    id="marlin.E103",
                )
            )
    return errors
