import signal

from django.core.management import call_command
from django.core.management.base import BaseCommand
from oidc_provider.models import RSAKey

from marlin.management.lifetime import die_with_parent


class Command(BaseCommand):
    help = "Set up the test provider's database and signing key, then serve it."

    def add_arguments(self, parser):
        parser.add_argument("addrport")
        parser.add_argument(
            "--parent-pid",
            type=int,
            help="Stop when this process (the test run) ends, even if it is killed.",
        )

    def handle(self, *args, addrport: str, parent_pid: int | None = None, **options):
        if parent_pid is not None:
            # The provider runs in its own session (so a test's Ctrl-C does not reach it
            # first); without this a killed test run would leave it serving under PID 1.
            die_with_parent(parent_pid, signal.SIGTERM)
        call_command("migrate", verbosity=0)
        if not RSAKey.objects.exists():
            call_command("creatersakey")
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
