"""Changes to users and roles. Each writes one audit event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from marlin.accounts.models import ApiToken, ExpertProfile, Role, RoleGrant, SsoIdentity, User
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
    password: str | None,
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


# Logins. Every login and every refused one is an event, whichever way it came (password or single
# sign-on); failures name the username tried, never the password.


@transaction.atomic
def do_record_login(user: User, method: str, *, detail: dict | None = None) -> None:
    record(user, "user.login", user, new={"method": method, **(detail or {})})


@transaction.atomic
def do_record_login_failure(username: str, method: str, reason: str) -> None:
    user = User.objects.filter(username=username).first() if username else None
    record(
        None,
        "user.login_failed",
        user,
        object_type="accounts.user",
        object_id=user.pk if user else "",
        new={"method": method, "username": username[:USERNAME_MAX_LENGTH]},
        reason=reason[:500],
    )


@transaction.atomic
def do_record_logout(user: User, *, detail: dict | None = None) -> None:
    record(user, "user.logout", user, new=detail or {})


class SsoRefused(Exception):
    """A single sign-on login Marlin will not accept; the message says why, for the person."""


@dataclass(frozen=True)
class SsoPerson:
    """What a verified single sign-on login says about the person (marlin/accounts/sso.py)."""

    issuer: str
    subject: str
    username: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    groups: frozenset[str] = frozenset()


@transaction.atomic
def do_sso_login(
    person: SsoPerson, role_map: Mapping[str, frozenset[str]], *, link_existing: bool = False
) -> User:
    """The user `person` logs in as: found by issuer and subject, else linked or created, with
    their name and email brought up to date and the mapped roles following their groups."""
    identity = (
        SsoIdentity.objects.select_related("user")
        .filter(issuer=person.issuer, subject=person.subject)
        .first()
    )
    if identity is not None:
        user = User.objects.select_for_update().get(pk=identity.user_id)
    else:
        user = _first_sso_login(person, link_existing=link_existing)
    if not user.is_active:
        raise SsoRefused("Your Marlin account is deactivated; ask an admin to reactivate it.")
    changes = {
        name: value
        for name, value in (
            ("email", person.email),
            ("first_name", person.first_name[:150]),
            ("last_name", person.last_name[:150]),
        )
        if value and getattr(user, name) != value
    }
    if changes:
        do_update_user(None, user, changes, reason=f"single sign-on login at {person.issuer}")
    do_sync_sso_roles(user, person.groups, role_map, issuer=person.issuer)
    return user


def _first_sso_login(person: SsoPerson, *, link_existing: bool) -> User:
    username = User.normalize_username(person.username)
    if not username:
        raise SsoRefused(
            "The identity provider sent no username for you; the operator sets which claim "
            "holds it (MARLIN_OIDC_USERNAME_CLAIM)."
        )
    problem = username_problem(username)
    if problem:
        raise SsoRefused(
            f"Your username at the identity provider cannot name a Marlin account. {problem}"
        )
    existing = User.objects.select_for_update().filter(username__iexact=username).first()
    if existing is not None:
        linked = existing.sso_identities.filter(issuer=person.issuer).exists()
        if not link_existing or linked:
            raise SsoRefused(
                f"A Marlin account named {username!r} already exists and is not linked to this "
                "sign-in. An admin can rename or deactivate it, or link accounts by name "
                "(MARLIN_OIDC_LINK_EXISTING)."
            )
        user = existing
    else:
        user = do_create_user(
            None, username, None, email=person.email, reason="first single sign-on login"
        )
    identity = SsoIdentity.objects.create(user=user, issuer=person.issuer, subject=person.subject)
    record(
        None,
        "user.sso_link",
        user,
        new={"issuer": person.issuer, "subject": person.subject, "identity": identity.pk},
        reason="first single sign-on login",
    )
    return user


@transaction.atomic
def do_sync_sso_roles(
    user: User, groups: frozenset[str], role_map: Mapping[str, frozenset[str]], *, issuer: str
) -> None:
    """Grant the roles `groups` map to, and revoke the mapped roles they no longer map to.
    Roles the map never names are left as an admin set them."""
    managed = frozenset().union(*role_map.values()) if role_map else frozenset()
    wanted = frozenset().union(*(role_map.get(group, frozenset()) for group in groups))
    held = set(user.role_grants.values_list("role", flat=True))
    shown = ", ".join(sorted(groups & set(role_map))) or "none mapped"
    for role in sorted(wanted - held):
        do_grant_role(None, user, role, reason=f"single sign-on at {issuer}: groups {shown}")
    for role in sorted((held & managed) - wanted):
        do_revoke_role(
            None, user, role, reason=f"single sign-on at {issuer}: no group maps to {role}"
        )
