"""`marlin backup DEST [--with-mirrors]` (docs/deploy.md, "Backups and restore")."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from marlin.backups.backup import make_backup
from marlin.backups.manifest import BackupError


class Command(BaseCommand):
    help = (
        "Back up the database (a consistent dump), the exports and the audit checkpoints into a "
        "new folder with a signed manifest; never a key. Mirrors only with --with-mirrors."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dest", type=Path, help="a new (or empty) folder for the backup")
        parser.add_argument(
            "--with-mirrors",
            action="store_true",
            help="also the repositories' mirrors (they can be fetched again instead)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            manifest = make_backup(options["dest"], with_mirrors=options["with_mirrors"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        files = manifest["files"]
        size = sum(entry["size"] for entry in files)
        keys = manifest["keys"]
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written to {options['dest']}: {manifest['database']['vendor']} database "
                f"({sum(manifest['counts'].values())} rows), {len(files)} files, "
                f"{size / 1e6:.1f} MB."
            )
        )
        self.stdout.write(
            "Keys the data needs (not in the backup; keep them safe elsewhere): audit key ids "
            f"{', '.join(keys['audit_key_ids_used_by_events']) or 'none'}; agents' API keys: "
            f"{len(keys['agent_api_keys'])} named in manifest.json."
        )
