"""`marlin repos import FILE [--mirror]`, `marlin repos add URL`,
`marlin repos mirror [--all|ID...]`.

Exit codes of `import`: 0 when good lines were imported (even if others were bad), 1 when the
file held nothing valid, 2 when it could not be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from marlin.accounts.commandline import acting_user, console_for, read_input
from marlin.accounts.models import User
from marlin.catalog.actions import (
    CatalogError,
    ImportResult,
    do_add_repository,
    do_import_repositories,
)
from marlin.catalog.jobs import mirror_repository
from marlin.catalog.models import MirrorStatus, Repository

MAX_BAD_LINES_SHOWN = 200


class Command(BaseCommand):
    help = "Add, import and mirror catalog repositories."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        acting = argparse.ArgumentParser(add_help=False)
        acting.add_argument(
            "--as", dest="username", help="act as this user (default: the first admin)"
        )
        sub = parser.add_subparsers(dest="action", required=True)
        imp = sub.add_parser(
            "import",
            parents=[acting],
            help="import a list: plain, CSV with a header, or JSON lines",
        )
        imp.add_argument("file", help="the list ('-' reads standard input)")
        imp.add_argument(
            "--mirror", action="store_true", help="also queue a mirror of each new repository"
        )
        add = sub.add_parser(
            "add", parents=[acting], help="add one repository and queue its mirror"
        )
        add.add_argument("url")
        add.add_argument("--language", default="")
        add.add_argument("--tag", action="append", default=[], dest="tags")
        add.add_argument("--no-mirror", action="store_true")
        mirror = sub.add_parser("mirror", help="clone or fetch mirrors now, in this process")
        mirror.add_argument("ids", nargs="*", type=int)
        mirror.add_argument("--all", action="store_true", help="every repository")
        mirror.add_argument(
            "--pending", action="store_true", help="repositories never mirrored or failed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.console = console_for(self)
        action = options["action"]
        if action == "mirror":
            self._mirror(options)
            return
        try:
            self._change(action, options)
        except PermissionDenied as exc:
            raise CommandError(str(exc), returncode=2) from None

    def _change(self, action: str, options: dict[str, Any]) -> None:
        if action == "import":
            text = read_input(options["file"])  # before the database, so a bad path exits 2 at once
            self._import(
                acting_user(options.get("username")),
                text,
                options["file"],
                mirror=options["mirror"],
            )
        else:
            self._add(acting_user(options.get("username")), options)

    def _add(self, actor: User, options: dict[str, Any]) -> None:
        try:
            repository = do_add_repository(
                actor,
                options["url"],
                language=options["language"],
                tags=options["tags"],
                mirror=not options["no_mirror"],
            )
        except CatalogError as exc:
            raise CommandError(str(exc), returncode=1) from None
        self.console.print(f"Added {repository.name} (id {repository.pk}).", markup=False)

    def _import(self, actor: User, text: str, filename: str, *, mirror: bool) -> None:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            job = bar.add_task("import", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(job, completed=done, total=total)

            try:
                result = do_import_repositories(
                    actor, text, filename=Path(filename).name, mirror=mirror, progress=progress
                )
            except CatalogError as exc:
                raise CommandError(str(exc), returncode=1) from None
        self._print_report(result)
        if not result.report.good:
            raise CommandError("the file held no valid repository line", returncode=1)

    def _print_report(self, result: ImportResult) -> None:
        counts = result.counts
        self.console.print(
            f"{counts['created']} added, {counts['already_present']} already in the catalog, "
            f"{counts['duplicates']} duplicate lines, {counts['bad']} bad lines "
            f"(format: {result.report.format})."
        )
        if result.report.bad:
            table = Table("line", "reason", "content", title="Bad lines", title_justify="left")
            for bad in result.report.bad[:MAX_BAD_LINES_SHOWN]:
                # Text() keeps rich from reading '[...]' in a hostile line as markup.
                table.add_row(str(bad.line_no), Text(bad.reason), Text(bad.raw))
            self.console.print(table)
            hidden = len(result.report.bad) - MAX_BAD_LINES_SHOWN
            if hidden > 0:
                self.console.print(f"... and {hidden} more bad lines.")
        if result.mirror_enqueued:
            self.console.print("Mirroring was queued for the new repositories.")
        elif result.created:
            self.console.print(
                "Not mirrored yet: run `marlin repos mirror --pending` or use --mirror."
            )

    def _mirror(self, options: dict[str, Any]) -> None:
        queryset = Repository.objects.order_by("pk")
        if options["all"]:
            pass
        elif options["pending"]:
            queryset = queryset.filter(
                mirror_status__in=[MirrorStatus.PENDING, MirrorStatus.FAILED]
            )
        elif options["ids"]:
            queryset = queryset.filter(pk__in=options["ids"])
            missing = sorted(set(options["ids"]) - set(queryset.values_list("pk", flat=True)))
            if missing:
                raise CommandError(
                    f"no repository with id {', '.join(map(str, missing))}", returncode=2
                )
        else:
            raise CommandError("name repository ids, or use --all or --pending", returncode=2)
        ids = list(queryset.values_list("pk", flat=True))
        failed = 0
        with Progress(
            TextColumn("mirroring"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        ) as bar:
            for pk in bar.track(ids, description="mirroring"):
                mirror_repository.call(pk)
                repository = Repository.objects.get(pk=pk)
                if repository.mirror_status != MirrorStatus.READY:
                    failed += 1
                    bar.console.print(
                        f"{repository.name} (id {pk}): {repository.mirror_status}: "
                        f"{repository.last_error}",
                        markup=False,
                    )
        self.console.print(f"{len(ids) - failed} of {len(ids)} mirrors ready.")
        if failed:
            raise CommandError(f"{failed} repositories could not be mirrored", returncode=1)
