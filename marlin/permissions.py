"""Server-side role checks. Every view declares the roles it needs; no view trusts the client."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol, runtime_checkable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.shortcuts import render


@runtime_checkable
class RoleHolder(Protocol):
    """What a Marlin user offers the checks here (accounts.User; this module imports no app)."""

    is_authenticated: bool

    def has_role(self, *roles: str) -> bool: ...


def holds_role(user: object, *roles: str) -> bool:
    """Whether `user` is logged in and holds one of `roles` (admins hold every role)."""
    return (
        user is not None
        and bool(getattr(user, "is_authenticated", False))
        and isinstance(user, RoleHolder)
        and user.has_role("admin", *roles)
    )


View = Callable[..., HttpResponseBase]


def role_required(*roles: str) -> Callable[[View], View]:
    """Allow only logged-in users holding at least one of `roles` (admins always pass).

    Anonymous users are sent to the login page; users without the role get 403.
    """

    def decorator(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not holds_role(request.user, *roles):
                message = f"This page needs one of these roles: {', '.join(roles) or 'admin'}."
                return _denied(request, message)
            try:
                return view(request, *args, **kwargs)
            except PermissionDenied as exc:  # the view's own refusal (a conflict, a closed item)
                return _denied(request, str(exc))

        return wrapped

    return decorator


def _denied(request: HttpRequest, message: str) -> HttpResponseBase:
    # Answered here, not raised: a refusal is an everyday answer, and Django logs a raised
    # PermissionDenied with its traceback.
    return render(request, "403.html", {"exception": message}, status=403)


def require_role(user: object, *roles: str) -> None:
    """Raise PermissionDenied unless the user holds one of the roles (for actions)."""
    if not holds_role(user, *roles):
        raise PermissionDenied(f"This action needs one of these roles: {', '.join(roles)}.")
