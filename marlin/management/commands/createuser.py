import getpass
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from marlin.accounts.actions import do_create_user
from marlin.accounts.models import Role


class Command(BaseCommand):
    help = (
        "Create a user with one or more roles (admin, author, annotator, reviewer, adjudicator). "
        "Usernames: letters, digits and @ . + - _, starting with a letter or a digit."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            action="append",
            default=[],
            choices=Role.values,
            help="Repeat for several roles.",
        )
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password", help="Read from MARLIN_NEW_PASSWORD or asked for when omitted."
        )

    def handle(self, *args, **options) -> None:
        password = options["password"] or os.environ.get("MARLIN_NEW_PASSWORD")
        if not password:
            if not self.stdin_is_tty():
                raise CommandError("No password: pass --password or set MARLIN_NEW_PASSWORD.")
            password = getpass.getpass("Password: ")
        if not options["role"]:
            raise CommandError("Give at least one --role.")
        try:
            user = do_create_user(
                None,
                options["username"],
                password,
                roles=options["role"],
                email=options["email"],
                reason="created from the command line",
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Created {user.username} with roles: {', '.join(options['role'])}")
        )

    @staticmethod
    def stdin_is_tty() -> bool:
        return sys.stdin.isatty()
