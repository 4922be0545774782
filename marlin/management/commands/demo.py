import os

from django.core.management import call_command
from django.core.management.base import BaseCommand

from marlin.demo.load import demo_logins, describe, load_demo
from marlin.management.commands.serve import migrate_if_needed


class Command(BaseCommand):
    help = "Load the demo data (idempotent) and serve Marlin; prints the demo logins."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport",
            nargs="?",
            default=os.environ.get("MARLIN_LISTEN", "127.0.0.1:8000"),
            help="ADDR:PORT or PORT to listen on (default 127.0.0.1:8000).",
        )
        parser.add_argument("--port", type=int, default=None, help="Port (wins over ADDR:PORT).")
        parser.add_argument("--load-only", action="store_true", help="Load the demo data and exit.")
        parser.add_argument("--no-worker", action="store_true")

    def handle(self, *args, **options) -> None:

        migrate_if_needed(self.stdout)
        project = load_demo()
        self.stdout.write(self.style.SUCCESS("Demo data ready: " + describe(project)))
        self.stdout.write("Demo logins (username / password / roles):")
        for username, password, roles in demo_logins():
            self.stdout.write(f"  {username:<8} {password}   {roles}")
        if options["load_only"]:
            return
        # The same production server as `marlin serve`.
        serve_args = [options["addrport"]] + (["--no-worker"] if options["no_worker"] else [])
        if options["port"] is not None:
            serve_args += ["--port", str(options["port"])]
        call_command("serve", *serve_args)
