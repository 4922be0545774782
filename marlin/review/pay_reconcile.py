"""A project's pay recomputed from the audit log and compared with the Earning ledger
(`marlin pay verify`, and `marlin audit verify` once the chain holds, through audit's
``log_verified`` signal).

Every Earning is written inside an audited action: work is paid in the decision's transaction
and its event (``comparison.decided`` or ``comparison.adjudicated``) lists each Earning with its
amount and evidence; an admin's adjustment has its own ``earning.adjust`` event. So the log alone
says what each person was paid, and the evidence says why: ``EarningEvidence.amount_cents()``
recomputes the amount from the server-measured time and the rate.

This finds a ledger changed behind the application's back (an amount raised in the database, an
Earning added or deleted without its event). It trusts the log: that the log itself was not
rewritten is what ``marlin audit verify`` checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from marlin.accounts.models import Earning, EarningEvidence, EarningKind
from marlin.audit.models import AuditEvent
from marlin.tasks.models import Project

PAY_VERBS = ("comparison.decided", "comparison.adjudicated", "earning.adjust")


@dataclass
class PayCheck:
    """One project's pay: the ledger's total, the audit log's, and every disagreement."""

    project: Project
    ledger_cents: int = 0
    log_cents: int = 0
    earnings: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.ledger_cents == self.log_cents


@dataclass
class _Logged:
    amount_cents: int
    user: str
    kind: str
    evidence: dict[str, Any] | None  # None for adjustments
    sequence: int


def _logged_pay(project: Project) -> tuple[dict[int, _Logged], list[_Logged]]:
    """What the audit log says was paid on the project: by Earning id, and entries written before
    pay events named their Earning (matched by person, kind and amount)."""
    by_id: dict[int, _Logged] = {}
    unnamed: list[_Logged] = []
    events = AuditEvent.objects.filter(project_id=project.pk, verb__in=PAY_VERBS).order_by(
        "sequence"
    )
    for event in events.iterator(chunk_size=500):
        values = event.new_values or {}
        if event.verb == "earning.adjust":
            entry = _Logged(
                int(values.get("amount_cents", 0)),
                str(values.get("user", "")),
                EarningKind.ADJUSTMENT,
                None,
                event.sequence,
            )
            by_id[int(event.object_id)] = entry
            continue
        for paid in values.get("earnings", []):
            entry = _Logged(
                int(paid.get("amount_cents", 0)),
                str(paid.get("user", "")),
                str(paid.get("kind", "")),
                paid.get("evidence"),
                event.sequence,
            )
            if "earning" in paid:
                by_id[int(paid["earning"])] = entry
            else:
                unnamed.append(entry)
    return by_id, unnamed


def _describe(earning: Earning) -> str:
    return (
        f"earning #{earning.pk} ({earning.user.username}, {earning.kind}, "
        f"{earning.source_type}:{earning.source_id}, {earning.amount_cents} c)"
    )


def _evidence_problems(earning: Earning, logged: _Logged) -> Iterable[str]:
    if earning.kind == EarningKind.ADJUSTMENT:
        return
    if logged.evidence is not None and logged.evidence != earning.evidence:
        yield (
            f"{_describe(earning)}: its evidence differs from the evidence in audit event "
            f"#{logged.sequence}"
        )
    try:
        evidence = EarningEvidence.model_validate(logged.evidence or earning.evidence)
    except ValidationError:
        yield f"{_describe(earning)}: it names no valid evidence to recompute its amount from"
        return
    recomputed = evidence.amount_cents()
    if recomputed != logged.amount_cents:
        yield (
            f"{_describe(earning)}: its evidence ({evidence.active_seconds} s active at "
            f"{evidence.rate_cents} c, {evidence.pay_mode}) gives {recomputed} c, "
            f"the audit log says {logged.amount_cents} c"
        )


def check_project(project: Project) -> PayCheck:
    """Compare the project's Earning rows with the pay its audit events record."""
    check = PayCheck(project)
    by_id, unnamed = _logged_pay(project)
    check.log_cents = sum(e.amount_cents for e in by_id.values()) + sum(
        e.amount_cents for e in unnamed
    )
    rows = Earning.objects.filter(project=project).select_related("user").order_by("pk")
    for earning in rows.iterator(chunk_size=500):
        check.earnings += 1
        check.ledger_cents += earning.amount_cents
        logged = by_id.pop(earning.pk, None)
        if logged is None:
            logged = _take_unnamed(unnamed, earning)
        if logged is None:
            check.problems.append(f"{_describe(earning)} has no pay event in the audit log")
            continue
        if logged.amount_cents != earning.amount_cents or logged.user != earning.user.username:
            check.problems.append(
                f"{_describe(earning)}: the audit log (event #{logged.sequence}) pays "
                f"{logged.user} {logged.amount_cents} c"
            )
        check.problems.extend(_evidence_problems(earning, logged))
    for earning_id, logged in sorted(by_id.items()):
        check.problems.append(
            f"audit event #{logged.sequence} pays earning #{earning_id} ({logged.user}, "
            f"{logged.kind}, {logged.amount_cents} c), which is not in the ledger"
        )
    for logged in unnamed:
        check.problems.append(
            f"audit event #{logged.sequence} pays {logged.user} {logged.amount_cents} c for a "
            f"{logged.kind}, which no ledger row matches"
        )
    return check


def _take_unnamed(unnamed: list[_Logged], earning: Earning) -> _Logged | None:
    for index, logged in enumerate(unnamed):
        if (logged.user, logged.kind, logged.amount_cents) == (
            earning.user.username,
            earning.kind,
            earning.amount_cents,
        ):
            return unnamed.pop(index)
    return None


def check_all(project_ids: list[int] | None = None) -> list[PayCheck]:
    """Every project that has earnings or pay events (or the ones named), in id order."""
    if project_ids is None:
        with_rows = set(Earning.objects.values_list("project_id", flat=True).distinct())
        with_events = set(
            AuditEvent.objects.filter(verb__in=PAY_VERBS, project_id__isnull=False)
            .values_list("project_id", flat=True)
            .distinct()
        )
        project_ids = sorted(with_rows | {int(pk) for pk in with_events if pk is not None})
    projects = Project.objects.in_bulk(project_ids)
    return [check_project(projects[pk]) for pk in project_ids if pk in projects]


def pay_problems(sender: object, **kwargs: object) -> list[str]:
    """The ``log_verified`` receiver: one sentence per disagreement, in every project."""
    problems = []
    for check in check_all():
        name = f"pay of project {check.project.name} (id {check.project.pk})"
        if check.ledger_cents != check.log_cents:
            problems.append(
                f"{name}: the ledger says {check.ledger_cents} c, the audit log {check.log_cents} c"
            )
        problems.extend(f"{name}: {problem}" for problem in check.problems)
    return problems
