"""`marlin pay verify`: recompute each project's pay from the audit log and compare it with the
Earning ledger (marlin/review/pay_reconcile.py). Exits non-zero on any mismatch."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marlin.review.pay import money
from marlin.review.pay_reconcile import PayCheck, check_all
from marlin.tasks.models import Project


class Command(BaseCommand):
    help = (
        "Pay tools. `pay verify` recomputes every project's pay from the audit log's pay events "
        "and their evidence, and reports where the Earning ledger disagrees."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Reconcile the Earning ledger with the audit log.")
        verify.add_argument(
            "--project", type=int, action="append", help="Only this project id (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "verify":
            self._verify(options["project"])

    def _verify(self, project_ids: list[int] | None) -> None:
        if project_ids:
            missing = sorted(
                set(project_ids)
                - set(Project.objects.filter(pk__in=project_ids).values_list("pk", flat=True))
            )
            if missing:
                raise CommandError(f"No project with id {', '.join(map(str, missing))}.")
        checks = check_all(project_ids)
        for check in checks:
            self._report(check)
        bad = [c for c in checks if not c.ok]
        if bad:
            names = ", ".join(f"{c.project.name} (id {c.project.pk})" for c in bad)
            raise CommandError(f"Pay does not reconcile with the audit log in: {names}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Pay OK: {sum(c.earnings for c in checks)} earnings in {len(checks)} project(s) "
                "match the audit log."
            )
        )

    def _report(self, check: PayCheck) -> None:
        line = (
            f"{check.project.name} (id {check.project.pk}): ledger {money(check.ledger_cents)}, "
            f"audit log {money(check.log_cents)}, {check.earnings} earnings"
        )
        if check.ok:
            self.stdout.write(f"{line}: OK")
            return
        self.stderr.write(f"{line}: MISMATCH")
        for problem in check.problems:
            self.stderr.write(f"  - {problem}")
