"""Drafts: autosave with revisions, stale tabs, time the client sends ignored, malformed input."""

from __future__ import annotations

import json
import re

import pytest

from marlin.audit.models import AuditEvent
from marlin.review import queue
from marlin.review.models import Claim, Judgment, JudgmentStatus
from tests.review.factories import make_comparison, make_project


@pytest.fixture
def comparison(alice):
    comparison = make_comparison(make_project(overlap=1, min_rationale_chars=20))
    assert queue.next_comparison(alice) == comparison
    return comparison


@pytest.fixture
def alice_client(alice, client_for, comparison):
    client = client_for(alice)
    assert client.get(f"/compare/{comparison.public_id}/").status_code == 200
    return client


def _draft_url(comparison) -> str:
    return f"/compare/{comparison.public_id}/draft/"


def test_opening_the_page_writes_nothing(alice, client_for, comparison):
    claim = Claim.objects.get(annotator=alice)
    events = AuditEvent.objects.count()
    client = client_for(alice)
    for path in ("", "draft/", "status/", "diff/A/", "trajectory/B/"):
        assert client.get(f"/compare/{comparison.public_id}/{path}").status_code in (200, 404)
    html = client.get(f"/compare/{comparison.public_id}/").content.decode()
    assert 'id="judgment-form"' in html and "Not saved yet." in html
    assert 'name="draft_revision" value="0"' in html
    assert not Judgment.objects.filter(annotator=alice).exists()
    assert AuditEvent.objects.count() == events
    assert Claim.objects.get(pk=claim.pk).last_seen_at == claim.last_seen_at


def test_the_first_autosave_starts_the_judgment_with_one_audit_event(
    alice, alice_client, comparison
):
    response = alice_client.post(
        _draft_url(comparison), {"draft_revision": "0", "rationale": "first words"}
    )
    assert response.status_code == 200 and response.json()["revision"] == 1
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.rationale == "first words"
    assert judgment.rubric_version == comparison.project.rubric.current_version()
    started = AuditEvent.objects.filter(verb="judgment.started", object_id=str(judgment.pk))
    assert started.count() == 1 and started.get().actor_id == alice.pk
    alice_client.post(_draft_url(comparison), {"draft_revision": "1", "rationale": "more"})
    assert AuditEvent.objects.filter(verb="judgment.started").count() == 1


def test_an_autosave_stores_the_draft_and_bumps_its_revision(alice, alice_client, comparison):
    comments = [
        {"side": "B", "file": "ledger.py", "line_side": "new", "line": 3, "text": "None check"}
    ]
    response = alice_client.post(
        _draft_url(comparison),
        {
            "draft_revision": "0",
            "rating-correctness": "-2",
            "rating-security": "na",
            "overall": "-1",
            "rationale": "A keeps callers working.",
            "confidence": "4",
            "comments": json.dumps(comments),
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["revision"] == 1
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.ratings == {"correctness": -2, "security": None}
    assert (judgment.overall, judgment.confidence) == (-1, 4)
    assert judgment.comments == comments
    assert judgment.status == JudgmentStatus.DRAFT


def test_the_draft_is_restored_into_the_page_after_a_reload(alice_client, comparison):
    alice_client.post(
        _draft_url(comparison),
        {"draft_revision": "0", "rating-reliability": "2", "rationale": "kept text"},
    )
    html = alice_client.get(f"/compare/{comparison.public_id}/").content.decode()
    assert re.search(r'name="rating-reliability" value="2"[^>]* checked', html)
    assert ">kept text</textarea>" in html
    assert 'name="draft_revision" value="1"' in html


def test_a_stale_draft_from_another_tab_is_refused_with_the_newer_one_and_nothing_is_overwritten(
    alice, alice_client, comparison
):
    first_tab = alice_client.post(
        _draft_url(comparison), {"draft_revision": "0", "rationale": "from tab one"}
    )
    assert first_tab.json()["revision"] == 1
    second_tab = alice_client.post(
        _draft_url(comparison), {"draft_revision": "0", "rationale": "from tab two"}
    )
    assert second_tab.status_code == 409
    body = second_tab.json()
    assert "changed in another tab" in body["error"]
    assert body["revision"] == 1 and body["draft"]["rationale"] == "from tab one"
    assert Judgment.objects.get(annotator=alice).rationale == "from tab one"
    # The second tab chose to keep its text: it saves again on top of revision 1.
    again = alice_client.post(
        _draft_url(comparison), {"draft_revision": "1", "rationale": "from tab two"}
    )
    assert again.status_code == 200 and again.json()["revision"] == 2
    assert Judgment.objects.get(annotator=alice).rationale == "from tab two"


def test_the_server_ignores_the_time_a_client_sends_with_a_draft(alice, alice_client, comparison):
    # Time is measured by the server from heartbeats; what the form says about time is
    # accepted (older pages send it) and thrown away.
    for revision, seconds in enumerate(("300", "604800", "not a number")):
        response = alice_client.post(
            _draft_url(comparison),
            {"draft_revision": str(revision), "active_seconds": seconds, "wall_seconds": seconds},
        )
        assert response.status_code == 200, response.content
        assert response.json()["active_seconds"] == 0
    judgment = Judgment.objects.get(annotator=alice)
    assert (judgment.active_seconds, judgment.wall_seconds) == (0, 0)
    assert judgment.draft_revision == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rating-correctness", "9", "not on the 7-point scale"),
        ("overall", "na", "not on the 7-point scale"),
        ("confidence", "7", "Confidence must be 1 to 5"),
        ("comments", "{not json", "could not be read"),
        (
            "comments",
            json.dumps([{"side": "C", "file": "x", "line_side": "new", "line": 1, "text": "t"}]),
            "side must be A or B",
        ),
        (
            "comments",
            json.dumps([{"side": "A", "file": "x", "line_side": "new", "line": 1, "text": "\0"}]),
            "contains a null character",
        ),
        ("rationale", "nul \0 here", "Null characters are not allowed"),
    ],
)
def test_malformed_fields_are_refused_with_a_message(
    alice, alice_client, comparison, field, value, message
):
    response = alice_client.post(_draft_url(comparison), {"draft_revision": "0", field: value})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert message in " ".join(response.json()["fields"][field])
    # Refused input starts nothing: the judgment starts with the first save that is accepted.
    assert not Judgment.objects.filter(annotator=alice).exists()


def test_the_overall_criterion_cannot_be_marked_not_applicable_through_a_rating(
    alice_client, comparison
):
    # 'overall' is not a rated criterion, so a rating-overall field is ignored rather than stored.
    alice_client.post(_draft_url(comparison), {"draft_revision": "0", "rating-overall": "na"})
    assert Judgment.objects.get().ratings == {}


def test_the_newer_draft_can_be_fetched_as_json(alice_client, comparison):
    alice_client.post(_draft_url(comparison), {"draft_revision": "0", "overall": "3"})
    body = alice_client.get(_draft_url(comparison)).json()
    assert body["revision"] == 1 and body["draft"]["overall"] == 3


def test_a_draft_cannot_be_saved_by_someone_else(make_user, client_for, comparison):
    anna = make_user("anna", "annotator")
    response = client_for(anna).post(
        _draft_url(comparison), {"draft_revision": "0", "overall": "1"}
    )
    assert response.status_code == 403
    assert "not assigned to you" in response.json()["error"]
    assert not Judgment.objects.filter(annotator=anna).exists()


def test_saving_refreshes_the_claim(alice, alice_client, comparison):
    from datetime import timedelta

    from django.utils import timezone

    from marlin.review.models import Claim

    Claim.objects.filter(annotator=alice).update(
        last_seen_at=timezone.now() - timedelta(minutes=80)
    )
    alice_client.post(_draft_url(comparison), {"draft_revision": "0", "overall": "1"})
    claim = Claim.objects.get(annotator=alice)
    assert timezone.now() - claim.last_seen_at < timedelta(minutes=1)
