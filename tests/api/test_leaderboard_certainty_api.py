"""The leaderboard API carries what the page says about certainty: SEs, provisional reasons,
the tie treatment and the comparisons needed to separate adjacent ranks."""

from __future__ import annotations

from tests.analytics_views.factories import league, make_agent, make_project


def test_the_api_reports_standard_errors_provisional_places_and_separation(
    client, world, token_for, erin
):
    headers = token_for(erin)
    url = f"/api/leaderboards/{world['project'].pk}"
    body = client.get(url, {"rounds": 20}, headers=headers).json()
    assert body["tie_model"] == "davidson" and body["decisions"] == 4
    for row in body["ranking"]:
        # Four comparisons among three agents: every place is provisional, with its reason.
        assert "comparisons (fewer than 10)" in row["provisional"]
        assert row["se"] is None or row["se"] > 0
    assert [s["upper_rank"] for s in body["separation"]] == [1, 2]
    half = client.get(url, {"rounds": 20, "ties": "half"}, headers=headers).json()
    assert half["tie_model"] == "half"
    bad = client.get(url, {"ties": "coin"}, headers=headers)
    assert bad.status_code == 422 and "ties must be one of davidson, half" in bad.json()["detail"]
    none = client.get(url, {"rubric_version": 2, "rounds": 5}, headers=headers).json()
    assert none["decisions"] == 0 and "Not enough data" in none["message"]
    # The league's judgments hold a verdict for turn 1 only when one was recorded: none here.
    early = client.get(url, {"at_turn": 1, "rounds": 5}, headers=headers).json()
    assert early["decisions"] == 0 and "Not enough data" in early["message"]
    bad_turn = client.get(url, {"at_turn": 1, "criterion": "correctness"}, headers=headers)
    assert (
        bad_turn.status_code == 422 and "at_turn ranks by the overall" in bad_turn.json()["detail"]
    )


def test_a_disconnected_graph_is_named_beside_the_largest_groups_ranking(
    client, token_for, erin, db
):
    project = make_project("Islands")
    agents = [make_agent(n) for n in ("north", "south", "east", "west", "up")]
    league(project, agents, [(0, 1, -1), (1, 0, 2), (1, 2, 1), (2, 0, -2), (3, 4, 1), (4, 3, -1)])
    body = client.get(
        f"/api/leaderboards/{project.pk}", {"rounds": 10}, headers=token_for(erin)
    ).json()
    assert "split the agents into 2 groups" in body["message"]
    assert "largest group only" in body["message"]
    assert {r["agent"] for r in body["ranking"]} == {"north 1", "south 1", "east 1"}
