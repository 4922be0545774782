"""Helpers shared by Marlin's management commands: who a command acts as, and reading its input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, cast

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from rich.console import Console

from marlin.accounts.models import Role, User


def acting_user(username: str | None) -> User:
    """The user named by --as, or else the first admin; exit code 2 when there is none."""
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"no active user named {username!r}", returncode=2)
        return user
    admin = (
        User.objects.filter(is_active=True)
        .filter(Q(role_grants__role=Role.ADMIN) | Q(is_superuser=True))
        .order_by("pk")
        .first()
    )
    if admin is None:
        raise CommandError(
            "there is no admin user to act as; create one (marlin createuser NAME --role admin) "
            "or pass --as USERNAME",
            returncode=2,
        )
    return admin


def read_input(filename: str) -> str:
    """The file's text, or standard input for '-'; exit code 2 when it cannot be read."""
    try:
        if filename == "-":
            return sys.stdin.read()
        return Path(filename).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {filename}: {exc}", returncode=2) from None


def console_for(command: BaseCommand) -> Console:
    """A rich console writing to the command's stdout (so call_command(stdout=...) captures it)."""
    # OutputWrapper is a TextIOBase, which is all rich needs; the stubs ask for IO[str].
    return Console(file=cast(IO[str], command.stdout), highlight=False, soft_wrap=True)
