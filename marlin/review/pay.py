"""Expert pay: one Earning per accepted piece of work, admin adjustments, payroll and the
throughput dashboard.

Pay is created only when a comparison is decided (marlin.review.pipeline calls the pay_*
functions inside the decision's transaction), so voided comparisons never pay anything. Each
pay_* is idempotent: the unique constraint on (user, kind, source) plus get_or_create make a
second call return the first row. The rules in words are in docs/workflow.md.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet, Sum

from marlin.accounts.models import Earning, EarningEvidence, EarningKind, ExpertProfile, User
from marlin.audit.actions import record
from marlin.permissions import require_role
from marlin.review import activity
from marlin.review.models import Comparison, Decision, Judgment, Review, WorkKind
from marlin.tasks.models import PayMode, Project

SOURCE_JUDGMENT = "review.judgment"
SOURCE_REVIEW = "review.review"
SOURCE_DECISION = "review.decision"
SOURCE_EARNING = "accounts.earning"
SOURCE_MANUAL = "manual"


class NotPayable(Exception):
    """Work that must not be paid (voided, rejected, or not decided yet); the message says why."""


def rate_cents(user: User, project: Project, kind: str) -> tuple[int, str]:
    """The rate this work is paid at and where it comes from: per hour, the expert's own rate
    when their profile sets one, else the project's; per piece of work, the project's."""
    if project.pay_mode == PayMode.HOURLY:
        own = (
            ExpertProfile.objects.filter(user=user)
            .values_list("hourly_rate_cents", flat=True)
            .first()
        )
        if own is not None:
            return own, "expert"
        return project.hourly_rate_cents, "project"
    per_item = {
        EarningKind.JUDGMENT: project.pay_per_judgment_cents,
        EarningKind.REVIEW: project.pay_per_review_cents,
        EarningKind.ADJUDICATION: project.pay_per_adjudication_cents,
    }
    return per_item[EarningKind(kind)], "project"


def _evidence(
    user: User,
    comparison: Comparison,
    kind: str,
    work_id: int,
    *,
    active_seconds: int,
    rubric_version: int | None,
) -> EarningEvidence:
    project = comparison.project
    rate, rate_from = rate_cents(user, project, kind)
    time = activity.time_of_work(_WORK_KIND[kind], work_id)
    return EarningEvidence(
        work=_WORK_KIND[kind],
        work_id=work_id,
        comparison=comparison.public_id,
        rubric_version=rubric_version,
        pay_mode=project.pay_mode,
        rate_cents=rate,
        rate_from=rate_from,
        # The time stored on the work at its submission (the sum of its sessions since time
        # is measured by the server; work submitted before that keeps what was recorded).
        active_seconds=active_seconds,
        wall_seconds=time.wall_seconds,
        heartbeats=time.heartbeats,
        intervals=time.intervals,
        sessions=list(time.sessions),
    )


_WORK_KIND: dict[str, WorkKind] = {
    EarningKind.JUDGMENT: WorkKind.JUDGMENT,
    EarningKind.REVIEW: WorkKind.REVIEW,
    EarningKind.ADJUDICATION: WorkKind.ADJUDICATION,
}


def _pay(
    user: User,
    project: Project,
    kind: str,
    source_type: str,
    source_id: int,
    evidence: EarningEvidence,
) -> Earning:
    earning, _ = Earning.objects.get_or_create(
        user=user,
        kind=kind,
        source_type=source_type,
        source_id=str(source_id),
        defaults={
            "project": project,
            "amount_cents": evidence.amount_cents(),
            "active_seconds": evidence.active_seconds,
            "evidence": evidence.model_dump(),
        },
    )
    return earning


def logged(earning: Earning) -> dict[str, Any]:
    """An Earning as the decision's audit event lists it: enough to recompute and check it."""
    return {
        "earning": earning.pk,
        "user": earning.user.username,
        "kind": earning.kind,
        "source": f"{earning.source_type}:{earning.source_id}",
        "amount_cents": earning.amount_cents,
        "evidence": earning.evidence,
    }


def _require_decided(comparison: Comparison, what: str) -> None:
    if comparison.state == "voided":
        raise NotPayable(f"{what} is on a voided comparison; voided work is never paid.")
    if comparison.state != "decided":
        raise NotPayable(
            f"{what} is on a comparison that is not decided yet; pay comes with the decision."
        )


def pay_judgment(judgment: Any) -> Earning:
    """Pay an accepted judgment (its overall preference matched the decision)."""
    what = f"Judgment {judgment.pk}"
    if judgment.status == "voided":
        raise NotPayable(f"{what} is voided; voided work is never paid.")
    _require_decided(judgment.comparison, what)
    if judgment.status != "accepted":
        raise NotPayable(f"{what} is {judgment.status}; only accepted judgments are paid.")
    comparison = judgment.comparison
    evidence = _evidence(
        judgment.annotator,
        comparison,
        EarningKind.JUDGMENT,
        judgment.pk,
        active_seconds=judgment.active_seconds,
        rubric_version=judgment.rubric_version.number,
    )
    return _pay(
        judgment.annotator,
        comparison.project,
        EarningKind.JUDGMENT,
        SOURCE_JUDGMENT,
        judgment.pk,
        evidence,
    )


def pay_review(review: Any) -> Earning:
    """Pay a completed review (any verdict, superseded ones included: the work was done)."""
    comparison = review.judgment.comparison
    _require_decided(comparison, f"Review {review.pk}")
    version = review.rubric_version.number if review.rubric_version_id else None
    evidence = _evidence(
        review.reviewer,
        comparison,
        EarningKind.REVIEW,
        review.pk,
        active_seconds=review.active_seconds,
        rubric_version=version,
    )
    return _pay(
        review.reviewer, comparison.project, EarningKind.REVIEW, SOURCE_REVIEW, review.pk, evidence
    )


def pay_adjudication(decision: Any) -> Earning:
    if decision.source != "adjudication" or decision.decided_by_id is None:
        raise NotPayable("Only a decision an adjudicator made is paid as an adjudication.")
    _require_decided(decision.comparison, f"Decision {decision.pk}")
    evidence = _evidence(
        decision.decided_by,
        decision.comparison,
        EarningKind.ADJUDICATION,
        decision.pk,
        active_seconds=decision.active_seconds,
        rubric_version=decision.rubric_version.number,
    )
    return _pay(
        decision.decided_by,
        decision.comparison.project,
        EarningKind.ADJUDICATION,
        SOURCE_DECISION,
        decision.pk,
        evidence,
    )


@transaction.atomic
def do_adjust_earning(
    actor: User,
    earning_or_user: Earning | User,
    amount_cents: int,
    reason: str,
    *,
    project: Project | None = None,
) -> Earning:
    """An admin's correction, as a new adjustment row (earnings are never edited in place)."""
    require_role(actor, "admin")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("A reason is required for an adjustment: say what it corrects.")
    if not isinstance(amount_cents, int) or amount_cents == 0:
        raise ValidationError(
            "An adjustment needs a non-zero amount in cents (negative to deduct)."
        )
    if isinstance(earning_or_user, Earning):
        adjusts: Earning | None = earning_or_user
        user, project = earning_or_user.user, earning_or_user.project
        source_type, source_id = SOURCE_EARNING, str(earning_or_user.pk)
    else:
        if project is None:
            raise ValidationError("Choose the project an adjustment to a person's pay belongs to.")
        adjusts, user = None, earning_or_user
        source_type, source_id = SOURCE_MANUAL, ""
    adjustment = Earning.objects.create(
        user=user,
        project=project,
        kind=EarningKind.ADJUSTMENT,
        source_type=source_type,
        source_id=source_id,
        amount_cents=amount_cents,
        reason=reason,
        adjusts=adjusts,
        created_by=actor,
    )
    record(
        actor,
        "earning.adjust",
        adjustment,
        new={
            "user": user.username,
            "amount_cents": amount_cents,
            "adjusts": adjusts.pk if adjusts else None,
        },
        reason=reason,
    )
    return adjustment


# Periods and reports.


def parse_period(text: str) -> tuple[datetime, datetime]:
    """'2026-11' -> [start, end) of that month in UTC; a clear error for anything else."""
    try:
        year, month = (int(part) for part in text.split("-"))
        start = datetime(year, month, 1, tzinfo=UTC)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Period {text!r} is not a month like 2026-11.") from exc
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def current_period() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def earnings_in(
    period: str, *, user: User | None = None, project: Project | None = None
) -> QuerySet[Earning]:
    start, end = parse_period(period)
    earnings = Earning.objects.filter(created_at__gte=start, created_at__lt=end)
    if user is not None:
        earnings = earnings.filter(user=user)
    if project is not None:
        earnings = earnings.filter(project=project)
    return earnings


def periods_with_earnings(user: User | None = None) -> list[str]:
    earnings = Earning.objects.all() if user is None else Earning.objects.filter(user=user)
    months = {
        created.strftime("%Y-%m") for created in earnings.values_list("created_at", flat=True)
    }
    return sorted(months | {current_period()}, reverse=True)


@dataclass(frozen=True)
class PeriodSummary:
    items: int
    active_seconds: int
    total_cents: int
    by_kind: dict[str, int]

    @property
    def active_hours(self) -> float:
        return round(self.active_seconds / 3600, 2)


def summarise(earnings: QuerySet[Earning]) -> PeriodSummary:
    work = earnings.exclude(kind=EarningKind.ADJUSTMENT)
    totals = earnings.aggregate(total=Sum("amount_cents"))
    seconds = work.aggregate(seconds=Sum("active_seconds"))
    by_kind = dict(work.order_by().values_list("kind").annotate(n=Count("id")))
    return PeriodSummary(work.count(), seconds["seconds"] or 0, totals["total"] or 0, by_kind)


@dataclass(frozen=True)
class PayrollRow:
    user: str
    pseudonym: str
    items: int
    active_hours: str
    total: str


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def payroll_rows(period: str, project: Project | None = None) -> list[PayrollRow]:
    earnings = earnings_in(period, project=project)
    per_user: dict[int, dict[str, int]] = defaultdict(
        lambda: {"items": 0, "seconds": 0, "cents": 0}
    )
    for user_id, kind, cents, seconds in earnings.values_list(
        "user_id", "kind", "amount_cents", "active_seconds"
    ):
        row = per_user[user_id]
        row["cents"] += cents
        if kind != EarningKind.ADJUSTMENT:
            row["items"] += 1
            row["seconds"] += seconds
    users = User.objects.in_bulk(list(per_user))
    return [
        PayrollRow(
            user=users[user_id].username,
            pseudonym=users[user_id].pseudonym,
            items=row["items"],
            active_hours=f"{row['seconds'] / 3600:.2f}",
            total=money(row["cents"]),
        )
        for user_id, row in sorted(per_user.items(), key=lambda item: users[item[0]].username)
    ]


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), a DDE
# call); a leading apostrophe makes it text. Plain numbers we wrote ourselves stay numbers.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def spreadsheet_cell(value: object) -> str:
    """The value as a CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def payroll_csv(rows: list[PayrollRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["user", "pseudonym", "items", "active_hours", "total"])
    for row in rows:
        cells = [row.user, row.pseudonym, row.items, row.active_hours, row.total]
        writer.writerow([spreadsheet_cell(cell) for cell in cells])
    return out.getvalue()


# The admin dashboard.


@dataclass(frozen=True)
class Dashboard:
    throughput: list[tuple[date, int]]
    decided: int
    median_active_minutes: float | None
    agreement_rate: float | None
    cost_per_decided_cents: int | None


def _comparisons_paid(earnings: QuerySet[Earning]) -> dict[int, int]:
    """Comparison id -> cents paid for work on it (adjustments are not tied to a comparison)."""
    by_source: dict[str, dict[int, int]] = defaultdict(dict)
    for source_type, source_id, cents in earnings.values_list(
        "source_type", "source_id", "amount_cents"
    ):
        by_source[source_type][int(source_id)] = (
            by_source[source_type].get(int(source_id), 0) + cents
        )
    owners = {
        SOURCE_JUDGMENT: dict(
            Judgment.objects.filter(pk__in=by_source[SOURCE_JUDGMENT]).values_list(
                "pk", "comparison_id"
            )
        ),
        SOURCE_REVIEW: dict(
            Review.objects.filter(pk__in=by_source[SOURCE_REVIEW]).values_list(
                "pk", "judgment__comparison_id"
            )
        ),
        SOURCE_DECISION: dict(
            Decision.objects.filter(pk__in=by_source[SOURCE_DECISION]).values_list(
                "pk", "comparison_id"
            )
        ),
    }
    paid: dict[int, int] = defaultdict(int)
    for source_type, amounts in by_source.items():
        for piece_id, cents in amounts.items():
            comparison_id = owners.get(source_type, {}).get(piece_id)
            if comparison_id is not None:
                paid[comparison_id] += cents
    return paid


def dashboard(
    *, project: Project | None = None, days: int = 30, today: date | None = None
) -> Dashboard:
    """Figures over the last `days` days (decisions made in that window)."""
    today = today or datetime.now(UTC).date()
    first_day = today - timedelta(days=days - 1)
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    decisions = Decision.objects.filter(decided_at__gte=start)
    judgments = Judgment.objects.filter(submitted_at__gte=start).exclude(
        status__in=["draft", "voided"]
    )
    if project is not None:
        decisions = decisions.filter(comparison__project=project)
        judgments = judgments.filter(comparison__project=project)
    per_day: dict[date, int] = defaultdict(int)
    sources: list[str] = []
    comparison_ids: list[int] = []
    for decided_at, source, comparison_id in decisions.values_list(
        "decided_at", "source", "comparison_id"
    ):
        per_day[decided_at.astimezone(UTC).date()] += 1
        sources.append(source)
        comparison_ids.append(comparison_id)
    seconds = list(judgments.values_list("active_seconds", flat=True))
    # Work is paid in the decision's transaction, so its earnings are no older than `start`.
    work = Earning.objects.exclude(kind=EarningKind.ADJUSTMENT).filter(created_at__gte=start)
    paid = _comparisons_paid(work)
    cost = sum(paid.get(comparison_id, 0) for comparison_id in comparison_ids)
    return Dashboard(
        throughput=[
            (first_day + timedelta(days=n), per_day.get(first_day + timedelta(days=n), 0))
            for n in range(days)
        ],
        decided=len(sources),
        median_active_minutes=round(statistics.median(seconds) / 60, 1) if seconds else None,
        agreement_rate=round(sources.count("agreement") / len(sources), 3) if sources else None,
        cost_per_decided_cents=round(cost / len(sources)) if sources else None,
    )
