"""Multi-turn verdicts: an expert's preference after each turn is kept (the last one is the
overall preference), exports say which turn they use, and follow-ups are not offered where a
side cannot continue."""

from __future__ import annotations

import pytest
from django.utils import timezone

from marlin.agents.actions import CANNOT_CONTINUE
from marlin.agents.models import Candidate, Turn, TurnStatus
from marlin.analytics.queries import DecisionFilters
from marlin.exports.build import judgment_records, preference_rows
from marlin.review import pipeline, queue
from marlin.review.models import Comparison, Judgment
from tests.api.conftest import token_for  # noqa: F401
from tests.review.factories import PATCH, agree_all, make_comparison, make_project

RATIONALE = "After the follow-up B handles the empty ledger; A still crashes on it."


@pytest.fixture
def two_turns(alice) -> Comparison:
    """A comparison whose two (imported) runs both have a second turn."""
    comparison = make_comparison(make_project(overlap=1, reviewers_per_judgment=1))
    for n, run in enumerate((comparison.run_a, comparison.run_b)):
        turn = Turn.objects.create(
            run=run,
            number=2,
            prompt="Please also handle an empty ledger.",
            status=TurnStatus.DONE,
            finished_at=timezone.now(),
        )
        Candidate.objects.create(turn=turn, patch=PATCH.replace("{note}", f"turn 2, {n}"))
    comparison.turn_count = 2
    comparison.save(update_fields=["turn_count"])
    assert queue.next_comparison(alice) == comparison
    return comparison


def _judgment(**extra: str) -> dict[str, str]:
    return {
        "draft_revision": "0",
        "rating-correctness": "2",
        "rating-security": "na",
        "rating-reliability": "1",
        "rating-maintainability": "0",
        "overall": "1",
        "rationale": RATIONALE,
        "confidence": "4",
        **extra,
    }


def test_an_expert_records_a_preference_per_turn_and_a_follow_up_that_flips_it_shows(
    alice, make_user, client_for, two_turns
):
    client = client_for(alice)
    page = f"/compare/{two_turns.public_id}/"
    html = client.get(page).content.decode()
    assert 'name="turn_verdict-1"' in html and 'name="turn_verdict-2"' not in html
    assert 'aria-label="Turn 1: A better"' in html
    saved = client.post(f"{page}draft/", _judgment(**{"turn_verdict-1": "-2"}))
    assert saved.status_code == 200
    assert Judgment.objects.get(annotator=alice).turn_verdicts == {"1": -2}
    assert 'name="turn_verdict-1" value="-2" aria-label="Turn 1: A better" checked' in (
        client.get(page).content.decode()
    )
    submitted = client.post(
        f"{page}submit/", _judgment(draft_revision="1", **{"turn_verdict-1": "-2"})
    )
    assert submitted.status_code == 302
    judgment = Judgment.objects.get(annotator=alice)
    # Turn 1: A better; after the follow-up, turn 2 (the judged one): B slightly better.
    assert judgment.turn_verdicts == {"1": -2, "2": 1} and judgment.turn_judged == 2
    assert judgment.overall == 1
    done = client.get(page).content.decode()
    assert "turn 1: <span" in done and "turn 2: <span" in done

    # The records export carries every turn's preference; the preference export says its turn.
    pipeline.do_review(
        make_user("bob", "reviewer"),
        judgment,
        verdict="agree",
        reason="Right call.",
        per_criterion=agree_all(two_turns),
    )
    (record,) = judgment_records(two_turns.project, DecisionFilters())
    assert record["turn_verdicts"] == {"1": -2, "2": 1} and record["turn_judged"] == 2
    (row,) = preference_rows(two_turns.project, DecisionFilters())
    assert row["turn"] == 2 and row["turns"] == 2
    board = client_for(make_user("erin", "admin")).get(f"/leaderboard/{two_turns.project_id}/")
    assert "counts with its decision on its last judged turn" in board.content.decode()


def test_a_bad_per_turn_preference_is_named_and_nothing_is_submitted(alice, client_for, two_turns):
    client = client_for(alice)
    page = f"/compare/{two_turns.public_id}/"
    response = client.post(f"{page}submit/", _judgment(**{"turn_verdict-1": "7"}))
    assert response.status_code == 302
    html = client.get(page).content.decode()
    assert "<strong>Preference on turn 1</strong>" in html and "is not on the 7-point scale" in html
    assert not Judgment.objects.filter(annotator=alice).exists()


def test_follow_ups_are_not_offered_when_a_side_is_imported_and_say_why(
    alice, client_for, two_turns
):
    client = client_for(alice)
    page = f"/compare/{two_turns.public_id}/"
    html = client.get(page).content.decode()
    assert "Send follow-up to A and B" not in html
    assert "at least one side is a result imported" in html
    answer = client.post(f"{page}follow-up/", {"prompt": "And add a test."}, follow=True)
    assert CANNOT_CONTINUE in answer.content.decode()
    assert not Turn.objects.filter(number=3).exists()


def test_the_api_saves_and_returns_the_per_turn_preferences(
    alice,
    token_for,  # noqa: F811
    client,
    two_turns,
):
    url = f"/api/comparisons/{two_turns.public_id}/judgment"
    headers = token_for(alice)
    body = {"draft_revision": 0, "overall": 1, "turn_verdicts": {"1": -2}}
    saved = client.put(url, body, content_type="application/json", headers=headers)
    assert saved.status_code == 200, saved.content
    assert saved.json()["turn_verdicts"] == {"1": -2}
    bad = client.put(
        url,
        {"draft_revision": 1, "turn_verdicts": {"1": 9}},
        content_type="application/json",
        headers=headers,
    )
    assert bad.status_code == 422 and "7-point scale" in bad.json()["detail"]
    assert client.get(url, headers=headers).json()["turn_verdicts"] == {"1": -2}
