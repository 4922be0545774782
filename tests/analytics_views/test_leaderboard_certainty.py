"""The leaderboard says how sure it is: tie treatment named, SEs, provisional agents, power,
per rubric version and per turn, and the full agreement table."""

from __future__ import annotations

import re

import pytest

from marlin.review.models import Comparison, Decision, Judgment
from marlin.tasks.models import RubricVersion
from marlin.tasks.rubric import DEFAULT_CRITERIA
from tests.analytics_views.factories import (
    decide,
    judge,
    league,
    make_agent,
    make_comparison,
    make_project,
    make_repository,
    make_task,
)

# claude-code > codex > aider, with upsets and ties; aider appears in few comparisons.
RESULTS = [(0, 1, -2), (1, 0, 1), (0, 1, -1), (1, 0, 0), (0, 1, 2), (1, 0, 2)] * 3 + [
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
    project = make_project("Certain")
    agents = [make_agent("claude-code", "1.0"), make_agent("codex", "2"), make_agent("aider")]
    league(project, agents, RESULTS, annotators=[alice, anna])
    return project


def page(client, project, **params):
    return client.get(f"/leaderboard/{project.pk}/", {"rounds": 40, **params})


def row_of(html: str, label: str) -> str:
    ranking = html[html.index("<h2>Ranking</h2>") : html.index("How many more comparisons?")]
    return next(r for r in ranking.split("<tr>") if label in r)


def test_the_page_names_the_tie_treatment_and_shows_standard_errors(client_for, erin, project):
    html = page(client_for(erin), project).content.decode()
    assert "Ties: Davidson model (a tie is its own outcome)" in html
    assert re.search(r"<td>\d+ ± \d+</td>", row_of(html, "claude-code 1.0"))
    half = page(client_for(erin), project, ties="half").content.decode()
    assert "Ties: ties counted as half a win for each side (arena style)" in half
    assert "ν =" not in half[half.index('id="ranking-method"') :].split("</p>")[0]
    bad = page(client_for(erin), project, ties="coin")
    assert bad.status_code == 400 and "ties must be one of davidson, half" in bad.content.decode()


def test_agents_with_few_comparisons_are_provisional(client_for, erin, project):
    html = page(client_for(erin), project).content.decode()
    # aider played 6 comparisons (< 10): provisional with the reason in the title.
    assert "provisional" in row_of(html, "aider 1")
    assert 'title="only 6 comparisons (fewer than 10)"' in row_of(html, "aider 1")
    assert "provisional" not in row_of(html, "codex 2")


def test_the_power_estimate_is_stated_for_adjacent_ranks(client_for, erin, project):
    html = page(client_for(erin), project).content.decode()
    # Ranks 2 and 3 are close on few comparisons: the page says how many more would do.
    match = re.search(
        r"Rank 2 vs 3: gap (\d+) ± (\d+) points — about (\d+) more decided comparisons "
        r"to separate rank 2 from rank 3 at 95% \(80% power\)",
        html,
    )
    assert match, html[html.index("How many more") :][:800]
    gap, se, more = (int(x) for x in match.groups())
    n = len(RESULTS)
    # N_needed = N (se (z_0.975 + z_0.8) / gap)^2 with the rounded figures shown.
    assert more == pytest.approx(n * ((se * (1.96 + 0.8416) / gap) ** 2 - 1), rel=0.1)
    assert re.search(r"Rank 1 vs 2: gap \d+ ± \d+ points — (already separated|about \d+)", html)


def test_a_disconnected_graph_ranks_the_largest_group_and_lists_the_rest(client_for, erin, db):
    project = make_project("Islands")
    agents = [make_agent(n) for n in ("north", "south", "east", "west", "up")]
    league(
        project,
        agents,
        [(0, 1, -1), (1, 0, 2), (1, 2, 1), (2, 0, -2), (3, 4, 1), (4, 3, -1)],
    )
    html = page(client_for(erin), project).content.decode()
    assert "split the agents into 2 groups" in html
    assert "not ranked (provisional): west 1, up 1" in html
    assert "north 1" in row_of(html, "north 1")


def test_leaderboards_per_rubric_version_and_per_turn(client_for, erin, project):
    rubric = project.rubric
    v2 = RubricVersion.objects.create(
        rubric=rubric, number=2, criteria=DEFAULT_CRITERIA, change_note="Stricter security."
    )
    decisions = list(project.comparisons.order_by("pk").values_list("decision__pk", flat=True))
    # The last four decisions were made under version 2 of the rubric, on two-turn runs.
    Decision.objects.filter(pk__in=decisions[-4:]).update(rubric_version=v2)
    Comparison.objects.filter(decision__pk__in=decisions[-4:]).update(turn_count=2)
    client = client_for(erin)
    assert "4 decided comparisons" in page(client, project, rubric_version=2).content.decode()
    assert (
        f"{len(RESULTS) - 4} decided comparisons"
        in page(client, project, rubric_version=1).content.decode()
    )
    assert "4 decided comparisons" in page(client, project, turns=2).content.decode()
    # The agreement tables follow the same filters: the judgments of those four comparisons.
    Judgment.objects.filter(comparison__decision__pk__in=decisions[-4:]).update(rubric_version=v2)
    table = page(client, project, rubric_version=2).content.decode()
    assert "<tr><td>overall</td><td>4</td>" in table
    bad = page(client, project, turns="two")
    assert bad.status_code == 400 and "turns must be a whole number" in bad.content.decode()


def test_the_agreement_table_lists_every_coefficient_with_intervals(client_for, erin, project):
    html = page(client_for(erin), project).content.decode()
    table = html[html.index("Agreement coefficients: overall") :]
    for name in (
        "Percent agreement (per unit)",
        "Fleiss&#x27; kappa",
        "Conger&#x27;s kappa",
        "Gwet&#x27;s AC1",
        "Gwet&#x27;s AC2",
        "Brennan-Prediger",
        "Krippendorff&#x27;s alpha",
        "Cohen&#x27;s kappa",
        "Scott&#x27;s pi",
    ):
        assert name in table, name
    assert "computed per comparison, then averaged" in table
    # alice and anna always agree in these data: perfect per-unit agreement.
    assert re.search(r"Percent agreement \(per unit\)</td><td>identity</td><td>1.000</td>", table)


def test_a_leaderboard_of_the_experts_verdicts_after_an_earlier_turn(client_for, erin, db):
    """codex led after turn 1; after the follow-up turn claude-code won every comparison."""
    project = make_project("Turns")
    repository = make_repository()
    claude, codex = make_agent("claude-code", "1.0"), make_agent("codex", "2")
    for n in range(6):
        task = make_task(project, repository, n=n + 1)
        a, b = (claude, codex) if n % 2 == 0 else (codex, claude)
        comparison = make_comparison(project, task, a, b)
        comparison.turn_count = 2
        comparison.save(update_fields=["turn_count"])
        last = -2 if a == claude else 2  # claude-code better on the judged (last) turn
        judgment = judge(comparison, erin, last)
        judgment.turn_verdicts = {"1": -last, "2": last}  # codex better after turn 1
        judgment.save(update_fields=["turn_verdicts"])
        decide(comparison, last)
    client = client_for(erin)
    final = page(client, project).content.decode()
    ranking = final[final.index("<h2>Ranking</h2>") :]
    assert ranking.index("claude-code 1.0") < ranking.index("codex 2")
    early = page(client, project, at_turn=1).content.decode()
    assert "6 comparisons with verdicts after turn 1" in early
    assert "direction most of its experts chose after turn 1" in early
    ranking = early[early.index("<h2>Ranking</h2>") :]
    assert ranking.index("codex 2") < ranking.index("claude-code 1.0")
    bad = page(client, project, at_turn=1, criterion="correctness")
    assert bad.status_code == 400 and "at_turn ranks by the overall verdict" in bad.content.decode()
