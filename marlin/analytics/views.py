"""Leaderboard pages: plain and style-controlled rankings, charts and agreement tables.

Agent names are shown only to roles allowed to know them (admin, author, adjudicator); everyone
else sees "Agent 1..K" numbered by plain rank, and no agent ids anywhere (not in filters either).
Per-expert tables (rater quality) are for admins and adjudicators.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.db.models import Max, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from marlin.accounts.http import AuthenticatedHttpRequest
from marlin.accounts.models import User
from marlin.agents.models import Agent
from marlin.analytics import active, charts, queue_order
from marlin.analytics.bt import ELO_BASE, ELO_PER_LOG
from marlin.analytics.coefficients import Coefficient
from marlin.analytics.confidence import DEFAULT_MIN_COMPARISONS, TIE_MODELS
from marlin.analytics.experts import experts_report
from marlin.analytics.queries import (
    DEFAULT_ROUNDS,
    MAX_ROUNDS,
    DecisionFilters,
    FilterError,
    Leaderboard,
    agent_labels,
    agreement_details,
    criterion_agreement,
    criterion_keys,
    expert_rows,
    leaderboard,
    relabel,
)
from marlin.analytics.raters import RaterFit
from marlin.analytics.references import rank_correlation, reference_board
from marlin.analytics.weak_label_report import weak_label_report
from marlin.permissions import role_required
from marlin.tasks.models import Project, TaskKind

VIEWER_ROLES = ("author", "adjudicator", "reviewer", "annotator")
NAME_ROLES = ("admin", "author", "adjudicator")
EXPERT_TABLE_ROLES = ("admin", "adjudicator")


def can_see_agent_names(user: User) -> bool:
    return user.has_role(*NAME_ROLES)


def _score(value: float) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def default_rounds() -> int:
    return int(getattr(settings, "LEADERBOARD_BOOTSTRAP_ROUNDS", DEFAULT_ROUNDS))


def _rounds(request: AuthenticatedHttpRequest) -> int:
    raw = request.GET.get("rounds", "").strip()
    if not raw:
        return default_rounds()
    try:
        rounds = int(raw)
    except ValueError:
        raise FilterError(f"rounds must be a whole number 0..{MAX_ROUNDS}; got {raw!r}") from None
    if not 0 <= rounds <= MAX_ROUNDS:
        raise FilterError(f"rounds must lie in 0..{MAX_ROUNDS}; got {rounds}")
    return rounds


def no_ranking_message(board: Leaderboard, labels: dict[str, str]) -> str:
    if board.disconnected_groups:
        groups = "; ".join(
            "{" + ", ".join(labels.get(a, a) for a in group) + "}"
            for group in board.disconnected_groups
        )
        return (
            f"The comparisons split the agents into {len(board.disconnected_groups)} groups "
            f"that were never compared with each other: {groups}. Their strengths are not "
            "comparable; add comparisons that link the groups, or filter to one group."
        )
    return (
        f"Not enough data for a ranking yet ({board.n_decisions} decided comparisons match): "
        f"{board.error}."
    )


def leaderboard_context(
    project: Project, board: Leaderboard, *, show_names: bool
) -> dict[str, Any]:
    group_ids = [a for group in board.disconnected_groups for a in group]
    labels = agent_labels(board.plain, group_ids, show_names=show_names)
    context: dict[str, Any] = {
        "board": board,
        "labels": labels,
        "tie_model_label": TIE_MODELS.get(board.tie_model, board.tie_model),
        "min_comparisons": DEFAULT_MIN_COMPARISONS,
    }
    if board.plain is None:
        context["no_ranking"] = no_ranking_message(board, labels)
        return context
    if board.disconnected_groups:
        ranked = {a.agent for a in board.plain.agents}
        context["partial_notice"] = no_ranking_message(board, labels)
        context["unranked"] = [
            labels[a] for g in board.disconnected_groups for a in g if a not in ranked
        ]
    named = relabel(board.plain, labels)
    se = board.se or [math.nan] * len(named.agents)
    provisional = board.provisional or [""] * len(named.agents)
    context["plain_rows"] = [
        {
            "label": a.agent,
            "score": _score(a.score),
            "se": _score(err) if math.isinf(err) else _num(err, 0),
            "lower": _score(a.lower),
            "upper": _score(a.upper),
            "rank": a.rank,
            "rank_lower": a.rank_lower,
            "rank_upper": a.rank_upper,
            "comparisons": a.comparisons,
            "wins": a.wins,
            "losses": a.losses,
            "ties": a.ties,
            "provisional": why,
        }
        for a, err, why in zip(named.agents, se, provisional, strict=True)
    ]
    context["separation_rows"] = [
        {
            "upper": s["upper_rank"],
            "lower": s["upper_rank"] + 1,
            "gap": _num(s["gap"], 0),
            "se": _num(s["se"], 0),
            "z": _num(s["z"], 1),
            "more": s["more"],
            "separated": s["separated"],
        }
        for s in board.separation
    ]
    context["ci_svg"] = charts.ci_chart(named, title=f"{project.name}: scores with 95% intervals")
    context["heatmap_svg"] = charts.heatmap(
        named.labels, named.win_rate, title="Win rate (row over column, ties half)"
    )
    if board.style is not None:
        context["style_rows"] = [
            {
                "label": labels[s.agent],
                "score": _score(s.score),
                "lower": _score(s.lower),
                "upper": _score(s.upper),
                "rank": s.rank,
                "plain_rank": s.plain_rank,
            }
            for s in board.style.agents
        ]
        context["style_coefficients"] = [
            {"name": name, "value": _num(value, 3), "se": _num(board.style.std_errors[name], 3)}
            for name, value in board.style.coefficients.items()
        ]
    return context


def _coefficient_rows(results: list[Coefficient | tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        if isinstance(r, Coefficient):
            rows.append(
                {
                    "name": r.name,
                    "weights": r.weights,
                    "value": _num(r.value, 3),
                    "se": _num(r.se, 3),
                    "interval": f"{r.lower:.2f} to {r.upper:.2f}",
                    "method": "± t·SE" if r.interval == "t" else "bootstrap",
                    "units": r.units,
                    "message": "",
                }
            )
        else:
            rows.append({"name": r[0], "message": r[1]})
    return rows


def _agreement_context(project: Project, filters: DecisionFilters, user: User) -> dict[str, Any]:
    rows = [
        {
            "criterion": r.criterion,
            "units": r.units,
            "alpha": _num(r.alpha),
            "percent": _pct(r.percent),
            "message": r.message,
        }
        for r in criterion_agreement(project, filters)
    ]
    context: dict[str, Any] = {
        "criterion_rows": rows,
        "coefficient_rows": _coefficient_rows(agreement_details(project, filters)),
    }
    if user.has_role(*EXPERT_TABLE_ROLES):
        experts = expert_rows(project, filters)
        names = dict(
            User.objects.filter(pk__in=[e.user_id for e in experts]).values_list("pk", "username")
        )
        context["expert_rows"] = [
            {
                "name": names.get(e.user_id, "?"),
                "judgments": e.judgments,
                "agreement": _pct(e.agreement),
                "distance": _num(e.mean_abs_distance),
                "sided": e.sided,
                "share_a": _pct(e.share_a),
                "p_value": _num(e.p_value, 3),
                "flag": e.p_value is not None and e.p_value < 0.05,
            }
            for e in experts
        ]
    return context


def _reference_context(
    project: Project, board: Leaderboard, filters: DecisionFilters, rounds: int
) -> dict[str, Any]:
    """The imported reference judgments' ranking and its rank correlation with the experts'.

    Only for roles that may see agent names: reference models are named, and matching them to
    the experts' anonymous labels would unblind.
    """
    reference = reference_board(project, filters.ties, rounds=min(rounds, 200))
    if not reference.sets:
        return {}
    context: dict[str, Any] = {"reference": reference}
    if reference.ranking is not None:
        se = reference.se or [math.nan] * len(reference.ranking.agents)
        why = reference.provisional or [""] * len(reference.ranking.agents)
        context["reference_rows"] = [
            {
                "rank": a.rank,
                "label": a.agent,
                "score": _score(a.score),
                "se": _score(err) if math.isinf(err) else _num(err, 0),
                "lower": _score(a.lower),
                "upper": _score(a.upper),
                "comparisons": a.comparisons,
                "provisional": reason,
            }
            for a, err, reason in zip(reference.ranking.agents, se, why, strict=True)
        ]
        corr = rank_correlation(board.plain, reference.ranking)
        names = agent_labels(board.plain, [], show_names=True) if board.plain else {}
        context["reference_correlation"] = {
            "spearman": _num(corr.spearman, 2),
            "spearman_p": _num(corr.spearman_p, 3),
            "kendall": _num(corr.kendall, 2),
            "kendall_p": _num(corr.kendall_p, 3),
            "matched": len(corr.matched),
            "pairs": [f"{names.get(a, a)} = {ref}" for a, ref in corr.matched],
            "message": corr.message,
        }
    return context


@role_required(*VIEWER_ROLES)
def project_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    projects = Project.objects.filter(is_active=True).order_by("name")
    return render(request, "analytics/project_list.html", {"projects": projects})


@role_required(*VIEWER_ROLES)
def project_leaderboard(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.select_related("rubric"), pk=project_id)
    show_names = can_see_agent_names(request.user)
    context: dict[str, Any] = {
        "project": project,
        "show_names": show_names,
        "kinds": TaskKind.choices,
        "criteria": criterion_keys(project),
        "query": request.GET,
        "default_rounds": default_rounds(),
        "tie_models": list(TIE_MODELS.items()),
        "rubric_versions": list(project.rubric.versions.values_list("number", flat=True)),
        "turn_choices": range(
            1, (project.comparisons.aggregate(m=Max("turn_count"))["m"] or 1) + 1
        ),
    }
    if show_names:
        context["agents"] = (
            Agent.objects.filter(Q(runs__task__project=project) | Q(projects=project))
            .distinct()
            .order_by("name", "version_label")
        )
    try:
        filters = DecisionFilters.from_mapping(request.GET)
        if filters.agents and not show_names:
            raise FilterError("filtering by agent is only for roles that may see agent names")
        if filters.criterion not in context["criteria"]:
            raise FilterError(
                f"criterion must be one of {', '.join(context['criteria'])}; "
                f"got {filters.criterion!r}"
            )
        rounds = _rounds(request)
    except FilterError as exc:
        context["filter_error"] = str(exc)
        return render(request, "analytics/leaderboard.html", context, status=400)
    board = leaderboard(project, filters, rounds=rounds)
    context.update(filters=filters, rounds=rounds, selected_agents=[str(a) for a in filters.agents])
    context.update(leaderboard_context(project, board, show_names=show_names))
    context.update(_agreement_context(project, filters, request.user))
    if show_names:
        context.update(_reference_context(project, board, filters, rounds))
    if request.GET.get("skill_weighted") == "1":
        report = experts_report(project, filters)
        context["skill_weighted"] = True
        context["skill_weighted_error"] = report.error
        if report.fit is not None:
            context["weighted_rows"] = _skill_weighted_rows(
                report.fit, board, show_names=show_names
            )
            context["n_judgments"] = report.fit.n_judgments
    return render(request, "analytics/leaderboard.html", context)


def _range(lower: float | None, upper: float | None, fmt: str = "{:.2f}") -> str:
    if lower is None or upper is None:
        return "—"
    return f"{fmt.format(lower)} to {fmt.format(upper)}"


@role_required(*NAME_ROLES)
def project_selection(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    """Why the next tasks get the pairs they get: active selection's next pairs and figures."""
    project = get_object_or_404(Project, pk=project_id)
    return render(
        request,
        "analytics/selection.html",
        {
            "project": project,
            "preview": active.preview(project),
            "kinds": dict(TaskKind.choices),
            "queue": queue_order.next_in_queue(project),
        },
    )


# The weak label may anchor a judgment, so annotators do not get its report; reviewers may.
WEAK_LABEL_ROLES = ("admin", "author", "adjudicator", "reviewer")


@role_required(*WEAK_LABEL_ROLES)
def project_weak_labels(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    """How well the checks, combined by the label model, predict the experts' decisions."""
    project = get_object_or_404(Project, pk=project_id)
    result = weak_label_report(project)
    report = result.report
    context: dict[str, Any] = {
        "project": project,
        "result": result,
        "functions": [
            {"name": f.name, "coverage": _pct(f.coverage), "accuracy": _pct(f.accuracy)}
            for f in result.functions
        ],
    }
    if report is not None:
        context["summary"] = {
            "coverage": _pct(report.coverage),
            "accuracy": _pct(report.accuracy),
            "brier": _num(report.brier),
            "calibration_error": _num(report.calibration_error),
            "triage_share": _pct(report.triage_share),
            "triage_accuracy": _pct(report.triage_accuracy),
        }
        context["bins"] = [
            {"confidence": _pct(c), "accuracy": _pct(a), "n": n} for c, a, n in report.bins
        ]
    return render(request, "analytics/weak_labels.html", context)


@role_required(*EXPERT_TABLE_ROLES)
def project_experts(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    """Rater quality: skill, side bias, ties, agreement with decisions and speed per expert,
    and the skill-weighted leaderboard beside the plain one."""
    project = get_object_or_404(Project.objects.select_related("rubric"), pk=project_id)
    context: dict[str, Any] = {
        "project": project,
        "kinds": TaskKind.choices,
        "criteria": criterion_keys(project),
        "query": request.GET,
    }
    try:
        filters = DecisionFilters.from_mapping(request.GET)
        if filters.criterion not in context["criteria"]:
            raise FilterError(
                f"criterion must be one of {', '.join(context['criteria'])}; "
                f"got {filters.criterion!r}"
            )
    except FilterError as exc:
        context["filter_error"] = str(exc)
        return render(request, "analytics/experts.html", context, status=400)
    report = experts_report(project, filters)
    names = dict(
        User.objects.filter(pk__in=[r.user_id for r in report.rows]).values_list("pk", "username")
    )
    context["error"] = report.error
    context["expert_rows"] = [
        {
            "name": names.get(r.user_id, "?"),
            "judgments": r.judgments,
            "skill": _num(r.quality.skill) if r.quality else "—",
            "skill_range": _range(r.quality.skill_lower, r.quality.skill_upper)
            if r.quality
            else "—",
            "prefer_a": _pct(r.quality.prefer_a_when_equal) if r.quality else "—",
            "bias_range": _range(r.quality.bias_lower, r.quality.bias_upper) if r.quality else "—",
            "bias_flag": bool(r.quality and (r.quality.bias_lower > 0 or r.quality.bias_upper < 0)),
            "ties": _pct(r.quality.tie_propensity) if r.quality else "—",
            "agreement": _pct(r.agreement),
            "agreement_range": _range(r.agreement_lower, r.agreement_upper, "{:.0%}"),
            "decided": r.decided,
            "minutes": _num(r.minutes, 1),
            "minutes_range": _range(r.minutes_lower, r.minutes_upper, "{:.1f}"),
        }
        for r in report.rows
    ]
    if report.fit is not None:
        board = leaderboard(project, filters, rounds=default_rounds())
        context["weighted_rows"] = _skill_weighted_rows(report.fit, board, show_names=True)
        context["n_judgments"] = report.fit.n_judgments
    return render(request, "analytics/experts.html", context)


def _skill_weighted_rows(
    fit: RaterFit, board: Leaderboard, *, show_names: bool
) -> list[dict[str, Any]]:
    """The rater model's strengths as rows, labelled as on the leaderboard (blinded or named)."""
    group_ids = [a for group in board.disconnected_groups for a in group]
    labels = agent_labels(
        board.plain, group_ids + [a.agent for a in fit.agents], show_names=show_names
    )
    plain_rank = {a.agent: a.rank for a in board.plain.agents} if board.plain else {}
    return [
        {
            "rank": i,
            "label": labels.get(a.agent, a.agent),
            "score": f"{ELO_PER_LOG * a.theta + ELO_BASE:.0f}",
            "se": f"{ELO_PER_LOG * a.se:.0f}",
            "plain_rank": plain_rank.get(a.agent, "—"),
        }
        for i, a in enumerate(fit.agents, start=1)
    ]
