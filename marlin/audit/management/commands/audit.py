from django.core.management.base import BaseCommand, CommandError

from marlin.audit.actions import iter_chain_problems
from marlin.audit.models import AuditEvent


class Command(BaseCommand):
    help = "Audit log tools. `audit verify` walks the hash chain and names the first broken link."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="Verify the hash chain.")
        verify.add_argument(
            "--all", action="store_true", help="List every broken link, not just the first."
        )

    def handle(self, *args, **options) -> None:
        if options["action"] == "verify":
            self._verify(show_all=options["all"])

    def _verify(self, *, show_all: bool) -> None:
        total = AuditEvent.objects.count()
        problems = []
        for problem in iter_chain_problems():
            problems.append(problem)
            if not show_all:
                break
        if not problems:
            self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {total} events verified."))
            return
        for problem in problems:
            self.stderr.write(f"BROKEN: {problem}")
        raise CommandError(
            f"Audit chain broken at event #{problems[0].sequence} ({total} events in the log)."
        )
