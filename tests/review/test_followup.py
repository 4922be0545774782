"""Follow-up turns from the comparison page, end to end: two API agents answered by the fake
model server over real HTTP, paired by the agents' pairing action, run by the real run_turn job
(sandbox, worktrees from the demo mirror), compared, followed up, judged on the final turn."""

from __future__ import annotations

import pytest

from marlin.agents.jobs import run_turn
from marlin.agents.models import Turn
from marlin.review import queue
from marlin.review.models import Judgment, JudgmentStatus
from tests.fakes import model_server_factory  # noqa: F401
from tests.review.workspace_factories import KEY_ENV, model_writes, paired_comparison


@pytest.mark.slow
def test_a_follow_up_runs_both_sides_and_the_page_shows_the_new_turn(
    erin,
    dave,
    alice,
    client_for,
    model_server_factory,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv(KEY_ENV, "sk-test-followup-0123456789")
    server = model_server_factory([])
    comparison = paired_comparison(erin, dave, server, overlap=1, min_rationale_chars=20)
    assert queue.next_comparison(alice) == comparison
    client = client_for(alice)
    base = f"/compare/{comparison.public_id}/"
    assert "Send follow-up to A and B" in client.get(base).content.decode()

    response = client.post(base + "follow-up/", {"prompt": "Please also add a CHANGES.md."})
    assert response.status_code == 302
    turns = Turn.objects.filter(run__in=[comparison.run_a, comparison.run_b], number=2)
    assert turns.count() == 2 and {t.prompt for t in turns} == {"Please also add a CHANGES.md."}

    status = client.get(base + "status/").content.decode()
    assert "A: queued" in status and "B: queued" in status and 'hx-trigger="every 2s"' in status
    # Side B finishes first: the page says so, and still polls.
    server.add(*model_writes("CHANGES.md", "B changes\n", "changes"))
    run_turn.call(Turn.objects.get(run=comparison.run_b, number=2).pk)
    status = client.get(base + "status/").content.decode()
    assert "A: queued" in status and "B: done" in status and "every 2s" in status
    server.add(*model_writes("CHANGES.md", "A changes\n", "changes"))
    run_turn.call(Turn.objects.get(run=comparison.run_a, number=2).pk)
    comparison.refresh_from_db()
    assert comparison.turn_count == 2
    status = client.get(base + "status/").content.decode()
    assert "Turn 2 is ready" in status and "every 2s" not in status

    page = client.get(base).content.decode()
    assert "Turn 2" in page and "Please also add a CHANGES.md." in page
    assert 'name="turn_note-1"' in page and 'name="turn_note-2"' in page
    incremental = client.get(base + "?turn=2&view=incremental").content.decode()
    assert "CHANGES.md" in incremental and "run was here" not in incremental
    cumulative = client.get(base + "?turn=2&view=cumulative").content.decode()
    assert "CHANGES.md" in cumulative and "run was here" in cumulative
    turn_one = client.get(base + "?turn=1").content.decode()
    assert "CHANGES.md" not in turn_one.split('class="sides"', 1)[1]

    submitted = client.post(
        base + "submit/",
        {
            "draft_revision": "0",
            "rating-correctness": "1",
            "rating-security": "na",
            "rating-reliability": "0",
            "rating-maintainability": "0",
            "overall": "1",
            "rationale": "Both did it; B's changelog is clearer.",
            "confidence": "3",
            "turn_note-1": "Both READMEs are fine.",
            "turn_note-2": "B answered the follow-up better.",
        },
    )
    assert submitted.status_code == 302
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.status == JudgmentStatus.SUBMITTED and judgment.turn_judged == 2
    assert judgment.turn_notes == {
        "1": "Both READMEs are fine.",
        "2": "B answered the follow-up better.",
    }


@pytest.mark.slow
def test_an_empty_follow_up_is_refused_with_a_message(
    erin,
    dave,
    alice,
    client_for,
    model_server_factory,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setenv(KEY_ENV, "sk-test-followup-0123456789")
    comparison = paired_comparison(erin, dave, model_server_factory([]), overlap=1)
    queue.next_comparison(alice)
    client = client_for(alice)
    response = client.post(
        f"/compare/{comparison.public_id}/follow-up/", {"prompt": "  "}, follow=True
    )
    assert "Write the follow-up prompt" in response.content.decode()
    assert not Turn.objects.filter(number=2).exists()


def test_a_reviewer_cannot_send_follow_ups(erin, dave, bob, client_for):
    from tests.review.workspace_factories import make_comparison

    comparison = make_comparison(erin, dave, overlap=1)
    response = client_for(bob).post(
        f"/compare/{comparison.public_id}/follow-up/", {"prompt": "more"}
    )
    assert response.status_code == 403
    assert not Turn.objects.filter(number=2).exists()
