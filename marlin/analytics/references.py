"""Reference leaderboards: a project's imported pairwise judgments (marlin import judgments)
ranked like the experts' decisions, and the rank correlation between the two boards."""

from __future__ import annotations

from dataclasses import dataclass, field

from scipy.stats import kendalltau, spearmanr

from marlin.agents.models import Agent
from marlin.analytics.bt import BTError, Ranking, pair_counts_from_arrays
from marlin.analytics.confidence import TieModel, certainty, rank_with
from marlin.analytics.models import ReferenceJudgment, ReferenceSet, Winner
from marlin.tasks.models import Project

OUTCOME_OF_WINNER = {Winner.A: 1.0, Winner.B: 0.0, Winner.TIE: 0.5}


@dataclass
class ReferenceBoard:
    """The ranking of a project's imported reference judgments, keyed by model name."""

    sets: list[str]
    n_judgments: int
    tie_model: str
    ranking: Ranking | None = None
    se: list[float] = field(default_factory=list)
    provisional: list[str] = field(default_factory=list)
    error: str = ""


def reference_board(project: Project, ties: TieModel, *, rounds: int) -> ReferenceBoard:
    sets = list(ReferenceSet.objects.filter(project=project).order_by("pk"))
    rows = ReferenceJudgment.objects.filter(reference_set__project=project).values_list(
        "model_a", "model_b", "winner"
    )
    index: dict[str, int] = {}
    a_idx: list[int] = []
    b_idx: list[int] = []
    outcome: list[float] = []
    for model_a, model_b, winner in rows.iterator(chunk_size=5000):
        a_idx.append(index.setdefault(model_a, len(index)))
        b_idx.append(index.setdefault(model_b, len(index)))
        outcome.append(OUTCOME_OF_WINNER[Winner(winner)])
    board = ReferenceBoard([s.name for s in sets], len(outcome), ties)
    if not sets:
        return board
    try:
        counts = pair_counts_from_arrays(list(index), a_idx, b_idx, outcome)
        board.ranking = rank_with(counts, ties, rounds=rounds, seed=0)
        sure = certainty(counts, board.ranking, tie_model=ties)
        board.se, board.provisional = sure.se, sure.provisional
    except BTError as exc:
        board.error = str(exc)
    return board


@dataclass(frozen=True)
class RankCorrelation:
    matched: list[tuple[str, str]]  # (agent id, reference model name)
    spearman: float | None
    spearman_p: float | None
    kendall: float | None
    kendall_p: float | None
    message: str = ""


def _agent_keys(agent_ids: list[str]) -> dict[str, str]:
    """Lower-case "name version" and "name" -> agent id, for matching reference model names."""
    keys: dict[str, str] = {}
    for agent in Agent.objects.filter(pk__in=[int(a) for a in agent_ids]):
        keys.setdefault(f"{agent.name} {agent.version_label}".casefold(), str(agent.pk))
        keys.setdefault(agent.name.casefold(), str(agent.pk))
    return keys


def rank_correlation(experts: Ranking | None, reference: Ranking | None) -> RankCorrelation:
    """Spearman's rho and Kendall's tau between the two boards' scores on the agents in both."""
    if experts is None or reference is None:
        return RankCorrelation([], None, None, None, None, "one of the two rankings is missing")
    keys = _agent_keys([a.agent for a in experts.agents])
    expert_score = {a.agent: a.score for a in experts.agents}
    pairs: list[tuple[str, str]] = []
    x: list[float] = []
    y: list[float] = []
    for ref in reference.agents:
        agent_id = keys.get(ref.agent.casefold())
        if agent_id is not None and agent_id not in {p[0] for p in pairs}:
            pairs.append((agent_id, ref.agent))
            x.append(expert_score[agent_id])
            y.append(ref.score)
    if len(pairs) < 3:
        return RankCorrelation(
            pairs,
            None,
            None,
            None,
            None,
            f"{len(pairs)} of the experts' agents match a reference model by name; "
            "a rank correlation needs 3 or more",
        )
    rho = spearmanr(x, y)
    tau = kendalltau(x, y)
    return RankCorrelation(
        pairs,
        float(rho.statistic),
        float(rho.pvalue),
        float(tau.statistic),
        float(tau.pvalue),
    )
