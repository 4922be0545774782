"""Rows for leaderboard, export and API tests, created directly with the ORM.

The review pipeline creates Decisions in production; these factories build the same shapes
without it so the read side can be tested on its own.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from marlin.agents.models import Agent, Candidate, Provider, Run, Turn
from marlin.catalog.models import Repository
from marlin.checks.models import CheckResult, CheckStatus
from marlin.review.models import (
    Comparison,
    ComparisonState,
    Decision,
    DecisionSource,
    Judgment,
    JudgmentStatus,
    Review,
    ReviewVerdict,
)
from marlin.tasks.models import Project, Rubric, RubricVersion, Task, TaskKind, TaskStatus
from marlin.tasks.rubric import DEFAULT_CRITERIA

CRITERIA = [c["key"] for c in DEFAULT_CRITERIA]


def make_project(name: str = "Pilot", **fields: Any) -> Project:
    rubric = Rubric.objects.create(name=f"{name} rubric")
    RubricVersion.objects.create(
        rubric=rubric, number=1, criteria=DEFAULT_CRITERIA, change_note="Initial version."
    )
    return Project.objects.create(name=name, rubric=rubric, **fields)


def make_repository(name: str = "acme/ledger") -> Repository:
    return Repository.objects.create(
        url=f"https://github.com/{name}",
        normalized_url=f"github.com/{name}",
        name=name,
        host="github.com",
    )


def make_task(project: Project, repository: Repository, n: int = 1, **fields: Any) -> Task:
    defaults: dict[str, Any] = {
        "base_ref": "main",
        "base_commit": f"{n:040x}",
        "title": f"Task {n}",
        "prompt": f"Add a `--dry-run` flag to command {n}.",
        "kind": TaskKind.FEATURE,
        "setup_command": "pip install -e .",
        "checks": [{"name": "tests", "kind": "command", "command": "pytest -q"}],
        "status": TaskStatus.APPROVED,
    }
    return Task.objects.create(project=project, repository=repository, **(defaults | fields))


def make_agent(name: str, version: str = "1") -> Agent:
    return Agent.objects.create(name=name, version_label=version, provider=Provider.IMPORT)


def make_run(
    task: Task, agent: Agent, *, patch: str | None = None, files: int = 1, lines: int = 3
) -> Run:
    run = Run.objects.create(
        task=task,
        agent=agent,
        status="waiting",
        conversation=[
            {"role": "user", "content": task.prompt},
            {"role": "assistant", "content": f"{agent.name} edited cli.py"},
        ],
    )
    turn = Turn.objects.create(run=run, number=1, prompt=task.prompt, status="done")
    candidate = Candidate.objects.create(
        turn=turn,
        patch=patch
        if patch is not None
        else f"--- a/cli.py\n+++ b/cli.py\n@@ -1 +1 @@\n-old\n+new = {secrets.token_hex(6)!r}\n",
        files_changed=files,
        lines_added=lines,
        lines_removed=1,
    )
    CheckResult.objects.create(
        candidate=candidate,
        check_index=0,
        name="tests",
        kind="command",
        status=CheckStatus.PASSED if lines % 2 else CheckStatus.FAILED,
        passed=5,
        failed=lines % 2 == 0,
    )
    return run


def make_comparison(
    project: Project, task: Task, agent_a: Agent, agent_b: Agent, **run_fields: Any
) -> Comparison:
    return Comparison.objects.create(
        project=project,
        task=task,
        run_a=make_run(task, agent_a, **run_fields),
        run_b=make_run(task, agent_b),
        state=ComparisonState.AWAITING_JUDGMENTS,
    )


def ratings_for(overall: int) -> dict[str, int | None]:
    """Criterion ratings consistent with the overall preference; security not applicable."""
    return {
        "correctness": overall,
        "security": None,
        "reliability": max(-3, min(3, overall - 1)),
        "maintainability": 0,
        "overall": overall,
    }


def judge(
    comparison: Comparison, annotator: Any, overall: int, *, status: str = JudgmentStatus.ACCEPTED
) -> Judgment:
    now = timezone.now()
    return Judgment.objects.create(
        comparison=comparison,
        annotator=annotator,
        rubric_version=comparison.project.rubric.current_version(),
        status=status,
        ratings=ratings_for(overall),
        overall=overall,
        rationale=f"Side {'A' if overall < 0 else 'B'} handles the empty input; the other crashes.",
        confidence=4,
        active_seconds=600,
        wall_seconds=900,
        submitted_at=now if status != JudgmentStatus.DRAFT else None,
    )


def decide(
    comparison: Comparison,
    overall: int,
    *,
    annotators: list[Any] = (),  # type: ignore[assignment]
    reviewer: Any = None,
    decided_at: datetime | None = None,
    ratings: dict[str, int | None] | None = None,
) -> Decision:
    """A decided comparison: judgments by `annotators` (same overall), a review, a Decision."""
    judgments = [judge(comparison, who, overall) for who in annotators]
    if reviewer is not None and judgments:
        Review.objects.create(
            judgment=judgments[0],
            reviewer=reviewer,
            verdict=ReviewVerdict.AGREE,
            reason="The rationale matches the diff.",
            active_seconds=120,
        )
    comparison.state = ComparisonState.DECIDED
    comparison.save(update_fields=["state"])
    return Decision.objects.create(
        comparison=comparison,
        source=DecisionSource.AGREEMENT,
        overall=overall,
        ratings=ratings if ratings is not None else ratings_for(overall),
        rationale=f"Agreed: side {'A' if overall < 0 else 'B'} is better." if overall else "A tie.",
        rubric_version=comparison.project.rubric.current_version(),
        decided_by=reviewer,
        decided_at=decided_at or timezone.now(),
    )


def league(
    project: Project,
    agents: list[Agent],
    results: list[tuple[int, int, int]],
    *,
    annotators: list[Any] = (),
    reviewer: Any = None,
    start: datetime | None = None,
) -> list[Decision]:  # type: ignore[assignment]
    """Decisions for (index of A, index of B, overall) triples, one task each."""
    repository = Repository.objects.first() or make_repository()
    start = start or timezone.now() - timedelta(days=len(results))
    out = []
    for n, (a, b, overall) in enumerate(results, start=1):
        task = make_task(project, repository, n=Task.objects.count() + 1)
        comparison = make_comparison(project, task, agents[a], agents[b], lines=3 + n % 4)
        out.append(
            decide(
                comparison,
                overall,
                annotators=annotators,
                reviewer=reviewer,
                decided_at=start + timedelta(days=n),
            )
        )
    return out
