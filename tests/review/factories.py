"""Rows for review tests. Projects, tasks, runs and comparisons are made directly with the ORM
(no agents run, no git needed): they are the given. Judgments go through the actions people use
(the queue's claim, do_start_judgment, do_save_draft, do_submit_judgment), so a test can only
reach a state the application can reach, with the claims and audit events that come with it.

Stable API (other test modules import it):
    make_project(**policy) -> Project
    make_comparison(project=None, task=None, agents=(name_a, name_b)) -> Comparison
    judgment_draft(judgment, overall, ratings=None, rationale=...) -> Draft
    started_judgment(comparison, annotator) -> Judgment
    submitted_judgment(comparison, annotator, overall, ratings=None, rationale=...,
                       active_seconds=600) -> Judgment
    resubmitted_judgment(judgment, overall=None, ratings=None, rationale=...) -> Judgment
    ratings_for(comparison, value), agree_all(comparison)
    judging(annotator, comparison, seconds), reviewing(reviewer, judgment, seconds),
    adjudicating(adjudicator, comparison, seconds): heartbeats worth `seconds` of active time

Time is measured by the server from heartbeats; the helpers that give work a time send the
heartbeats a page would have sent while its user worked, stamped over the `seconds` that just
passed (the actions' ``at_ms``), so the server counts exactly that much.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from marlin.agents.models import Agent, Candidate, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.catalog.models import MirrorStatus, Repository
from marlin.review import activity, pipeline, queue
from marlin.review.actions import (
    do_judgment_heartbeat,
    do_save_draft,
    do_start_judgment,
    do_submit_judgment,
)
from marlin.review.forms import Draft
from marlin.review.models import Comparison, Judgment
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


def judgment_draft(
    judgment: Judgment,
    overall: int | None,
    ratings: dict[str, int | None] | None = None,
    rationale: str = RATIONALE,
) -> Draft:
    """What the comparison page posts: every criterion of the judgment's rubric version rated
    `overall` unless `ratings` says otherwise, and a confidence of 4."""
    if ratings is None:
        ratings = {c["key"]: overall for c in judgment.rubric_version.rated_criteria}
    return Draft(
        ratings=dict(ratings),
        overall=overall,
        rationale=rationale,
        confidence=4,
        comments=[],
        turn_notes={},
    )


def spend(seconds: int, beat: Callable[[int], None], *, step: int = 30) -> None:
    """Heartbeats `step` seconds apart (within the default 60 s gap) over `seconds` that ended a
    little over a minute ago: the server counts exactly `seconds` of active time (the pause up
    to the submission is longer than the gap, so it adds nothing). Nothing for 0 s."""
    if seconds <= 0:
        return
    end = activity.now_ms() - (activity.gap_seconds() + 5) * 1000
    start = end - seconds * 1000
    for at_ms in [*range(start, end, step * 1000), end]:
        beat(at_ms)


def judging(annotator: Any, comparison: Comparison, seconds: int) -> None:
    spend(seconds, lambda at_ms: do_judgment_heartbeat(annotator, comparison, at_ms=at_ms))


def reviewing(reviewer: Any, judgment: Judgment, seconds: int) -> None:
    spend(seconds, lambda at_ms: pipeline.do_review_heartbeat(reviewer, judgment.pk, at_ms=at_ms))


def adjudicating(adjudicator: Any, comparison: Comparison, seconds: int) -> None:
    spend(
        seconds,
        lambda at_ms: pipeline.do_adjudication_heartbeat(adjudicator, comparison, at_ms=at_ms),
    )


def started_judgment(comparison: Comparison, annotator: Any) -> Judgment:
    """The annotator takes a place on the comparison (the queue's claim) and opens it: their
    draft judgment. The actions refuse (NotAssigned, PermissionDenied) when they may not."""
    queue.claim(annotator, comparison)
    return do_start_judgment(annotator, comparison)


def _save_and_submit(judgment: Judgment, draft: Draft) -> Judgment:
    judgment = Judgment.objects.select_related("comparison").get(pk=judgment.pk)
    saved = do_save_draft(judgment.annotator, judgment, draft, revision=judgment.draft_revision)
    do_submit_judgment(judgment.annotator, saved)
    return Judgment.objects.get(pk=judgment.pk)


def submitted_judgment(
    comparison: Comparison,
    annotator: Any,
    overall: int,
    ratings: dict[str, int | None] | None = None,
    rationale: str = RATIONALE,
    *,
    active_seconds: int = 600,
) -> Judgment:
    """A judgment claimed, drafted and submitted by `annotator` through the workspace's actions
    (on the rubric version current when it is started). The last one of the overlap starts
    review, as in the application. The annotator worked `active_seconds` on it (heartbeats)."""
    judgment = started_judgment(comparison, annotator)
    judging(annotator, comparison, active_seconds)
    draft = judgment_draft(judgment, overall, ratings, rationale)
    return _save_and_submit(judgment, draft)


def resubmitted_judgment(
    judgment: Judgment,
    overall: int | None = None,
    ratings: dict[str, int | None] | None = None,
    rationale: str = RATIONALE + " Revised after the reviewer's comments.",
) -> Judgment:
    """A judgment sent back for revision, edited by its annotator and submitted again (the
    overall preference and ratings stay as they were unless given)."""
    judgment = Judgment.objects.select_related("rubric_version").get(pk=judgment.pk)
    overall = judgment.overall if overall is None else overall
    if ratings is None and overall == judgment.overall:
        ratings = judgment.ratings
    draft = judgment_draft(judgment, overall, ratings, rationale)
    return _save_and_submit(judgment, draft)


def agree_all(comparison: Comparison) -> dict[str, dict[str, Any]]:
    """A per-criterion answer that agrees with every criterion of the current rubric."""
    version = comparison.project.rubric.current_version()
    return {c["key"]: {"agree": True, "reason": ""} for c in version.rated_criteria}
