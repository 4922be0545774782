"""Earnings pages: an expert's own pay and time per month, the admins' payroll CSV, adjustments
and the throughput dashboard. Mounted at /account/earnings/."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import Earning, EarningKind, User
from marlin.permissions import role_required
from marlin.review import pay
from marlin.review.models import Decision, Judgment, Review
from marlin.tasks.models import Project


def _period(request: AuthenticatedHttpRequest) -> str:
    period = request.GET.get("period", "").strip() or pay.current_period()
    try:
        pay.parse_period(period)
    except ValueError as exc:
        raise Http404(str(exc)) from exc
    return period


def _comparison_links(rows: list[Earning]) -> dict[int, str]:
    """Earning id -> the public id of the comparison the work was on (for links)."""
    ids: dict[str, list[int]] = {}
    for row in rows:
        if row.source_id.isdigit():
            ids.setdefault(row.source_type, []).append(int(row.source_id))
    owners = {
        pay.SOURCE_JUDGMENT: dict(
            Judgment.objects.filter(pk__in=ids.get(pay.SOURCE_JUDGMENT, [])).values_list(
                "pk", "comparison__public_id"
            )
        ),
        pay.SOURCE_REVIEW: dict(
            Review.objects.filter(pk__in=ids.get(pay.SOURCE_REVIEW, [])).values_list(
                "pk", "judgment__comparison__public_id"
            )
        ),
        pay.SOURCE_DECISION: dict(
            Decision.objects.filter(pk__in=ids.get(pay.SOURCE_DECISION, [])).values_list(
                "pk", "comparison__public_id"
            )
        ),
    }
    links = {}
    for row in rows:
        public_id = (
            owners.get(row.source_type, {}).get(int(row.source_id))
            if row.source_id.isdigit()
            else None
        )
        if public_id:
            links[row.pk] = public_id
    return links


@login_required
def my_earnings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Your earnings and active time in a month; admins may look at anyone's (?user=)."""
    person: User = request.user
    username = request.GET.get("user", "").strip()
    if username and username != person.username:
        if not person.has_role("admin"):
            raise Http404("No such page.")
        person = get_object_or_404(User, username=username)
    period = _period(request)
    rows = pay.earnings_in(period, user=person).select_related("project").order_by("-created_at")
    kind = request.GET.get("kind", "")
    summary = pay.summarise(rows)
    if kind in EarningKind.values:
        rows = rows.filter(kind=kind)
    page = Paginator(rows, 100).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context: dict[str, Any] = {
        "person": person,
        "period": period,
        "periods": pay.periods_with_earnings(person),
        "summary": summary,
        "page": page,
        "links": _comparison_links(list(page.object_list)),
        "kinds": EarningKind.choices,
        "kind": kind,
        "filters": query.urlencode(),
        "projects": Project.objects.all() if request.user.has_role("admin") else [],
    }
    return render(request, "accounts/earnings.html", context)


@role_required()
def payroll_csv(request: AuthenticatedHttpRequest) -> HttpResponse:
    period = _period(request)
    project = None
    if request.GET.get("project"):
        project = get_object_or_404(Project, pk=request.GET["project"])
    body = pay.payroll_csv(pay.payroll_rows(period, project))
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="payroll-{period}.csv"'
    return response


def _back_to(person: User) -> HttpResponse:
    return redirect(f"{reverse('earnings:mine')}?{urlencode({'user': person.username})}")


@role_required()
@require_POST
def adjust(request: AuthenticatedHttpRequest) -> HttpResponse:
    person = get_object_or_404(User, username=request.POST.get("user", ""))
    try:
        amount = int(request.POST.get("amount_cents", ""))
    except ValueError:
        messages.error(
            request, "The amount must be a whole number of cents, e.g. -500 to deduct $5.00."
        )
        return _back_to(person)
    target: Earning | User = person
    project = None
    if request.POST.get("earning"):
        target = get_object_or_404(Earning, pk=request.POST["earning"], user=person)
    elif request.POST.get("project"):
        project = get_object_or_404(Project, pk=request.POST["project"])
    try:
        pay.do_adjust_earning(
            request.user, target, amount, request.POST.get("reason", ""), project=project
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Adjustment of {amount} cents recorded for {person.username}.")
    return _back_to(person)


def _stale_judgments_per_project() -> list[tuple[Project, int]]:
    """Projects that re-review after rubric changes, with how many judgments in review or
    disputed were made under an older rubric version."""
    rows = []
    for project in Project.objects.filter(rereview_on_rubric_change=True).select_related("rubric"):
        current = project.rubric.current_version()
        stale = (
            Judgment.objects.filter(
                comparison__project=project,
                comparison__state__in=["in_review", "disputed"],
                status="submitted",
            )
            .exclude(rubric_version=current)
            .count()
        )
        rows.append((project, stale))
    return rows


@role_required()
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    project = None
    if request.GET.get("project"):
        project = get_object_or_404(Project, pk=request.GET["project"])
    try:
        days = max(1, min(int(request.GET.get("days", 30)), 366))
    except ValueError:
        days = 30
    figures = pay.dashboard(project=project, days=days)
    peak = max((n for _, n in figures.throughput), default=0) or 1
    context = {
        "stale": _stale_judgments_per_project(),
        "figures": figures,
        "bars": [(day, n, round(100 * n / peak)) for day, n in figures.throughput],
        "project": project,
        "projects": Project.objects.all(),
        "days": days,
        "period": pay.current_period(),
    }
    return render(request, "accounts/earnings_dashboard.html", context)
