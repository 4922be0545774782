"""Changes to users and roles. Each writes one audit event."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from marlin.accounts.models import ApiToken, ExpertProfile, Role, RoleGrant, User
from marlin.audit.actions import record


def _sync_staff(user: User) -> None:
    # Django admin access follows the admin role, so it cannot be granted by a side door.
    is_admin = user.role_grants.filter(role=Role.ADMIN).exists()
    if user.is_staff != is_admin:
        user.is_staff = is_admin
        user.save(update_fields=["is_staff"])


USERNAME_MAX_LENGTH = 150  # the column's length (AbstractUser.username)


def username_problem(username: str) -> str | None:
    """Why `username` cannot name an account, or None. Django's username validator decides the
    characters; the first one must also be a letter or a digit, because names reach payroll
    spreadsheets (where `=`, `+`, `-` and `@` start a formula) and command lines (where `-`
    starts an option)."""
    allowed = (
        f"Enter a valid username instead of {username[:60]!r}: 1 to {USERNAME_MAX_LENGTH} letters, "
        "digits and @ . + - _, starting with a letter or a digit."
    )
    if not username or len(username) > USERNAME_MAX_LENGTH or not username[0].isalnum():
        return allowed
    try:
        User.username_validator(username)
    except ValidationError:
        return allowed
    return None


@transaction.atomic
def do_create_user(
    actor: User | None,
    username: str,
    password: str,
    *,
    roles: Sequence[str] = (),
    email: str = "",
    reason: str = "",
) -> User:
    unknown = sorted(set(roles) - set(Role.values))
    if unknown:
        raise ValueError(f"Unknown role(s): {', '.join(unknown)}. Known: {', '.join(Role.values)}.")
    username = User.normalize_username(username)
    problem = username_problem(username)
    if problem:
        raise ValueError(problem)
    if User.objects.filter(username=username).exists():
        raise ValueError(f"A user named {username!r} already exists.")
    user = User.objects.create_user(username=username, password=password, email=email)
    ExpertProfile.objects.create(user=user)
    record(actor, "user.create", user, new={"username": username, "email": email}, reason=reason)
    for role in roles:
        do_grant_role(actor, user, role, reason=reason or "created with the account")
    return user


@transaction.atomic
def do_grant_role(actor: User | None, user: User, role: str, *, reason: str = "") -> bool:
    if role not in Role.values:
        raise ValueError(f"Unknown role {role!r}. Known: {', '.join(Role.values)}.")
    grant, created = RoleGrant.objects.get_or_create(
        user=user, role=role, defaults={"granted_by": actor if getattr(actor, "pk", None) else None}
    )
    if created:
        record(actor, "role.grant", user, new={"role": role}, reason=reason)
        _sync_staff(user)
        user.forget_roles()
    return created


@transaction.atomic
def do_revoke_role(actor: User | None, user: User, role: str, *, reason: str = "") -> bool:
    deleted, _ = RoleGrant.objects.filter(user=user, role=role).delete()
    if deleted:
        record(actor, "role.revoke", user, old={"role": role}, reason=reason)
        _sync_staff(user)
        user.forget_roles()
    return bool(deleted)


@transaction.atomic
def do_update_profile(
    actor: User, profile: ExpertProfile, changes: dict, *, reason: str = ""
) -> None:
    """Change an expert profile. A profile not saved yet (a user made without one, e.g. by
    createsuperuser) is created here, so that opening the profile page writes nothing."""
    saved = ExpertProfile.objects.select_for_update().filter(user_id=profile.user_id).first()
    if saved is None:
        for name, value in changes.items():
            setattr(profile, name, value)
        profile.save()
        record(actor, "profile.create", profile, new=changes, reason=reason)
        return
    profile = saved
    old = {name: getattr(profile, name) for name in changes}
    if old == changes:
        return
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.save(update_fields=list(changes))
    record(actor, "profile.update", profile, old=old, new=changes, reason=reason)


@transaction.atomic
def do_issue_token(actor: User, name: str) -> tuple[ApiToken, str]:
    token, raw = ApiToken.issue(actor, name)
    record(actor, "token.issue", token, new={"name": name, "prefix": token.prefix})
    return token, raw


@transaction.atomic
def do_revoke_token(actor: User, token: ApiToken) -> None:
    if token.user_id != actor.pk and not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Only its owner or an admin may revoke a token.")
    # Locked, so two revocations at once write one event.
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record(
            actor,
            "token.revoke",
            token,
            old={"revoked_at": None},
            new={"revoked_at": token.revoked_at},
        )


# What an admin may change on a person's account; is_staff follows the admin role, is_superuser
# is for the command line, and the username names the actor in every audit event already written.
USER_FIELDS = frozenset({"email", "first_name", "last_name"})


@transaction.atomic
def do_update_user(actor: User | None, user: User, changes: dict, *, reason: str = "") -> None:
    unknown = sorted(set(changes) - USER_FIELDS)
    if unknown:
        raise ValueError(f"These user fields cannot be changed here: {', '.join(unknown)}.")
    old = {name: getattr(user, name) for name in changes}
    if old == changes:
        return
    for name, value in changes.items():
        setattr(user, name, value)
    user.save(update_fields=list(changes))
    record(actor, "user.update", user, old=old, new=changes, reason=reason)


@transaction.atomic
def do_set_user_active(actor: User | None, user: User, active: bool, *, reason: str = "") -> bool:
    """Activate or deactivate an account (accounts are never deleted: earnings and audit events
    point at them). An inactive user's sessions and API tokens stop working at once."""
    if actor is not None and actor.pk == user.pk and not active:
        raise ValueError("You cannot deactivate your own account; ask another admin.")
    if user.is_active == active:
        return False
    user.is_active = active
    user.save(update_fields=["is_active"])
    user.forget_roles()
    record(
        actor,
        "user.activate" if active else "user.deactivate",
        user,
        old={"is_active": not active},
        new={"is_active": active},
        reason=reason,
    )
    return True
