import os

from django.core.management import call_command
from django.core.management.base import BaseCommand

from marlin.demo.load import demo_logins, describe, load_demo, start_pages
from marlin.demo.model_script import answer
from marlin.devtools.model_server import FakeModelServer
from marlin.management.commands.serve import bind_address, migrate_if_needed

# Where the scripted model server of the demo's two live agents listens. A fixed address: the
# agents keep the URL they were run with (another address makes new versions of them).
DEFAULT_MODEL_SERVER = "127.0.0.1:8765"


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
        parser.add_argument(
            "--model-server",
            default=os.environ.get("MARLIN_DEMO_MODEL_SERVER", DEFAULT_MODEL_SERVER),
            help="ADDR:PORT of the scripted model server the live agents call "
            f"(default {DEFAULT_MODEL_SERVER}, or MARLIN_DEMO_MODEL_SERVER).",
        )

    def handle(self, *args, **options) -> None:

        migrate_if_needed(self.stdout)
        model_host, _, model_port = bind_address(options["model_server"], None).rpartition(":")
        model_url = f"http://{model_host}:{model_port}"
        project = load_demo(model_url=model_url)
        self.stdout.write(self.style.SUCCESS("Demo data ready: " + describe(project)))
        self.stdout.write("Demo logins (username / password / roles):")
        for username, password, roles in demo_logins():
            self.stdout.write(f"  {username:<8} {password}   {roles}")
        if options["load_only"]:
            return
        bind = bind_address(options["addrport"], options["port"])
        models: FakeModelServer | None = None
        try:
            # In this process, beside serve: the worker's agent runs call it over loopback.
            models = FakeModelServer(
                side=answer, host=model_host, port=int(model_port), keep_requests=False
            ).start()
        except OSError as exc:
            # Serve anyway: everything but the live agents' runs works without it.
            self.stderr.write(
                f"The demo's model server cannot listen on {model_host}:{model_port} ({exc}): "
                "runs of the live agents will fail. Start the demo with --model-server "
                "ADDR:PORT on a free port."
            )
        else:
            self.stdout.write(
                f"Scripted model server for the live agents: {model_url} "
                "(OpenAI /v1/chat/completions, Anthropic /v1/messages)"
            )
        self.stdout.write("Start here (log in as the user):")
        for username, path in start_pages(project).items():
            self.stdout.write(f"  {username:<8} http://{bind}{path}")
        self.stdout.flush()
        # The same production server as `marlin serve`.
        serve_args = [bind] + (["--no-worker"] if options["no_worker"] else [])
        try:
            call_command("serve", *serve_args)
        finally:
            if models is not None:
                models.stop()
