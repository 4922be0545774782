"""`marlin restore SRC [--without-audit-key]` (docs/deploy.md, "Backups and restore")."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marlin.backups.manifest import BackupError
from marlin.backups.restore import restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `marlin backup` into an empty database and data directory, "
        "after checking its checksums, signature and schema."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("src", type=Path, help="the folder `marlin backup` wrote")
        parser.add_argument(
            "--without-audit-key",
            action="store_true",
            help="restore although the audit key that signed the events is not configured "
            "(`marlin audit verify` fails until it is)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notes = restore(options["src"], without_audit_key=options["without_audit_key"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(notes[0]))
        for note in notes[1:]:
            self.stdout.write(note)
