"""Rows for review tests, made directly with the ORM (no agents run, no git needed).

Stable API (other test modules import it):
    make_project(**policy) -> Project
    make_comparison(project=None, task=None, agents=(name_a, name_b)) -> Comparison
    submitted_judgment(comparison, annotator, overall, ratings=None, rationale=...) -> Judgment
"""

from __future__ import annotations

import itertools
from typing import Any

from django.db import transaction
from django.utils import timezone

from marlin.agents.models import Agent, Candidate, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.audit.actions import record
from marlin.catalog.models import MirrorStatus, Repository
from marlin.review.models import Comparison, Judgment, JudgmentStatus
from marlin.tasks.models import Project, Rubric, RubricVersion, Task, TaskStatus
from marlin.tasks.rubric import DEFAULT_CRITERIA, validate_criteria

_counter = itertools.count(1)

RATIONALE = "Side A handles the empty ledger and keeps the public API; side B breaks callers."
PATCH = """diff --git a/ledger.py b/ledger.py
--- a/ledger.py
+++ b/ledger.py
@@ -1,2 +1,3 @@
 def total(entries):
-    return sum(entries)
+    # {note}
+    return sum(e for e in entries if e is not None)
"""


def make_project(**policy: Any) -> Project:
    """A project with the default rubric (version 1); overlap 2 and one reviewer per judgment
    unless `policy` says otherwise."""
    n = next(_counter)
    rubric = Rubric.objects.create(name=f"Rubric {n}")
    RubricVersion.objects.create(
        rubric=rubric,
        number=1,
        criteria=validate_criteria(DEFAULT_CRITERIA),
        change_note="Initial version.",
    )
    settings = {"overlap": 2, "reviewers_per_judgment": 1, "min_rationale_chars": 20, **policy}
    return Project.objects.create(name=f"Project {n}", rubric=rubric, **settings)


def _task(project: Project) -> Task:
    n = next(_counter)
    repository = Repository.objects.create(
        url=f"https://github.com/example/repo{n}",
        normalized_url=f"github.com/example/repo{n}",
        name=f"example/repo{n}",
        mirror_status=MirrorStatus.READY,
    )
    return Task.objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit="0" * 40,
        title=f"Handle missing ledger entries ({n})",
        prompt="Make `total` skip entries that are `None`.",
        status=TaskStatus.APPROVED,
    )


def _run(task: Task, agent_name: str, variant: int) -> Run:
    agent, _ = Agent.objects.get_or_create(
        name=agent_name, version_label="1", defaults={"provider": Provider.IMPORT}
    )
    run = Run.objects.create(task=task, agent=agent, status=RunStatus.WAITING)
    turn = Turn.objects.create(
        run=run, number=1, prompt=task.prompt, status=TurnStatus.DONE, finished_at=timezone.now()
    )
    Candidate.objects.create(
        turn=turn,
        patch=PATCH.replace("{note}", f"variant {variant}"),
        files_changed=1,
        lines_added=2,
        lines_removed=1,
    )
    return run


def make_comparison(
    project: Project | None = None,
    task: Task | None = None,
    agents: tuple[str, str] = ("agent-x", "agent-y"),
) -> Comparison:
    """A comparison awaiting judgments; side A is agents[0], side B agents[1]."""
    if task is None:
        task = _task(project or make_project())
    project = task.project
    # The patches never name their agent: scrubbing identity hints is tested elsewhere.
    run_a, run_b = _run(task, agents[0], 1), _run(task, agents[1], 2)
    return Comparison.objects.create(project=project, task=task, run_a=run_a, run_b=run_b)


def ratings_for(comparison: Comparison, value: int | None) -> dict[str, int | None]:
    version = comparison.project.rubric.current_version()
    return {criterion["key"]: value for criterion in version.rated_criteria}


def submitted_judgment(
    comparison: Comparison,
    annotator: Any,
    overall: int,
    ratings: dict[str, int | None] | None = None,
    rationale: str = RATIONALE,
    *,
    active_seconds: int = 600,
) -> Judgment:
    """A judgment submitted on the project's current rubric version, handed to the pipeline the
    way the expert workspace's do_submit_judgment does (same transaction, one audit event)."""
    from marlin.review.pipeline import judgment_submitted

    version = comparison.project.rubric.current_version()
    with transaction.atomic():
        judgment = Judgment.objects.create(
            comparison=comparison,
            annotator=annotator,
            rubric_version=version,
            status=JudgmentStatus.SUBMITTED,
            ratings=ratings if ratings is not None else ratings_for(comparison, overall),
            overall=overall,
            rationale=rationale,
            confidence=4,
            active_seconds=active_seconds,
            wall_seconds=active_seconds,
            submitted_at=timezone.now(),
        )
        record(
            annotator,
            "judgment.submitted",
            judgment,
            old={"status": JudgmentStatus.DRAFT},
            new={"status": judgment.status, "overall": overall, "ratings": judgment.ratings},
            project_id=comparison.project_id,
        )
        judgment_submitted(judgment)
    judgment.refresh_from_db()
    return judgment


def agree_all(comparison: Comparison) -> dict[str, dict[str, Any]]:
    """A per-criterion answer that agrees with every criterion of the current rubric."""
    version = comparison.project.rubric.current_version()
    return {c["key"]: {"agree": True, "reason": ""} for c in version.rated_criteria}
