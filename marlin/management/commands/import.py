"""`marlin import swebench-tasks FILE --project NAME`, `marlin import predictions FILE --project
NAME` and `marlin import judgments FILE --project NAME` (external pairwise judgments, shown as the
project's reference leaderboard).

It lives with the entry points because it reaches three apps (tasks, agents, analytics).

Exit codes: 0 when records were imported or were already there (even if others were bad), 1 when
the file held nothing that could be imported, 2 when it could not be read or the arguments are
wrong.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from marlin.accounts.commandline import acting_user, console_for, read_input
from marlin.accounts.models import User
from marlin.agents.imports import do_import_predictions
from marlin.analytics.imports import do_import_judgments
from marlin.tasks.imports import (
    DEFAULT_TEST_COMMAND,
    ImportReport,
    do_import_swebench_tasks,
    find_repository,
)
from marlin.tasks.models import Project

MAX_ERRORS_SHOWN = 200


class Command(BaseCommand):
    help = (
        "Import SWE-bench task records as tasks, prediction files as candidates, or external "
        "pairwise judgments as a reference leaderboard."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "file", help="JSON list, JSON lines or (judgments) CSV; '-' reads standard input"
        )
        common.add_argument("--project", required=True, help="the project's name")
        common.add_argument(
            "--as", dest="username", help="act as this user (default: the first admin)"
        )
        sub = parser.add_subparsers(dest="kind", required=True)
        tasks = sub.add_parser(
            "swebench-tasks", parents=[common], help="SWE-bench task records -> tasks"
        )
        tasks.add_argument(
            "--approve", action="store_true", help="approve the tasks (default: drafts)"
        )
        tasks.add_argument(
            "--test-command",
            default=DEFAULT_TEST_COMMAND,
            help=(
                "the hidden tests' command; test ids are appended "
                f"(default: {DEFAULT_TEST_COMMAND!r})"
            ),
        )
        tasks.add_argument(
            "--setup",
            metavar="FILE",
            help="JSON lines of {instance_id, install}: each task's setup command",
        )
        tasks.add_argument(
            "--repository",
            metavar="NAME_OR_URL",
            help=(
                "a registered repository (its name, URL, local path or id) for every record; "
                "default: the registered repository of each record's owner/name"
            ),
        )
        predictions = sub.add_parser(
            "predictions", parents=[common], help="predictions -> candidates"
        )
        predictions.add_argument(
            "--version-label", default="1", help="version label of the import agents (default: 1)"
        )

        sub.add_parser(
            "judgments",
            parents=[common],
            help="arena battles (JSON/JSONL) or CSV with model_a, model_b, winner -> reference set",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.console = console_for(self)
        text = read_input(options["file"])
        actor = acting_user(options.get("username"))
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(
                f"no project named {options['project']!r}; create it on the Projects page first",
                returncode=2,
            )
        name = Path(options["file"]).name
        try:
            report = self._with_progress(
                lambda progress: self._import(options, actor, project, text, name, progress)
            )
        except PermissionDenied as exc:
            raise CommandError(str(exc), returncode=2) from None
        self._print(report, options["kind"])
        if not report.created and not report.skipped and not report.updated:
            raise CommandError("the file held nothing that could be imported", returncode=1)

    def _import(
        self,
        options: dict[str, Any],
        actor: User,
        project: Project,
        text: str,
        name: str,
        progress: Any,
    ) -> ImportReport:
        if options["kind"] == "judgments":
            return do_import_judgments(actor, project, text, filename=name, progress=progress)
        if options["kind"] == "predictions":
            return do_import_predictions(
                actor,
                project,
                text,
                version_label=options["version_label"],
                filename=name,
                progress=progress,
            )
        setup = _setup_commands(options["setup"]) if options["setup"] else {}
        repository = None
        if options.get("repository"):
            repository = find_repository(options["repository"])
            if repository is None:
                raise CommandError(
                    f"no registered repository {options['repository']!r}; add it on the "
                    "Repositories page (or with its API) first",
                    returncode=2,
                )
        return do_import_swebench_tasks(
            actor,
            project,
            text,
            approve=options["approve"],
            test_command=options["test_command"],
            setup=setup,
            filename=name,
            progress=progress,
            repository=repository,
        )

    def _with_progress(self, work: Any) -> ImportReport:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            job = bar.add_task("import", total=None)
            return work(lambda done, total: bar.update(job, completed=done, total=total))

    def _print(self, report: ImportReport, kind: str) -> None:
        if kind == "judgments" and report.skipped and not report.created:
            self.console.print(f"Nothing imported: {report.skipped[0].reason}.", markup=False)
            return
        what = {"predictions": "candidates", "judgments": "judgments"}.get(kind, "tasks")
        self.console.print(
            f"{report.created} {what} imported, {len(report.skipped)} already there, "
            f"{len(report.errors)} bad records, of {report.records} (format: {report.format})."
        )
        if report.errors:
            # One plain line per problem: readable in a terminal, greppable in a log.
            self.console.print("Not imported:")
            for error in report.errors[:MAX_ERRORS_SHOWN]:
                self.console.print(f"  line {error.line_no}: {error.reason}", markup=False)
            hidden = len(report.errors) - MAX_ERRORS_SHOWN
            if hidden > 0:
                self.console.print(f"  ... and {hidden} more.")
        if report.lines:
            # Every record in the file's order: what became of it, and why.
            self.console.print(f"Per record ({report.updated} updated):")
            for line in report.lines:
                text = f"  line {line.line_no} {line.instance_id or '-'}: {line.outcome}"
                text += f" ({line.reason})" if line.reason else ""
                self.console.print(text, markup=False)


def _setup_commands(filename: str) -> dict[str, str]:
    commands: dict[str, str] = {}
    for line_no, line in enumerate(read_input(filename).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            commands[str(data["instance_id"])] = str(data.get("install") or "")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CommandError(
                f"{filename} line {line_no}: not a setup record ({exc})", returncode=2
            ) from None
    return commands
