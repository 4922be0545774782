"""`marlin audit verify` and `marlin audit checkpoint` (docs/security.md)."""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from marlin.audit.actions import BrokenLink, iter_chain_problems
from marlin.audit.checkpoints import (
    CheckpointError,
    checkpoint_file,
    checkpoint_problems,
    read_checkpoints,
    write_checkpoint,
)
from marlin.audit.models import Algorithm, AuditEvent
from marlin.audit.signals import log_verified


class Command(BaseCommand):
    help = (
        "Audit log tools. `audit verify` walks the keyed hash chain and compares it with the "
        "signed checkpoints; `audit checkpoint` signs the chain's head and appends it to the "
        "checkpoint file."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Verify the chain and the checkpoints.")
        verify.add_argument(
            "--all", action="store_true", help="List every broken link, not just the first."
        )
        verify.add_argument(
            "--checkpoints",
            metavar="FILE",
            type=Path,
            help="Checkpoint file to compare with (default: MARLIN_AUDIT_CHECKPOINT_FILE or "
            "DATA_DIR/audit-checkpoints.jsonl, when it exists).",
        )
        checkpoint = sub.add_parser(
            "checkpoint", help="Sign the chain's head and append it to the checkpoint file."
        )
        checkpoint.add_argument(
            "--file", metavar="FILE", type=Path, help="Append here instead of the default file."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "verify":
            self._verify(show_all=options["all"], checkpoints=options["checkpoints"])
        else:
            self._checkpoint(options["file"])

    def _checkpoint(self, path: Path | None) -> None:
        try:
            checkpoint = write_checkpoint(path)
        except CheckpointError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(checkpoint.line())

    def _verify(self, *, show_all: bool, checkpoints: Path | None) -> None:
        if checkpoints is None and checkpoint_file().exists():
            checkpoints = checkpoint_file()
        if checkpoints is not None and not checkpoints.exists():
            raise CommandError(f"Cannot read the checkpoint file {checkpoints}: no such file.")
        problems: list[BrokenLink] = []
        for problem in iter_chain_problems():
            problems.append(problem)
            if not show_all:
                break
        if checkpoints is not None and (show_all or not problems):
            for problem in checkpoint_problems(checkpoints):
                problems.append(problem)
                if not show_all:
                    break
        if not problems:
            # The log holds: the apps above compare their rows with it (pay with the ledger).
            for _, found in log_verified.send(sender=AuditEvent):
                problems.extend(BrokenLink(0, 0, str(problem)) for problem in found or [])
        total = AuditEvent.objects.count()
        if problems:
            for problem in problems:
                self.stderr.write(f"BROKEN: {problem}")
            raise CommandError(f"Audit log broken: {problems[0]} ({total} events in the log).")
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {total} events verified."))
        self.stdout.write(self._summary())
        if checkpoints is None:
            self.stdout.write(
                self.style.WARNING(
                    f"No checkpoint file ({checkpoint_file()}): without one, deleted newest "
                    "events or a chain re-signed with the key would not show. Write checkpoints "
                    "with `marlin audit checkpoint` and keep them where the database cannot reach."
                )
            )
        else:
            count = sum(1 for _ in read_checkpoints(checkpoints))
            self.stdout.write(f"{count} checkpoints in {checkpoints} match the log.")

    def _summary(self) -> str:
        counts = AuditEvent.objects.order_by().values("algorithm", "key_id").annotate(n=Count("id"))
        keyed = [f"{row['key_id']} ({row['n']})" for row in counts if row["key_id"]]
        unkeyed = sum(row["n"] for row in counts if row["algorithm"] == Algorithm.SHA256)
        return (
            f"Signed with audit keys: {', '.join(sorted(keyed)) or 'none yet'}; "
            f"unkeyed events from before the keyed chain: {unkeyed}."
        )
