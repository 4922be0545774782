"""The experts page: skill, side bias, ties, agreement with decisions and speed with intervals,
and the skill-weighted leaderboard beside the plain rank."""

from __future__ import annotations

import numpy as np
import pytest

from marlin.review.models import Judgment
from tests.analytics_views.factories import (
    decide,
    judge,
    make_agent,
    make_comparison,
    make_project,
    make_repository,
    make_task,
)


@pytest.fixture
def project(db, alice, make_user):
    """Three agents of clear strengths; anna follows them, alice half guesses, bias-bob always
    prefers side A."""
    anna = make_user("anna", "annotator")
    biased = make_user("bias-bob", "annotator")
    project = make_project("Raters")
    repository = make_repository()
    agents = [make_agent("claude-code", "1.0"), make_agent("codex", "2"), make_agent("aider")]
    rng = np.random.default_rng(5)
    strength = [1.2, 0.0, -1.2]
    for n in range(30):
        a, b = rng.choice(3, size=2, replace=False)
        task = make_task(project, repository, n=n + 1)
        comparison = make_comparison(project, task, agents[a], agents[b])
        better_a = rng.random() < 1 / (1 + np.exp(-(strength[a] - strength[b]) * 1.5))
        truth = -2 if better_a else 2
        judge(comparison, anna, truth)
        judge(comparison, alice, truth if rng.random() < 0.65 else -truth)
        judge(comparison, biased, -1)
        decide(comparison, truth)
    Judgment.objects.filter(annotator=biased).update(active_seconds=240)
    return project


def test_admins_see_skill_bias_agreement_and_speed_with_intervals(client_for, erin, project):
    response = client_for(erin).get(f"/leaderboard/{project.pk}/experts/")
    html = response.content.decode()
    assert response.status_code == 200
    table = html[html.index('id="experts"') : html.index('id="skill-weighted"')]
    rows = {
        name: r for r in table.split("<tr>") for name in ("anna", "alice", "bias-bob") if name in r
    }
    assert set(rows) == {"anna", "alice", "bias-bob"}
    assert "side bias" in rows["bias-bob"] and "side bias" not in rows["anna"]
    # Always A: shrunk toward the panel by the prior, still far from 50%.
    prefer_a = int(rows["bias-bob"].split("<td>")[4].split("%")[0])
    assert prefer_a >= 90
    # anna agrees with every decision; the Wilson interval's upper end is 100%.
    assert "<td>100% (" in rows["anna"] and "to 100%; n = 30)" in rows["anna"]
    assert "4.0 (4.0 to 4.0)" in rows["bias-bob"] and "10.0 (10.0 to 10.0)" in rows["anna"]
    skill = {name: float(row.split("<td>")[3].split(" ")[0]) for name, row in rows.items()}
    assert skill["anna"] > skill["alice"]
    weighted = html[html.index('id="skill-weighted"') :]
    assert weighted.index("claude-code 1.0") < weighted.index("codex 2") < weighted.index("aider")


def test_the_experts_page_is_for_admins_and_adjudicators_only(client_for, make_user, project):
    carol = make_user("carol", "adjudicator")
    assert client_for(carol).get(f"/leaderboard/{project.pk}/experts/").status_code == 200
    annotator = make_user("dave", "annotator")
    assert client_for(annotator).get(f"/leaderboard/{project.pk}/experts/").status_code == 403


def test_a_bad_filter_or_no_judgments_is_explained(client_for, erin, project, db):
    bad = client_for(erin).get(f"/leaderboard/{project.pk}/experts/", {"criterion": "taste"})
    assert bad.status_code == 400 and "criterion must be one of" in bad.content.decode()
    empty = make_project("Empty")
    html = client_for(erin).get(f"/leaderboard/{empty.pk}/experts/").content.decode()
    assert "could not be fitted" in html and "No judgments yet." in html


def test_the_leaderboard_shows_the_skill_weighted_ranking_on_request_blinded_for_experts(
    client_for, erin, alice, project
):
    url = f"/leaderboard/{project.pk}/"
    plain = client_for(erin).get(url, {"rounds": 20}).content.decode()
    assert 'id="skill-weighted"' not in plain
    named = client_for(erin).get(url, {"rounds": 20, "skill_weighted": 1}).content.decode()
    weighted = named[named.index('id="skill-weighted"') :]
    assert weighted.index("claude-code 1.0") < weighted.index("codex 2") < weighted.index("aider")
    blind = client_for(alice).get(url, {"rounds": 20, "skill_weighted": 1}).content.decode()
    section = blind[blind.index('id="skill-weighted"') :]
    assert "Agent 1" in section and "claude-code" not in blind and "bias-bob" not in section
