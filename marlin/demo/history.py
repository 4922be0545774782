"""The demo's history: four imported agents on the history tasks, judged, reviewed, sent back,
disputed and adjudicated by simulated experts through the same actions the pages call.

Nothing here writes a row the real flow could not: tasks are created and approved with the
tasks actions, candidates arrive as a prediction import (which pairs them into comparisons),
annotators claim from the queue, send heartbeats, save drafts and submit, reviewers review or
ask for revisions, the adjudicator decides disputes, and pay follows each decision. Only the
clock is simulated: heartbeats carry times from the last minutes (``at_ms``, the hook the
activity tests use), so each piece of work has a plausible active time.

The simulation has a truth to find: each agent has a strength (atlas-coder > corvid-agent >
heron-swe > kestrel-dev) that decides how often its solution is good, partial or flawed; each
expert sees the difference between the two sides through their own noise (and one leans
towards side A), so judgments disagree now and then, ties happen, and the leaderboard's
intervals have something to estimate.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from marlin.accounts.models import User
from marlin.agents.imports import do_import_predictions
from marlin.demo.history_tasks import (
    HISTORY_TASKS,
    HistoryTask,
    head_files,
    solution,
    unified_patch,
)
from marlin.review import actions as review_actions
from marlin.review import activity, pipeline, queue
from marlin.review.forms import Draft
from marlin.review.models import Comparison, ComparisonState, Judgment
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Project, Task

HISTORY_SOURCE = "demo-history"
SEED = 20260


@dataclass(frozen=True)
class SimAgent:
    name: str
    strength: float  # higher is better; sets how often its solution is good, partial, flawed


SIM_AGENTS = [
    SimAgent("atlas-coder", 1.0),
    SimAgent("corvid-agent", 0.35),
    SimAgent("heron-swe", -0.25),
    SimAgent("kestrel-dev", -0.9),
]
VARIANT_QUALITY = {"good": 1.0, "partial": 0.1, "flawed": -1.1}


@dataclass(frozen=True)
class SimExpert:
    username: str
    noise: float  # standard deviation of what they perceive, in quality units
    lean_a: float = 0.0  # a position bias: how much better side A looks to them


# Who does what in the history. The first four are the demo's annotators (alice and anna can
# log in and see their own history; priya and tomas are two more experts for agreement).
ANNOTATORS = [
    SimExpert("alice", 0.35),
    SimExpert("anna", 0.6),
    SimExpert("priya", 0.95),
    SimExpert("tomas", 0.55, lean_a=0.45),
]
REVIEWERS = [SimExpert("bob", 0.5), SimExpert("brian", 0.7), SimExpert("carol", 0.3)]
ADJUDICATOR = SimExpert("carol", 0.3)

# How the last comparisons of the history are left, so every role has work on first start:
# judgments waiting for review, a judgment sent back to alice, a dispute for the adjudicator.
LEAVE_IN_REVIEW = 3
LEAVE_DISPUTED = 2
LEAVE_REVISION_FOR = "alice"


def _variant(agent: SimAgent, rng: random.Random) -> str:
    quality = agent.strength + rng.gauss(0, 0.8)
    return "good" if quality > 0.45 else "partial" if quality > -0.55 else "flawed"


def _scale(value: float) -> int:
    """A perceived difference (positive: B better) on the -3..3 scale, 0 being a tie."""
    size = abs(value)
    steps = 0 if size < 0.3 else 1 if size < 0.9 else 2 if size < 1.7 else 3
    return steps if value > 0 else -steps


@dataclass
class Side:
    agent: str
    variant: str

    @property
    def quality(self) -> float:
        strength = next(a.strength for a in SIM_AGENTS if a.name == self.agent)
        return VARIANT_QUALITY[self.variant] + 0.15 * strength


def _perceive(expert: SimExpert, a: Side, b: Side, rng: random.Random) -> float:
    return b.quality - a.quality - expert.lean_a + rng.gauss(0, expert.noise)


_WORDS = {
    "good": "is correct, small and comes with a test that pins the behaviour",
    "partial": "does what was asked but adds no test, so the next change can break it",
}


def _describe(task: HistoryTask, side: Side, name: str) -> str:
    if side.variant == "flawed":
        return f"{name} {task.flaw}"
    return f"{name} {_WORDS[side.variant]}"


def _verdict(
    task: HistoryTask, expert: SimExpert, a: Side, b: Side, rng: random.Random
) -> tuple[int, dict[str, int | None], str, int]:
    seen = _perceive(expert, a, b, rng)
    overall = _scale(seen)
    ratings: dict[str, int | None] = {
        "correctness": _scale(seen * 1.1 + rng.gauss(0, 0.2)),
        "security": None if task.kind != "security_fix" else _scale(seen),
        "reliability": _scale(seen * 0.7 + rng.gauss(0, 0.3)),
        "maintainability": _scale(seen * 0.5 + rng.gauss(0, 0.4)),
    }
    if overall == 0:
        preference = "Both sides are about as good; I would merge either after a small fix."
    else:
        preference = f"I prefer {'B' if overall > 0 else 'A'}."
    rationale = (
        f"{_describe(task, a, 'A')}; {_describe(task, b, 'B')}. {preference} "
        "I read both diffs in full against the task."
    )
    confidence = max(1, min(5, 5 - round(expert.noise * 2) + (1 if abs(overall) >= 2 else 0)))
    return overall, ratings, rationale, confidence


class _Clock:
    """Heartbeat times (epoch ms) for a piece of work that took about `minutes` and ends now."""

    def beats(self, minutes: float, rng: random.Random) -> list[int]:
        now = activity.now_ms()
        seconds = max(60, int(minutes * 60 * rng.uniform(0.7, 1.3)))
        # A heartbeat every 55 s, the last one 10 s before the submission: every interval
        # counts as active (they are shorter than the 60 s gap).
        return list(range(now - seconds * 1000, now - 10_000, 55_000))


def _judge(
    annotator: User,
    expert: SimExpert,
    comparison: Comparison,
    task: HistoryTask,
    a: Side,
    b: Side,
    rng: random.Random,
    clock: _Clock,
) -> Judgment:
    if queue.claim(annotator, comparison) is None:
        raise RuntimeError(f"demo history: {annotator} could not claim {comparison}")
    judgment = review_actions.do_start_judgment(annotator, comparison)
    for at_ms in clock.beats(2 + 4 * expert.noise, rng):
        review_actions.do_judgment_heartbeat(annotator, comparison, at_ms=at_ms)
    overall, ratings, rationale, confidence = _verdict(task, expert, a, b, rng)
    draft = Draft(
        ratings=ratings,
        overall=overall,
        rationale=rationale,
        confidence=confidence,
        comments=[],
        turn_notes={},
        turn_verdicts={},
    )
    judgment = review_actions.do_save_draft(
        annotator, judgment, draft, revision=judgment.draft_revision
    )
    return review_actions.do_submit_judgment(annotator, judgment)


def _revise(
    annotator: User, judgment: Judgment, task: HistoryTask, a: Side, b: Side, clock: _Clock
) -> Judgment:
    """The annotator answers a revision request: a longer rationale, the verdict kept."""
    judgment = Judgment.objects.get(pk=judgment.pk)
    draft = review_actions.draft_of(judgment)
    draft["rationale"] += (
        f" On re-reading: {_describe(task, a, 'A')}, and {_describe(task, b, 'B')}; "
        "I checked the edge cases the task names."
    )
    judgment = review_actions.do_save_draft(
        annotator, judgment, draft, revision=judgment.draft_revision
    )
    return review_actions.do_submit_judgment(annotator, judgment)


def _review(
    reviewer: User,
    expert: SimExpert,
    judgment: Judgment,
    task: HistoryTask,
    a: Side,
    b: Side,
    rng: random.Random,
    clock: _Clock,
    *,
    ask_revision: bool = False,
    contest: bool = False,
) -> None:
    for at_ms in clock.beats(1 + expert.noise, rng):
        pipeline.do_review_heartbeat(reviewer, judgment.pk, at_ms=at_ms)
    if ask_revision:
        pipeline.do_request_revision(
            reviewer,
            judgment,
            comments="Say which edge cases you checked on each side; the rationale names none.",
        )
        return
    own = _scale(_perceive(expert, a, b, rng))
    theirs = judgment.overall or 0
    agree = (own > 0) == (theirs > 0) and (own < 0) == (theirs < 0) and not contest
    per_criterion: dict[str, Any] = {}
    for key in judgment.ratings:
        per_criterion[key] = {"agree": True, "reason": ""}
        if not agree and key == "correctness":
            per_criterion[key] = {
                "agree": False,
                "reason": "The other side is the correct one here.",
                "rating": own if not contest else -theirs,
            }
    pipeline.do_review(
        reviewer,
        judgment,
        verdict="agree" if agree else "disagree",
        reason=(
            "The rationale matches the code on both sides."
            if agree
            else f"I read it the other way: {_describe(task, a, 'A')}; {_describe(task, b, 'B')}."
        ),
        per_criterion=per_criterion,
    )


def _adjudicate(
    adjudicator: User,
    comparison: Comparison,
    task: HistoryTask,
    a: Side,
    b: Side,
    rng: random.Random,
    clock: _Clock,
) -> None:
    for at_ms in clock.beats(4, rng):
        pipeline.do_adjudication_heartbeat(adjudicator, comparison, at_ms=at_ms)
    overall, ratings, rationale, _confidence = _verdict(task, ADJUDICATOR, a, b, rng)
    pipeline.do_adjudicate(
        adjudicator,
        comparison,
        overall=overall,
        ratings=ratings,
        rationale=f"Adjudicated after reading both judgments and the code: {rationale}",
    )


def _create_tasks(author: User, approver: User, project: Project, repository: Any, commit: str):
    tasks = {}
    for spec in HISTORY_TASKS:
        task = task_actions.do_create_task(
            author,
            project,
            repository=repository,
            base_ref="main",
            base_commit=commit,
            title=spec.title,
            kind=spec.kind,
            prompt=spec.prompt,
            setup_command="",
            # No checks: the history is decided already, and a worker busy re-checking 136
            # old candidates would keep the live agents' first runs waiting.
            checks=[],
            external_id=f"{HISTORY_SOURCE}:{spec.key}",
            source=HISTORY_SOURCE,
        )
        task_actions.do_approve_task(approver, task, comment="Small, clear and checkable.")
        tasks[task.pk] = spec
    return tasks


# Three ways to split four agents into two pairs; the import pairs a task's first candidate
# with its last and the two in the middle (marlin/review/comparisons.py), so lines are written
# in the order first, second, second's partner, first's partner.
MATCHINGS = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]


def load_history(
    users: dict[str, User], project: Project, repository: Any, commit: str
) -> dict[str, int]:
    """Create the history once (its tasks mark it as done); return what it made."""
    if Task.objects.filter(project=project, source=HISTORY_SOURCE).exists():
        return {}
    rng = random.Random(SEED)  # noqa: S311  # nosec B311 - a reproducible simulation
    files = head_files()
    tasks = _create_tasks(users["dave"], users["carol"], project, repository, commit)
    sides: dict[tuple[int, str], str] = {}
    lines = []
    for number, (task_id, spec) in enumerate(tasks.items()):
        (p, q), (r, s) = MATCHINGS[number % len(MATCHINGS)]
        for index in (p, r, s, q):
            agent = SIM_AGENTS[index]
            variant = _variant(agent, rng)
            sides[(task_id, agent.name)] = variant
            patch = unified_patch(files, solution(spec, variant, files))
            lines.append(
                json.dumps(
                    {
                        "instance_id": f"{HISTORY_SOURCE}:{spec.key}",
                        "model_name_or_path": agent.name,
                        "model_patch": patch,
                    }
                )
            )
    report = do_import_predictions(
        users["dave"], project, "\n".join(lines) + "\n", filename="demo history predictions"
    )
    if report.errors:
        raise RuntimeError(f"demo history predictions did not import: {report.errors}")
    comparisons = list(
        Comparison.objects.filter(task_id__in=list(tasks))
        .select_related("task", "project", "run_a__agent", "run_b__agent")
        .order_by("created_at", "pk")
    )
    return _judge_all(users, comparisons, tasks, sides, rng)


def _ending(remaining: int) -> str:
    """How a comparison `remaining` from the end of the history is left."""
    if remaining <= LEAVE_IN_REVIEW:
        return "in review"
    if remaining <= LEAVE_IN_REVIEW + LEAVE_DISPUTED:
        return "disputed"
    if remaining == LEAVE_IN_REVIEW + LEAVE_DISPUTED + 1:
        return "revision"
    return "decided"


def _judge_all(
    users: dict[str, User],
    comparisons: list[Comparison],
    tasks: dict[int, HistoryTask],
    sides: dict[tuple[int, str], str],
    rng: random.Random,
) -> dict[str, int]:
    clock = _Clock()
    made = {"revisions": 0, "adjudicated": 0}
    for number, comparison in enumerate(comparisons):
        spec = tasks[comparison.task_id]
        a, b = (
            Side(run.agent.name, sides[(comparison.task_id, run.agent.name)])
            for run in (comparison.run_a, comparison.run_b)
        )
        ending = _ending(len(comparisons) - number)
        experts = rng.sample(ANNOTATORS, 2)
        if ending == "revision":
            owner = next(e for e in ANNOTATORS if e.username == LEAVE_REVISION_FOR)
            experts = [owner, rng.choice([e for e in ANNOTATORS if e != owner])]
        judgments = [
            (e, _judge(users[e.username], e, comparison, spec, a, b, rng, clock)) for e in experts
        ]
        if ending == "in review":
            continue
        for position, (expert, judgment) in enumerate(judgments):
            reviewer = rng.choice(REVIEWERS)
            if ending == "revision" and expert.username == LEAVE_REVISION_FOR:
                _review(users[reviewer.username], reviewer, judgment, spec, a, b, rng, clock,
                        ask_revision=True)  # fmt: skip
                made["revisions"] += 1
                continue
            if ending == "decided" and rng.random() < 0.08:
                _review(users[reviewer.username], reviewer, judgment, spec, a, b, rng, clock,
                        ask_revision=True)  # fmt: skip
                made["revisions"] += 1
                judgment = _revise(users[expert.username], judgment, spec, a, b, clock)
                reviewer = rng.choice([r for r in REVIEWERS if r != reviewer])
            # The reviewer of the first judgment of a comparison left disputed reads the code
            # the other way (reviewers do; the adjudicator then decides).
            contest = ending == "disputed" and position == 0
            judgment = Judgment.objects.get(pk=judgment.pk)
            _review(users[reviewer.username], reviewer, judgment, spec, a, b, rng, clock,
                    contest=contest)  # fmt: skip
        comparison.refresh_from_db()
        if comparison.state == ComparisonState.DISPUTED and ending == "decided":
            _adjudicate(users[ADJUDICATOR.username], comparison, spec, a, b, rng, clock)
            made["adjudicated"] += 1
    return made
