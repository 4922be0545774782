"""Rater quality for the experts page: the rater model fitted on a project's judgments, with
each expert's agreement with decisions and speed (docs/statistics.md, "Rater quality")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from marlin.analytics.queries import (
    DecisionFilters,
    judgments_for,
    outcome_of,
    preference,
)
from marlin.analytics.raters import (
    ExpertQuality,
    RaterFit,
    RaterModelError,
    fit_raters,
    median_interval,
)
from marlin.review.models import Decision
from marlin.tasks.models import Project


@dataclass(frozen=True)
class ExpertReportRow:
    user_id: int
    judgments: int
    quality: ExpertQuality | None  # None when the model could not be fitted
    decided: int  # judgments on decided comparisons (with a usable rating)
    matches: int
    agreement: float | None
    agreement_lower: float | None  # Wilson 95%
    agreement_upper: float | None
    minutes: float | None  # median active minutes per judgment (server-measured)
    minutes_lower: float | None
    minutes_upper: float | None


@dataclass
class ExpertsReport:
    rows: list[ExpertReportRow]
    fit: RaterFit | None
    error: str = ""


def experts_report(project: Project, filters: DecisionFilters) -> ExpertsReport:
    """Per expert: skill, side bias, tie propensity (rater model), agreement with decisions and
    speed, each with a 95% interval; and the skill-weighted strengths of the agents."""
    rows = list(
        judgments_for(project, filters).values_list(
            "annotator_id",
            "comparison_id",
            "overall",
            "ratings",
            "active_seconds",
            "comparison__run_a__agent_id",
            "comparison__run_b__agent_id",
        )
    )
    decisions = {
        comp: preference(overall, ratings or {}, filters.criterion)
        for comp, overall, ratings in Decision.objects.filter(
            comparison_id__in={r[1] for r in rows}
        ).values_list("comparison_id", "overall", "ratings")
    }
    agents: dict[int, int] = {}
    experts: dict[int, int] = {}
    a_idx, b_idx, e_idx, outcome = [], [], [], []
    per_expert: dict[int, dict[str, list[float]]] = {}
    for who, comp, overall, ratings, seconds, agent_a, agent_b in rows:
        stats = per_expert.setdefault(who, {"seconds": [], "match": []})
        if seconds:
            stats["seconds"].append(float(seconds))
        value = preference(overall, ratings or {}, filters.criterion)
        if value is None:
            continue
        decided = decisions.get(comp)
        if decided is not None:
            stats["match"].append(float(np.sign(value) == np.sign(decided)))
        a_idx.append(agents.setdefault(agent_a, len(agents)))
        b_idx.append(agents.setdefault(agent_b, len(agents)))
        e_idx.append(experts.setdefault(who, len(experts)))
        outcome.append(outcome_of(value))
    report = ExpertsReport(rows=[], fit=None)
    try:
        report.fit = fit_raters(
            [str(a) for a in agents], [str(e) for e in experts], a_idx, b_idx, e_idx, outcome
        )
    except RaterModelError as exc:
        report.error = str(exc)
    quality = {int(q.expert): q for q in report.fit.experts} if report.fit else {}
    counts = Counter(r[0] for r in rows)
    for who in sorted(per_expert):
        stats = per_expert[who]
        match = stats["match"]
        agreement = lower = upper = None
        if match:
            test = binomtest(int(sum(match)), len(match))
            ci = test.proportion_ci(confidence_level=0.95, method="wilson")
            agreement, lower, upper = sum(match) / len(match), float(ci.low), float(ci.high)
        minutes = m_lo = m_hi = None
        if stats["seconds"]:
            minutes, m_lo, m_hi = (x / 60 for x in median_interval(stats["seconds"]))
        report.rows.append(
            ExpertReportRow(
                user_id=who,
                judgments=counts[who],
                quality=quality.get(who),
                decided=len(match),
                matches=int(sum(match)),
                agreement=agreement,
                agreement_lower=lower,
                agreement_upper=upper,
                minutes=minutes,
                minutes_lower=m_lo,
                minutes_upper=m_hi,
            )
        )
    return report
