"""API authentication (personal Bearer tokens, or the browser's session) and role checks."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyHeader, HttpBearer, SessionAuth

from marlin.accounts.models import ApiToken, User
from marlin.review.activity import Ticket, read_ticket


class TokenAuth(HttpBearer):
    """`Authorization: Bearer mrl_...`: a token created on the profile page (stored hashed)."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        if not token or len(token) > 200:
            return None
        user = ApiToken.authenticate(token)
        if user is not None:
            request.user = user
        return user


class HeartbeatTicketAuth(APIKeyHeader):
    """`X-Heartbeat-Ticket: <ticket>`: the signed ticket a page got with its heartbeat settings
    (marlin/review/activity.py). It authenticates nothing but heartbeats on work the person
    already opened; a missing or invalid ticket falls through to the token or the session."""

    param_name = "X-Heartbeat-Ticket"

    def authenticate(self, request: HttpRequest, key: str | None) -> Ticket | None:
        if not key or len(key) > 500:
            return None
        return read_ticket(key)


def user_of(request: HttpRequest) -> User:
    """The user django-ninja authenticated for this request (every router needs AUTH)."""
    user = getattr(request, "auth", None)
    if not isinstance(user, User):
        raise HttpError(401, "Log in or send a token: Authorization: Bearer mrl_...")
    return user


def require(request: HttpRequest, *roles: str) -> User:
    """The authenticated user if they hold one of `roles` (admins always pass), else 403."""
    user = user_of(request)
    if not user.has_role("admin", *roles):
        raise HttpError(403, f"This needs one of these roles: {', '.join(roles) or 'admin'}.")
    return user


AUTH = [TokenAuth(), SessionAuth()]
