"""Run Marlin on one machine: migrate if needed, start a job worker as a child process, serve."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_if_needed(stdout) -> None:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        stdout.write(f"Applying {len(plan)} migration(s)…")
        call_command("migrate", interactive=False, verbosity=0)


def start_worker() -> subprocess.Popen:
    # A child process rather than a thread: a crashing job cannot take the web app down, and
    # the worker is the same `marlin worker` that scales out to other machines.
    worker = subprocess.Popen([sys.executable, "-m", "marlin", "worker"], env=os.environ.copy())

    def stop() -> None:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()

    atexit.register(stop)
    return worker


class Command(BaseCommand):
    help = "Migrate if needed, start a job worker and serve the web app (default 127.0.0.1:8000)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "addrport", nargs="?", default=os.environ.get("MARLIN_LISTEN", "127.0.0.1:8000")
        )
        parser.add_argument("--no-worker", action="store_true", help="Do not start a job worker.")

    def handle(self, *args, **options) -> None:
        migrate_if_needed(self.stdout)
        if not options["no_worker"]:
            start_worker()
        self.stdout.write(f"Marlin is serving on http://{options['addrport']}/")
        # Static files come from WhiteNoise, so the plain threaded server is enough on one machine;
        # behind a proxy use gunicorn marlin.wsgi (docs/scaling.md).
        call_command(
            "runserver",
            options["addrport"],
            use_reloader=False,
            use_threading=True,
            skip_checks=True,
        )
