"""The leaderboard page on real decisions: SVG charts, blinding by role, filters and no-data
cases.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marlin.analytics.queries import DecisionFilters, leaderboard
from tests.analytics_views.factories import league, make_agent, make_project

# A beats B beats C, with some upsets and a tie, so every pair is linked both ways.
RESULTS = [
    (0, 1, -2),
    (1, 0, 1),
    (0, 1, -1),
    (1, 2, -2),
    (2, 1, 2),
    (1, 2, 0),
    (0, 2, -3),
    (2, 0, 3),
    (2, 0, -1),
]


@pytest.fixture
def project(db, alice, make_user):
    anna = make_user("anna", "annotator")
    project = make_project("Ledgerlite")
    agents = [
        make_agent("claude-code", "1.0"),
        make_agent("codex", "2"),
        make_agent("aider", "0.9"),
    ]
    league(project, agents, RESULTS, annotators=[alice, anna])
    return project


def page(client, project, **params):
    return client.get(f"/leaderboard/{project.pk}/", {"rounds": 50, **params})


def test_admins_see_named_rankings_both_charts_and_agreement(client_for, erin, project):
    response = page(client_for(erin), project)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count("<svg") == 2
    assert "claude-code 1.0" in html and "codex 2" in html and "aider 0.9" in html
    assert "Style-controlled ranking" in html and "log_lines_changed" in html
    assert "Krippendorff" in html and "alice" in html and "anna" in html  # expert table
    # Best first: claude-code won most of its comparisons.
    ranking = html[html.index("<h2>Ranking</h2>") : html.index("<h2>Style-controlled ranking</h2>")]
    assert ranking.index("claude-code 1.0") < ranking.index("codex 2") < ranking.index("aider 0.9")


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_it_hides_agent_names_from_annotators_and_reviewers(client_for, make_user, project, role):
    viewer = make_user(f"viewer-{role}", role)
    html = page(client_for(viewer), project).content.decode()
    for name in ("claude-code", "codex", "aider"):
        assert name not in html
    assert "Agent 1" in html and "Agent 3" in html
    assert 'name="agents"' not in html  # the agent filter would list names and ids
    assert "alice" not in html  # per-expert table is for admins and adjudicators


def test_annotators_cannot_filter_by_agent_id(client_for, alice, project):
    response = page(client_for(alice), project, agents="1")
    assert response.status_code == 400
    assert "only for roles that may see agent names" in response.content.decode()


def test_outsiders_are_refused(client_for, mallory, project):
    assert page(client_for(mallory), project).status_code == 403


def test_no_data_gives_a_clear_message(client_for, erin, db):
    empty = make_project("Empty")
    html = page(client_for(erin), empty).content.decode()
    assert "Not enough data for a ranking yet (0 decided comparisons match)" in html
    assert "<svg" not in html


def test_a_disconnected_comparison_graph_is_explained_with_labels(client_for, erin, alice, db):
    project = make_project("Split")
    agents = [make_agent(n) for n in ("north", "south", "east", "west")]
    league(project, agents, [(0, 1, -1), (1, 0, 2), (2, 3, 1), (3, 2, -2)])
    html = page(client_for(erin), project).content.decode()
    assert "split the agents into 2 groups" in html and "north 1" in html
    blind = page(client_for(alice), project).content.decode()
    assert "split the agents into 2 groups" in blind and "north" not in blind and "Agent 1" in blind


def test_filters_by_criterion_kind_and_date(client_for, erin, project):
    client = client_for(erin)
    html = page(client, project, criterion="security").content.decode()
    assert "Not enough data" in html  # security is "not applicable" on every decision
    assert (
        "9 decided comparisons" in page(client, project, criterion="correctness").content.decode()
    )
    assert "0 decided comparisons" in page(client, project, task_kind="bug_fix").content.decode()
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    assert "3 decided comparisons" in page(client, project, since=since).content.decode()
    bad = page(client, project, since="last week")
    assert bad.status_code == 400 and "since must be a date" in bad.content.decode()


def test_fits_are_cached_until_a_new_decision_arrives(project, settings):
    filters = DecisionFilters()
    first = leaderboard(project, filters, rounds=20)
    cached = list((settings.DATA_DIR / "cache" / "leaderboards").glob("*.json"))
    assert len(cached) == 1
    again = leaderboard(project, filters, rounds=20)
    assert [a.score for a in again.plain.agents] == [a.score for a in first.plain.agents]
    league(project, [make_agent("new-agent")] + [make_agent("other-agent")], [(0, 1, -1)])
    leaderboard(project, filters, rounds=20)
    assert len(list((settings.DATA_DIR / "cache" / "leaderboards").glob("*.json"))) == 2


def test_agent_names_are_escaped_in_tables_and_charts(client_for, erin, db):
    project = make_project("Escaping")
    agents = [make_agent("<script>alert(1)</script>"), make_agent("plain")]
    league(project, agents, [(0, 1, -1), (1, 0, 2), (0, 1, 1)])
    html = page(client_for(erin), project).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # table, CI chart, heat map
