"""`marlin export preferences|records|predictions|tasks --project NAME [--format jsonl,parquet]
[--out DIR] [--conversations] [--task-kind K] [--since D] [--until D] [--agents 1,2]`.

Runs the export job in this process with a progress bar and prints the directory and manifest
summary. Exit code 1 when the export failed, 2 for bad options.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marlin.accounts.commandline import console_for
from marlin.accounts.models import Role, User
from marlin.exports.actions import ExportError, do_create_export
from marlin.exports.jobs import run_export
from marlin.exports.models import ExportKind, ExportStatus
from marlin.tasks.models import Project


class Command(BaseCommand):
    help = "Write a dataset export (preference pairs, records, predictions or the task set)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("kind", choices=ExportKind.values)
        parser.add_argument("--project", required=True, help="project name (or id)")
        parser.add_argument(
            "--format",
            dest="formats",
            default="",
            help="jsonl,parquet,openai (preferences only; all when not given)",
        )
        parser.add_argument(
            "--out",
            default="",
            help="parent folder of the export (default: the data directory's exports/)",
        )
        parser.add_argument(
            "--conversations",
            action="store_true",
            help="chosen/rejected as full agent conversations",
        )
        parser.add_argument("--task-kind", default="")
        parser.add_argument(
            "--since", default="", help="decided on or after this date (YYYY-MM-DD)"
        )
        parser.add_argument(
            "--until", default="", help="decided on or before this date (YYYY-MM-DD)"
        )
        parser.add_argument(
            "--agents", default="", help="comma-separated agent ids; both sides must be among them"
        )
        parser.add_argument(
            "--as", dest="username", help="act as this user (default: the first admin)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        console = console_for(self)
        actor = self._actor(options["username"])
        project = self._project(options["project"])
        out = str(Path(options["out"]).resolve()) if options["out"] else ""
        filters = {k: options[k] for k in ("task_kind", "since", "until", "agents")}
        try:
            export = do_create_export(
                actor,
                project,
                options["kind"],
                filters,
                formats=options["formats"],
                conversations=options["conversations"],
                out=out,
                enqueue=False,
            )
        except ExportError as exc:
            raise CommandError(str(exc), returncode=2) from None
        with console.status(f"export {export.pk}: writing {export.kind}…") as status:
            run_export(export.pk, lambda percent: status.update(f"export {export.pk}: {percent}%"))
        export.refresh_from_db()
        if export.status != ExportStatus.DONE:
            raise CommandError(f"export {export.pk} failed: {export.error}", returncode=1)
        console.print(f"export {export.pk} written to {export.directory}")
        for entry in export.manifest["files"]:
            console.print(f"  {entry['name']}  {entry['bytes']} bytes  sha256 {entry['sha256']}")
        console.print(f"counts: {export.manifest['counts']}")

    def _actor(self, username: str | None) -> User:
        if username:
            user = User.objects.filter(username=username, is_active=True).first()
            if user is None:
                raise CommandError(f"no active user {username!r}", returncode=2)
            return user
        user = (
            User.objects.filter(is_active=True)
            .filter(role_grants__role=Role.ADMIN)
            .order_by("pk")
            .first()
            or User.objects.filter(is_active=True, is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError(
                "no admin user exists; create one (marlin createuser) or pass --as", returncode=2
            )
        return user

    def _project(self, name: str) -> Project:
        project = Project.objects.filter(name=name).first()
        if project is None and name.isdigit():
            project = Project.objects.filter(pk=int(name)).first()
        if project is None:
            known = ", ".join(Project.objects.values_list("name", flat=True)[:20]) or "none"
            raise CommandError(f"no project named {name!r} (projects: {known})", returncode=2)
        return project
