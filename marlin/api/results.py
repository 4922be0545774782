"""Leaderboards (same role rules and labels as the page) and exports (admins and authors)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Path, Query, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.responses import Status

from marlin.analytics.queries import (
    MAX_ROUNDS,
    DecisionFilters,
    agent_labels,
    criterion_keys,
    leaderboard,
)
from marlin.analytics.views import (
    VIEWER_ROLES,
    can_see_agent_names,
    default_rounds,
    no_ranking_message,
)
from marlin.api.auth import require
from marlin.api.types import MAX_ID, FilterText, Id, Pagination
from marlin.exports.actions import EXPORT_ROLES, ExportError, do_create_export
from marlin.exports.models import Export
from marlin.tasks.models import Project

router = Router()


class LeaderboardQuery(Schema):
    task_kind: FilterText = ""
    criterion: FilterText = "overall"
    agents: list[Id] = Field(
        default_factory=list, description="Agent ids (admins, authors and adjudicators only)."
    )
    since: date | None = None
    until: date | None = None
    rounds: int | None = Field(
        None, ge=0, le=MAX_ROUNDS, description="Bootstrap rounds (default 1,000)."
    )
    ties: FilterText = Field(
        "davidson", description="davidson (a tie is its own outcome) or half (half a win each)."
    )
    rubric_version: int | None = Field(None, ge=1, le=MAX_ID, description="Rubric version number.")
    turns: int | None = Field(None, ge=1, le=MAX_ID, description="Comparisons of N-turn runs.")
    at_turn: int | None = Field(
        None, ge=1, le=MAX_ID, description="Rank the experts' verdicts after turn N, not decisions."
    )


class RankOut(Schema):
    agent: str = Field(
        ..., description="'name version', or 'Agent N' for roles that may not see names."
    )
    score: float = Field(
        ..., description="Elo-like score (400 points = 10:1 odds), centred on 1000."
    )
    lower: float | None = Field(..., description="2.5th percentile; null when unbounded below.")
    upper: float | None = Field(..., description="97.5th percentile; null when unbounded above.")
    rank: int
    rank_lower: int
    rank_upper: int
    comparisons: int
    wins: int
    losses: int
    ties: int
    se: float | None = Field(
        None, description="Standard error of the score (Fisher information); null: unbounded."
    )
    provisional: str = Field("", description="Why the place is provisional; empty when it is not.")


class SeparationOut(Schema):
    upper_rank: int
    gap: float = Field(..., description="Score of rank r minus rank r+1.")
    se: float | None
    more_comparisons: int | None = Field(
        ..., description="About this many more decided comparisons separate r from r+1 at 95%."
    )
    separated: bool


class StyleRankOut(Schema):
    agent: str
    score: float
    lower: float
    upper: float
    rank: int
    plain_rank: int


class LeaderboardOut(Schema):
    project_id: int
    decisions: int
    rounds: int
    message: str = Field(
        "", description="Why there is no ranking (too little data, disconnected comparisons)."
    )
    tie_parameter: float | None
    tie_model: str = Field("davidson", description="How ties were counted (davidson or half).")
    ranking: list[RankOut]
    separation: list[SeparationOut] = Field(default_factory=list)
    style_controlled: list[StyleRankOut]
    style_coefficients: dict[str, float]


class ExportIn(Schema):
    project_id: Id
    kind: FilterText = Field(..., description="preferences, records, predictions or tasks")
    task_kind: FilterText = ""
    agents: list[Id] = Field(default_factory=list)
    since: date | None = None
    until: date | None = None
    formats: list[str] = Field(
        default_factory=list,
        description="jsonl, parquet and/or openai (preferences; all three when empty)",
    )
    conversations: bool = False


class ExportOut(Schema):
    id: int
    project_id: int
    kind: str
    status: str
    progress: int
    filters: dict[str, Any]
    manifest: dict[str, Any]
    error: str
    created_at: datetime
    finished_at: datetime | None
    files: list[str] = Field(
        ..., description="Download at /exports/{id}/files/{name} (browser session)."
    )

    @staticmethod
    def resolve_files(obj: Export) -> list[str]:
        return [f["name"] for f in (obj.manifest or {}).get("files", [])]

    @staticmethod
    def resolve_filters(obj: Export) -> dict[str, Any]:
        return {k: v for k, v in (obj.filters or {}).items() if k != "out"}


def _finite(value: float) -> float | None:
    return value if value not in (float("inf"), float("-inf")) else None


@router.get(
    "/leaderboards/{project_id}",
    response=LeaderboardOut,
    tags=["leaderboards"],
    summary="A project's ranking, plain and style-controlled",
)
def get_leaderboard(
    request: HttpRequest,
    query: Query[LeaderboardQuery],
    project_id: int = Path(..., ge=1, le=MAX_ID),
) -> dict[str, Any]:
    user = require(request, *VIEWER_ROLES)
    project = Project.objects.select_related("rubric").get(pk=project_id)
    show_names = can_see_agent_names(user)
    raw = query.dict()
    if raw["agents"] and not show_names:
        raise HttpError(403, "Filtering by agent is only for roles that may see agent names.")
    filters = DecisionFilters.from_mapping(raw)
    if filters.criterion not in criterion_keys(project):
        raise HttpError(422, f"criterion must be one of {', '.join(criterion_keys(project))}")
    rounds = query.rounds if query.rounds is not None else default_rounds()
    board = leaderboard(project, filters, rounds=rounds)
    group_ids = [a for group in board.disconnected_groups for a in group]
    labels = agent_labels(board.plain, group_ids, show_names=show_names)
    out: dict[str, Any] = {
        "project_id": project.pk,
        "decisions": board.n_decisions,
        "rounds": rounds,
        "message": "",
        "tie_parameter": None,
        "ranking": [],
        "style_controlled": [],
        "style_coefficients": {},
    }
    if board.plain is None:
        out["message"] = no_ranking_message(board, labels)
        return out
    if board.disconnected_groups:
        out["message"] = (
            no_ranking_message(board, labels) + " The ranking covers the largest group only."
        )
    out["tie_parameter"] = board.plain.tie_parameter
    out["tie_model"] = board.tie_model
    se = board.se or [float("inf")] * len(board.plain.agents)
    why = board.provisional or [""] * len(board.plain.agents)
    out["separation"] = [
        {
            "upper_rank": s["upper_rank"],
            "gap": s["gap"],
            "se": s["se"],
            "more_comparisons": s["more"],
            "separated": s["separated"],
        }
        for s in board.separation
    ]
    out["ranking"] = [
        {
            "agent": labels[a.agent],
            "score": a.score,
            "lower": _finite(a.lower),
            "upper": _finite(a.upper),
            "rank": a.rank,
            "rank_lower": a.rank_lower,
            "rank_upper": a.rank_upper,
            "comparisons": a.comparisons,
            "wins": a.wins,
            "losses": a.losses,
            "ties": a.ties,
            "se": _finite(error),
            "provisional": reason,
        }
        for a, error, reason in zip(board.plain.agents, se, why, strict=True)
    ]
    if board.style is not None:
        out["style_controlled"] = [
            {
                "agent": labels[s.agent],
                "score": s.score,
                "lower": s.lower,
                "upper": s.upper,
                "rank": s.rank,
                "plain_rank": s.plain_rank,
            }
            for s in board.style.agents
        ]
        out["style_coefficients"] = board.style.coefficients
    return out


@router.get("/exports", response=list[ExportOut], tags=["exports"], summary="List exports")
@paginate(Pagination)
def list_exports(
    request: HttpRequest, project_id: int | None = Query(None, ge=1, le=MAX_ID)
) -> QuerySet[Export]:
    require(request, *EXPORT_ROLES)
    qs = Export.objects.order_by("-created_at", "-pk")
    return qs.filter(project_id=project_id) if project_id is not None else qs


@router.get(
    "/exports/{export_id}",
    response=ExportOut,
    tags=["exports"],
    summary="Get an export and its manifest",
)
def get_export(request: HttpRequest, export_id: int = Path(..., ge=1, le=MAX_ID)) -> Export:
    require(request, *EXPORT_ROLES)
    return Export.objects.get(pk=export_id)


@router.post(
    "/exports", response={202: ExportOut}, tags=["exports"], summary="Start an export (a job)"
)
def create_export(request: HttpRequest, body: ExportIn) -> Status[Export]:
    user = require(request, *EXPORT_ROLES)
    project = Project.objects.get(pk=body.project_id)
    filters = {
        "task_kind": body.task_kind,
        "agents": body.agents,
        "since": body.since,
        "until": body.until,
    }
    try:
        export = do_create_export(
            user,
            project,
            body.kind,
            filters,
            formats=body.formats,
            conversations=body.conversations,
        )
    except ExportError as exc:
        raise HttpError(422, str(exc)) from None
    return Status(202, export)
