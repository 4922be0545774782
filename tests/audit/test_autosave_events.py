"""Autosaves through the judgment page: a save that changes the verdict (a rating, the overall
preference, the confidence) is one audit event with the old and new verdict; saves that only
change text are not, so typing a rationale does not flood the log (it is one row the whole
system waits on)."""

from __future__ import annotations

import pytest

from marlin.audit.models import AuditEvent
from marlin.review import queue
from marlin.review.models import Judgment
from tests.review.factories import make_comparison, make_project


@pytest.fixture
def comparison(alice):
    comparison = make_comparison(make_project(overlap=1, min_rationale_chars=20))
    assert queue.next_comparison(alice) == comparison
    return comparison


def _save(client, comparison, revision: int, **fields: str) -> None:
    response = client.post(
        f"/compare/{comparison.public_id}/draft/",
        {"draft_revision": str(revision), **fields},
    )
    assert response.status_code == 200, response.content


def test_only_saves_that_change_the_verdict_are_audited(alice, client_for, comparison):
    client = client_for(alice)
    _save(client, comparison, 0, rationale="Reading both")
    _save(client, comparison, 1, rationale="Reading both diffs")
    _save(client, comparison, 2, rationale="A is better", overall="-1", confidence="3")
    for revision, text in enumerate(["A is better here", "A is better here, B breaks"], start=3):
        _save(client, comparison, revision, rationale=text, overall="-1", confidence="3")
    # The checks change her mind.
    _save(client, comparison, 5, rationale="B after all", overall="2", confidence="4")

    judgment = Judgment.objects.get(annotator=alice)
    events = AuditEvent.objects.filter(object_id=str(judgment.pk), object_type="review.judgment")
    assert [e.verb for e in events.order_by("sequence")] == [
        "judgment.started",
        "judgment.draft_verdict",
        "judgment.draft_verdict",
    ]
    first, second = events.filter(verb="judgment.draft_verdict").order_by("sequence")
    assert (first.old_values["overall"], first.new_values["overall"]) == (None, -1)
    assert (second.old_values["overall"], second.new_values["overall"]) == (-1, 2)
    assert second.new_values["confidence"] == 4 and second.actor == alice
    assert second.project_id == comparison.project_id
    assert "rationale" not in second.new_values
