"""Usernames are checked where accounts are made: `marlin createuser` (and every other caller of
do_create_user) refuses what Django's username validator refuses, and names that a spreadsheet
would run as a formula or a shell would read as an option."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marlin.accounts.actions import do_create_user
from marlin.accounts.models import User
from marlin.audit.models import AuditEvent


@pytest.mark.parametrize(
    "username",
    [
        "=1+cmd",
        '=HYPERLINK("http://evil.example","x")',
        "<svg onload=alert(1)>",
        "bob smith",
        "bob\x00",
        "tab\tname",
        "+1-2",
        "-rf",
        "@SUM",
        ".hidden",
        "",
        "x" * 151,
    ],
)
def test_createuser_refuses_a_username_and_says_which_characters_are_allowed(
    db, username: str
) -> None:
    with pytest.raises(CommandError) as refused:
        # After "--", so that "-rf" reaches the command as a name rather than as an option.
        call_command(
            "createuser", "--role", "annotator", "--password", "pw-123-long", "--", username
        )
    message = str(refused.value)
    assert "letters, digits and @ . + - _, starting with a letter or a digit" in message
    assert not User.objects.exists()
    assert not AuditEvent.objects.filter(verb="user.create").exists()


@pytest.mark.parametrize("username", ["zoe", "zoë", "ana-maria_2", "dev+ops@corp.example", "7of9"])
def test_createuser_accepts_ordinary_usernames(db, username: str) -> None:
    call_command("createuser", username, "--role", "annotator", "--password", "pw-123-long")
    assert User.objects.get().username == username


def test_the_action_checks_the_username_for_every_caller(db, erin) -> None:
    with pytest.raises(ValueError, match="Enter a valid username instead of"):
        do_create_user(erin, "<img src=x onerror=alert(1)>", "pw-123-long", roles=["annotator"])
    assert not User.objects.exclude(pk=erin.pk).exists()
