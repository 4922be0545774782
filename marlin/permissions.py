"""Server-side role checks. Every view declares the roles it needs; no view trusts the client."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def role_required(*roles: str) -> Callable:
    """Allow only logged-in users holding at least one of `roles` (admins always pass).

    Anonymous users are sent to the login page; users without the role get 403.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_role("admin", *roles):
                raise PermissionDenied(
                    f"This page needs one of these roles: {', '.join(roles) or 'admin'}."
                )
            return view(request, *args, **kwargs)

        wrapped.required_roles = roles  # type: ignore[attr-defined]
        return wrapped

    return decorator


def require_role(user: Any, *roles: str) -> None:
    """Raise PermissionDenied unless the user holds one of the roles (for actions)."""
    if (
        user is None
        or not getattr(user, "is_authenticated", False)
        or not user.has_role("admin", *roles)
    ):
        raise PermissionDenied(f"This action needs one of these roles: {', '.join(roles)}.")
