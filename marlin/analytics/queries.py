"""Django side of the statistics: Decisions (the single truth) to arrays for bt/style/agreement.

Filters are shared with exports and the API. Leaderboard fits are cached as JSON files in the data
directory, keyed by the decision set (count, newest decision, filters, rounds), so a page reload
does not rerun a 1,000-round bootstrap while nothing was decided.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
from django.db.models import Count, Max, Q, QuerySet

from marlin.agents.models import Agent, Candidate
from marlin.analytics.agreement import (
    SCALE,
    AgreementError,
    expert_agreement,
    krippendorff_alpha,
    percent_agreement,
    reliability_matrix,
    side_bias,
)
from marlin.analytics.bt import (
    AgentScore,
    BTError,
    DisconnectedComparisons,
    PairCounts,
    Ranking,
    pair_counts_from_arrays,
)
from marlin.analytics.coefficients import Coefficient, agreement_table
from marlin.analytics.confidence import (
    DEFAULT_MIN_COMPARISONS,
    TIE_MODELS,
    TieModel,
    certainty,
    comparisons_to_separate,
    rank_with,
)
from marlin.analytics.style import ControlledScore, StyleControlled, fit_with_covariates
from marlin.paths import data_dir
from marlin.review.models import ComparisonState, Decision, Judgment, JudgmentStatus
from marlin.tasks.models import Project, TaskKind
from marlin.tasks.rubric import OVERALL_KEY

DEFAULT_ROUNDS = 1000
MAX_ROUNDS = 10_000
COUNTED_JUDGMENTS = (JudgmentStatus.SUBMITTED, JudgmentStatus.ACCEPTED, JudgmentStatus.REJECTED)
CACHE_VERSION = 2


class FilterError(ValueError):
    """A filter value that cannot be used; the message names the field and what is allowed."""


@dataclass(frozen=True)
class DecisionFilters:
    task_kind: str = ""
    criterion: str = OVERALL_KEY
    agents: tuple[int, ...] = ()  # keep comparisons whose two agents are both in this set
    since: date | None = None  # decided on or after
    until: date | None = None  # decided on or before
    ties: TieModel = "davidson"  # or "half": a tie is half a win for each side
    rubric_version: int | None = None  # decisions made under this rubric version number
    turns: int | None = None  # comparisons of runs with this many turns
    # Rank by the experts' overall verdicts after this turn (Judgment.turn_verdicts) instead of
    # the decisions, which hold the last judged turn only.
    at_turn: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> DecisionFilters:
        """Parse query parameters or JSON; raise FilterError naming the bad field."""

        def get(name: str) -> Any:
            getlist = getattr(data, "getlist", None)
            if name == "agents" and getlist is not None:
                return getlist(name)
            return data.get(name)

        kind = str(get("task_kind") or "").strip()
        if kind and kind not in TaskKind.values:
            raise FilterError(
                f"task_kind must be one of {', '.join(TaskKind.values)}; got {kind!r}"
            )
        criterion = str(get("criterion") or OVERALL_KEY).strip()
        raw_agents = get("agents") or []
        if isinstance(raw_agents, str | int):
            raw_agents = [raw_agents]
        agents: list[int] = []
        for value in raw_agents:
            for part in str(value).split(","):
                if part.strip():
                    try:
                        agents.append(int(part))
                    except ValueError:
                        raise FilterError(
                            f"agents must be agent ids (numbers); got {part!r}"
                        ) from None
        dates: dict[str, date | None] = {}
        for name in ("since", "until"):
            value = get(name)
            if value in (None, ""):
                dates[name] = None
            elif isinstance(value, date):
                dates[name] = value
            else:
                try:
                    dates[name] = date.fromisoformat(str(value))
                except ValueError:
                    raise FilterError(
                        f"{name} must be a date like 2026-01-31; got {value!r}"
                    ) from None
        if dates["since"] and dates["until"] and dates["since"] > dates["until"]:
            raise FilterError("since must not be after until")
        ties = str(get("ties") or "davidson").strip()
        if ties not in TIE_MODELS:
            raise FilterError(f"ties must be one of {', '.join(TIE_MODELS)}; got {ties!r}")
        numbers: dict[str, int | None] = {}
        for name in ("rubric_version", "turns", "at_turn"):
            value = get(name)
            if value in (None, ""):
                numbers[name] = None
                continue
            try:
                numbers[name] = int(str(value))
            except ValueError:
                raise FilterError(f"{name} must be a whole number; got {value!r}") from None
            if numbers[name] < 1:  # type: ignore[operator]
                raise FilterError(f"{name} must be 1 or more; got {value!r}")
        return cls(
            kind,
            criterion,
            tuple(sorted(set(agents))),
            dates["since"],
            dates["until"],
            ties=ties,  # type: ignore[arg-type]
            rubric_version=numbers["rubric_version"],
            turns=numbers["turns"],
            at_turn=_overall_only(numbers["at_turn"], criterion),
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["agents"] = list(self.agents)
        out["since"] = self.since.isoformat() if self.since else None
        out["until"] = self.until.isoformat() if self.until else None
        return out


def _overall_only(at_turn: int | None, criterion: str) -> int | None:
    if at_turn is not None and criterion != OVERALL_KEY:
        raise FilterError(
            "at_turn ranks by the overall verdict after a turn; criteria are rated once, on the "
            f"last judged turn (criterion {criterion!r})"
        )
    return at_turn


def decisions_for(project: Project, filters: DecisionFilters) -> QuerySet[Decision]:
    """Decisions of the project's comparisons that match the filters (voided comparisons out)."""
    qs = Decision.objects.filter(comparison__project=project).exclude(
        comparison__state=ComparisonState.VOIDED
    )
    if filters.task_kind:
        qs = qs.filter(comparison__task__kind=filters.task_kind)
    if filters.agents:
        qs = qs.filter(
            comparison__run_a__agent_id__in=filters.agents,
            comparison__run_b__agent_id__in=filters.agents,
        )
    if filters.since:
        qs = qs.filter(decided_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(decided_at__date__lte=filters.until)
    if filters.rubric_version:
        qs = qs.filter(rubric_version__number=filters.rubric_version)
    if filters.turns:
        qs = qs.filter(comparison__turn_count=filters.turns)
    return qs


def criterion_keys(project: Project) -> list[str]:
    """Every criterion key used by any version of the project's rubric, overall first."""
    keys: dict[str, None] = {OVERALL_KEY: None}
    for version in project.rubric.versions.all():
        for key in version.criterion_keys:
            keys.setdefault(key, None)
    return list(keys)


def preference(overall: int | None, ratings: Mapping[str, Any], criterion: str) -> int | None:
    value = overall if criterion == OVERALL_KEY else ratings.get(criterion)
    return value if isinstance(value, int) and value in SCALE else None


def outcome_of(value: int) -> float:
    """bt's outcome for side A as `first`: negative prefers A (1), positive B (0), tie 0.5."""
    return 1.0 if value < 0 else 0.0 if value > 0 else 0.5


@dataclass
class Outcomes:
    agent_ids: list[int]
    a_idx: np.ndarray
    b_idx: np.ndarray
    outcome: np.ndarray
    covariates_a: np.ndarray
    covariates_b: np.ndarray
    skipped_not_applicable: int = 0


def _final_candidate_sizes(project: Project) -> dict[int, tuple[float, float]]:
    """run id -> (log1p lines changed, files touched) of its latest candidate."""
    sizes: dict[int, tuple[float, float]] = {}
    rows = (
        Candidate.objects.filter(turn__run__task__project=project)
        .order_by("turn__run_id", "turn__number")
        .values_list("turn__run_id", "lines_added", "lines_removed", "files_changed")
    )
    for run_id, added, removed, files in rows.iterator(chunk_size=5000):
        sizes[run_id] = (math.log1p(added + removed), float(files))
    return sizes


def _turn_outcomes(project: Project, filters: DecisionFilters) -> Outcomes:
    """One outcome per comparison from its judgments' verdicts after turn filters.at_turn: the
    direction most of them chose (a tie when they cancel out)."""
    key = str(filters.at_turn)
    per_comparison: dict[int, list[Any]] = {}
    rows = judgments_for(project, filters).values_list(
        "comparison_id",
        "turn_verdicts",
        "comparison__run_a_id",
        "comparison__run_b_id",
        "comparison__run_a__agent_id",
        "comparison__run_b__agent_id",
    )
    skipped = 0
    for comp, verdicts, run_a, run_b, agent_a, agent_b in rows.iterator(chunk_size=5000):
        value = (verdicts or {}).get(key)
        if not isinstance(value, int) or value not in SCALE:
            skipped += 1
            continue
        entry = per_comparison.setdefault(comp, [0, run_a, run_b, agent_a, agent_b])
        entry[0] += int(np.sign(value))
    return _outcomes(project, per_comparison.values(), skipped)


def _outcomes(project: Project, rows: Iterable[Sequence[Any]], skipped: int) -> Outcomes:
    """Outcomes from (preference, run A, run B, agent A, agent B) rows, in their order."""
    sizes = _final_candidate_sizes(project)
    index: dict[int, int] = {}
    a_idx, b_idx, result, cov_a, cov_b = [], [], [], [], []
    for value, run_a, run_b, agent_a, agent_b in rows:
        a_idx.append(index.setdefault(agent_a, len(index)))
        b_idx.append(index.setdefault(agent_b, len(index)))
        result.append(outcome_of(value))
        cov_a.append(sizes.get(run_a, (0.0, 0.0)))
        cov_b.append(sizes.get(run_b, (0.0, 0.0)))
    return Outcomes(
        agent_ids=list(index),
        a_idx=np.asarray(a_idx, dtype=np.int64),
        b_idx=np.asarray(b_idx, dtype=np.int64),
        outcome=np.asarray(result, dtype=float),
        covariates_a=np.asarray(cov_a, dtype=float).reshape(-1, 2),
        covariates_b=np.asarray(cov_b, dtype=float).reshape(-1, 2),
        skipped_not_applicable=skipped,
    )


def outcomes_for(project: Project, filters: DecisionFilters) -> Outcomes:
    if filters.at_turn:
        return _turn_outcomes(project, filters)
    rows = decisions_for(project, filters).values_list(
        "overall",
        "ratings",
        "comparison__run_a_id",
        "comparison__run_b_id",
        "comparison__run_a__agent_id",
        "comparison__run_b__agent_id",
    )
    skipped = 0

    def kept() -> Iterator[tuple[float, int, int, int, int]]:
        nonlocal skipped
        for overall, ratings, run_a, run_b, agent_a, agent_b in rows.iterator(chunk_size=5000):
            value = preference(overall, ratings or {}, filters.criterion)
            if value is None:
                skipped += 1
                continue
            yield value, run_a, run_b, agent_a, agent_b

    # Streamed: the skipped count is final once _outcomes has read every row.
    outcomes = _outcomes(project, kept(), 0)
    return replace(outcomes, skipped_not_applicable=skipped)


@dataclass
class Leaderboard:
    """A fit keyed by agent id (labels are chosen per viewer by the view)."""

    n_decisions: int
    plain: Ranking | None = None
    style: StyleControlled | None = None
    error: str = ""  # why there is no ranking (too little data, disconnected graph)
    style_error: str = ""
    skipped_not_applicable: int = 0
    disconnected_groups: list[list[str]] = field(default_factory=list)
    tie_model: str = "davidson"
    se: list[float] = field(default_factory=list)  # score standard errors, ranking order
    provisional: list[str] = field(default_factory=list)  # reason or "", ranking order
    separation: list[dict[str, Any]] = field(default_factory=list)  # adjacent ranks r, r+1


def _cache_key(project: Project, filters: DecisionFilters, rounds: int) -> str:
    if filters.at_turn:  # ranked from judgments: a new or revised judgment changes the key
        summary = judgments_for(project, filters).aggregate(
            n=Count("pk"), newest=Max("updated_at"), last_pk=Max("pk")
        )
    else:
        summary = decisions_for(project, filters).aggregate(
            n=Count("pk"), newest=Max("decided_at"), last_pk=Max("pk")
        )
    raw = json.dumps(
        [
            CACHE_VERSION,
            project.pk,
            filters.as_dict(),
            rounds,
            summary["n"],
            str(summary["newest"]),
            summary["last_pk"],
        ],
        sort_keys=True,
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def _cache_path(key: str) -> Any:
    return data_dir() / "cache" / "leaderboards" / f"{key}.json"


def _ranking_to_dict(r: Ranking) -> dict[str, Any]:
    return {
        "agents": [asdict(a) for a in r.agents],
        "tie_parameter": r.tie_parameter,
        "n_comparisons": r.n_comparisons,
        "win_rate": r.win_rate.tolist(),
        "predicted": r.predicted.tolist(),
        "rounds": r.rounds,
        "seed": r.seed,
    }


def _ranking_from_dict(d: dict[str, Any]) -> Ranking:
    return Ranking(
        agents=[AgentScore(**a) for a in d["agents"]],
        tie_parameter=d["tie_parameter"],
        n_comparisons=d["n_comparisons"],
        win_rate=np.array(d["win_rate"], dtype=float),
        predicted=np.array(d["predicted"], dtype=float),
        rounds=d["rounds"],
        seed=d["seed"],
    )


def _to_json(board: Leaderboard) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_decisions": board.n_decisions,
        "error": board.error,
        "style_error": board.style_error,
        "skipped_not_applicable": board.skipped_not_applicable,
        "disconnected_groups": board.disconnected_groups,
        "tie_model": board.tie_model,
        "se": [x if math.isfinite(x) else None for x in board.se],
        "provisional": board.provisional,
        "separation": board.separation,
        "plain": _ranking_to_dict(board.plain) if board.plain else None,
        "style": None,
    }
    if board.style:
        out["style"] = {
            "agents": [asdict(a) for a in board.style.agents],
            "coefficients": board.style.coefficients,
            "std_errors": board.style.std_errors,
            "tie_parameter": board.style.tie_parameter,
            "n_comparisons": board.style.n_comparisons,
        }
    return out


def _from_json(d: dict[str, Any]) -> Leaderboard:

    plain = _ranking_from_dict(d["plain"]) if d["plain"] else None
    style = None
    if d["style"] and plain is not None:
        s = d["style"]
        style = StyleControlled(
            agents=[ControlledScore(**a) for a in s["agents"]],
            coefficients=s["coefficients"],
            std_errors=s["std_errors"],
            tie_parameter=s["tie_parameter"],
            n_comparisons=s["n_comparisons"],
            plain=plain,
        )
    return Leaderboard(
        n_decisions=d["n_decisions"],
        plain=plain,
        style=style,
        error=d["error"],
        style_error=d["style_error"],
        skipped_not_applicable=d["skipped_not_applicable"],
        disconnected_groups=d["disconnected_groups"],
        tie_model=d["tie_model"],
        se=[math.inf if x is None else x for x in d["se"]],
        provisional=d["provisional"],
        separation=d["separation"],
    )


def fit_leaderboard(
    project: Project, filters: DecisionFilters, *, rounds: int = DEFAULT_ROUNDS, seed: int = 0
) -> Leaderboard:
    """Plain Davidson ranking with bootstrap and the style-controlled one; errors become text."""

    data = outcomes_for(project, filters)
    board = Leaderboard(
        n_decisions=len(data.outcome),
        skipped_not_applicable=data.skipped_not_applicable,
        tie_model=filters.ties,
    )
    ids = [str(a) for a in data.agent_ids]
    try:
        _fit_into(board, data, ids, filters.ties, rounds, seed)
    except DisconnectedComparisons as exc:
        board.error = str(exc)
        board.disconnected_groups = exc.components
        # Rank the largest group on its own; the others are listed as provisional.
        main = {ids.index(a) for a in exc.components[0]}
        members = np.array(sorted(main), dtype=np.int64)
        keep = np.isin(data.a_idx, members) & np.isin(data.b_idx, members)
        if len(main) >= 2 and keep.any():
            remap = {old: new for new, old in enumerate(sorted(main))}
            sub = replace(
                data,
                agent_ids=[data.agent_ids[i] for i in sorted(main)],
                a_idx=np.array([remap[i] for i in data.a_idx[keep]], dtype=np.int64),
                b_idx=np.array([remap[i] for i in data.b_idx[keep]], dtype=np.int64),
                outcome=data.outcome[keep],
                covariates_a=data.covariates_a[keep],
                covariates_b=data.covariates_b[keep],
            )
            try:
                _fit_into(board, sub, [str(a) for a in sub.agent_ids], filters.ties, rounds, seed)
            except BTError:
                board.plain = None
    except BTError as exc:
        board.error = str(exc)
    return board


def _fit_into(
    board: Leaderboard, data: Outcomes, ids: list[str], ties: TieModel, rounds: int, seed: int
) -> None:
    """Style-controlled fit (Davidson) and the plain ranking under the chosen tie model."""
    counts = pair_counts_from_arrays(ids, data.a_idx, data.b_idx, data.outcome)
    try:
        board.style = fit_with_covariates(
            ids,
            data.a_idx,
            data.b_idx,
            data.outcome,
            data.covariates_a,
            data.covariates_b,
            rounds=rounds,
            seed=seed,
        )
        board.plain = board.style.plain
    except BTError:
        raise  # no ranking at all (disconnected, too little data): the caller says why
    except (np.linalg.LinAlgError, ValueError) as exc:
        # The covariate fit can fail on degenerate designs where the plain fit still works.
        board.style_error = f"style control could not be fitted: {exc}"
    if ties == "half" or board.plain is None:
        board.plain = rank_with(counts, ties, rounds=rounds, seed=seed)
    _add_certainty(board, counts, board.plain, ties)


def _add_certainty(
    board: Leaderboard, counts: PairCounts, ranking: Ranking, ties: TieModel
) -> None:
    sure = certainty(counts, ranking, tie_model=ties, min_comparisons=DEFAULT_MIN_COMPARISONS)
    board.se = sure.se
    board.provisional = sure.provisional
    board.separation = []
    for r in range(1, len(ranking.agents)):
        est = comparisons_to_separate(ranking, sure.covariance, r)
        board.separation.append(
            {
                "upper_rank": r,
                "gap": est.gap,
                "se": est.se if math.isfinite(est.se) else None,
                "z": est.z if math.isfinite(est.z) else None,
                "more": est.more_comparisons,
                "separated": est.separated,
            }
        )


def leaderboard(
    project: Project, filters: DecisionFilters, *, rounds: int = DEFAULT_ROUNDS
) -> Leaderboard:
    """fit_leaderboard, cached on disk by the decision set; a corrupt cache entry is refitted."""
    if not 0 <= rounds <= MAX_ROUNDS:
        raise FilterError(f"rounds must lie in 0..{MAX_ROUNDS}; got {rounds}")
    path = _cache_path(_cache_key(project, filters, rounds))
    try:
        return _from_json(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        pass
    board = fit_leaderboard(project, filters, rounds=rounds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_to_json(board)), encoding="utf-8")
    os.replace(tmp, path)
    return board


def relabel(ranking: Ranking, labels: Mapping[str, str]) -> Ranking:
    """The same ranking with agent ids replaced by display labels (names or "Agent N")."""
    return replace(ranking, agents=[replace(a, agent=labels[a.agent]) for a in ranking.agents])


def agent_labels(
    ranking: Ranking | None, agent_ids: list[str], *, show_names: bool
) -> dict[str, str]:
    """Display labels by agent id: "name version" for those allowed, else "Agent N" by rank."""
    order = [a.agent for a in ranking.agents] if ranking else []
    order += [a for a in agent_ids if a not in order]
    if not show_names:
        return {agent_id: f"Agent {i}" for i, agent_id in enumerate(order, start=1)}
    names = {
        str(a.pk): f"{a.name} {a.version_label}"
        for a in Agent.objects.filter(pk__in=[int(x) for x in order])
    }
    return {agent_id: names.get(agent_id, f"agent {agent_id}") for agent_id in order}


# --- agreement ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionAgreement:
    criterion: str
    units: int  # comparisons rated by two or more experts on this criterion
    alpha: float | None
    percent: float | None
    message: str = ""


def judgments_for(project: Project, filters: DecisionFilters) -> QuerySet[Judgment]:
    qs = Judgment.objects.filter(comparison__project=project, status__in=COUNTED_JUDGMENTS).exclude(
        comparison__state=ComparisonState.VOIDED
    )
    if filters.task_kind:
        qs = qs.filter(comparison__task__kind=filters.task_kind)
    if filters.agents:
        qs = qs.filter(
            comparison__run_a__agent_id__in=filters.agents,
            comparison__run_b__agent_id__in=filters.agents,
        )
    if filters.since:
        qs = qs.filter(submitted_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(submitted_at__date__lte=filters.until)
    if filters.rubric_version:
        qs = qs.filter(rubric_version__number=filters.rubric_version)
    if filters.turns:
        qs = qs.filter(comparison__turn_count=filters.turns)
    return qs


def criterion_agreement(project: Project, filters: DecisionFilters) -> list[CriterionAgreement]:
    rows = list(
        judgments_for(project, filters).values_list(
            "annotator_id", "comparison_id", "overall", "ratings"
        )
    )
    out = []
    for key in criterion_keys(project):
        triples = [
            (who, comp, preference(overall, ratings or {}, key))
            for who, comp, overall, ratings in rows
        ]
        _, _, data = reliability_matrix(triples)
        units = int(np.sum(np.sum(~np.isnan(data), axis=0) >= 2)) if data.size else 0
        try:
            alpha = krippendorff_alpha(data, "ordinal", value_domain=SCALE)
            percent = percent_agreement(data)
            out.append(CriterionAgreement(key, units, alpha, percent))
        except AgreementError as exc:
            out.append(CriterionAgreement(key, units, None, None, str(exc)))
    return out


def agreement_details(
    project: Project, filters: DecisionFilters, *, rounds: int = 200
) -> list[Coefficient | tuple[str, str]]:
    """Every agreement coefficient for the filtered criterion, experts x comparisons, -3..3."""
    rows = judgments_for(project, filters).values_list(
        "annotator_id", "comparison_id", "overall", "ratings"
    )
    triples = [
        (who, comp, preference(overall, ratings or {}, filters.criterion))
        for who, comp, overall, ratings in rows
    ]
    _, _, data = reliability_matrix(triples)
    if data.size == 0:
        return [("All coefficients", "no judgments match the filters")]
    # Raters who gave no usable rating (all "not applicable") carry no information.
    data = data[~np.all(np.isnan(data), axis=1)]
    if data.shape[0] < 2:
        return [("All coefficients", "fewer than two experts rated this criterion")]
    return agreement_table(data, list(SCALE), rounds=rounds)


@dataclass(frozen=True)
class ExpertRow:
    user_id: int
    judgments: int
    matches: int
    agreement: float | None
    mean_abs_distance: float | None
    sided: int
    share_a: float | None
    p_value: float | None


def expert_rows(project: Project, filters: DecisionFilters) -> list[ExpertRow]:
    judgments = list(
        judgments_for(project, filters).values_list("annotator_id", "comparison_id", "overall")
    )
    decisions = dict(
        Decision.objects.filter(comparison_id__in={c for _, c, _ in judgments}).values_list(
            "comparison_id", "overall"
        )
    )
    agree = {a.expert: a for a in expert_agreement(judgments, decisions)}
    bias = {b.expert: b for b in side_bias((who, overall) for who, _, overall in judgments)}
    rows = []
    for user_id in sorted(set(agree) | set(bias)):
        a, b = agree.get(user_id), bias.get(user_id)
        rows.append(
            ExpertRow(
                user_id=int(user_id),
                judgments=a.judgments if a else 0,
                matches=a.matches if a else 0,
                agreement=a.agreement if a else None,
                mean_abs_distance=a.mean_abs_distance if a else None,
                sided=b.decided if b else 0,
                share_a=b.share_a if b and b.decided else None,
                p_value=b.p_value if b and b.decided else None,
            )
        )
    return rows


def decision_counts(project: Project) -> dict[str, Any]:
    qs = decisions_for(project, DecisionFilters())
    return qs.aggregate(
        n=Count("pk"), ties=Count("pk", filter=Q(overall=0)), newest=Max("decided_at")
    )
