from django.http import HttpRequest

from marlin.accounts.models import Role


def roles(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    names = user.role_names() if user is not None and user.is_authenticated else frozenset()
    return {"user_roles": names, "Role": Role}
