"""The request type of pages behind a login: `request.user` is a Marlin User, never anonymous."""

from __future__ import annotations

from django.http import HttpRequest

from marlin.accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """What `login_required` and `role_required` views receive (for the type checker: Django
    gives every view an HttpRequest whose `user` may be AnonymousUser)."""

    user: User
