"""`marlin worker`: run background jobs (mirrors, environments, checks, agent runs, exports)."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run a job worker. Sweeps stale workspaces left by crashed workers first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch", action="store_true", help="Run what is queued, then exit.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between polls.")
        parser.add_argument("--max-tasks", type=int, default=None)

    def handle(self, *args, **options) -> None:
        from marlin.paths import workspaces_dir
        from marlin.sandbox.workspace import sweep_stale_workspaces

        swept = sweep_stale_workspaces(workspaces_dir(), older_than_seconds=settings.JOB_LEASE_SECONDS)
        if swept:
            self.stdout.write(f"Swept {len(swept)} stale workspace(s).")
        if settings.TASKS_BACKEND == "rq":
            call_command("rqworker", "default", burst=options["batch"])
            return
        worker_args = ["--interval", str(options["interval"]), "--no-startup-delay"]
        if options["batch"]:
            worker_args.append("--batch")
        if options["max_tasks"]:
            worker_args += ["--max-tasks", str(options["max_tasks"])]
        call_command("db_worker", *worker_args)
