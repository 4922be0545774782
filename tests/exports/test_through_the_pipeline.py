"""A decision made by the real review pipeline (judgment submitted, review agreed) shows up in
the leaderboard data and the preference export exactly as the pipeline recorded it."""

from __future__ import annotations

import json
from pathlib import Path

from marlin.analytics.queries import DecisionFilters, outcomes_for
from marlin.exports.actions import do_create_export
from marlin.exports.jobs import write_export
from marlin.review import actions
from marlin.review.forms import Draft
from marlin.review.models import Claim, Decision
from marlin.review.pipeline import do_review
from tests.analytics_views.factories import (
    make_agent,
    make_comparison,
    make_project,
    make_repository,
    make_task,
)


def test_a_pipeline_decision_reaches_the_leaderboard_and_the_export(db, alice, bob, erin, dave):
    project = make_project("Pipeline", overlap=1, reviewers_per_judgment=1, min_rationale_chars=20)
    task = make_task(project, make_repository(), created_by=dave)
    comparison = make_comparison(project, task, make_agent("left"), make_agent("right"))
    Claim.objects.create(comparison=comparison, annotator=alice)
    judgment = actions.do_start_judgment(alice, comparison)
    draft = Draft(
        ratings={"correctness": 2, "security": None, "reliability": 1, "maintainability": 0},
        overall=2,
        rationale="B handles the empty ledger; A crashes on it.",
        confidence=4,
        comments=[],
        turn_notes={},
        active_seconds=400,
        wall_seconds=500,
    )
    judgment = actions.do_save_draft(alice, judgment, draft, revision=0)
    actions.do_submit_judgment(alice, judgment)
    keys = [c["key"] for c in judgment.rubric_version.rated_criteria]
    do_review(
        bob,
        judgment,
        verdict="agree",
        reason="The diff bears it out.",
        per_criterion={k: {"agree": True, "reason": ""} for k in keys},
    )
    decision = Decision.objects.get(comparison=comparison)
    assert decision.overall == 2

    data = outcomes_for(project, DecisionFilters())
    assert list(data.outcome) == [0.0]  # B (second) won

    export = do_create_export(erin, project, "preferences", formats="jsonl", enqueue=False)
    write_export.call(export.pk)
    export.refresh_from_db()
    row = json.loads((Path(export.directory) / "preferences.jsonl").read_text())
    assert row["chosen_agent"] == "right" and row["chosen_side"] == "B" and row["margin"] == 2
    assert row["expert_rationales"] == ["B handles the empty ledger; A crashes on it."]
    assert row["experts"] == [alice.pseudonym]
    assert {c["criterion"]: c["preference"] for c in row["criteria"]}["correctness"] == 2
