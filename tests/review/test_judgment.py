"""Submitting a judgment: validation with clear messages, finality, audit, and the pipeline."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from marlin.audit.models import AuditEvent
from marlin.review import queue
from marlin.review.actions import JudgmentClosed, NotAssigned, do_start_judgment, do_submit_judgment
from marlin.review.models import Claim, ComparisonState, Judgment, JudgmentStatus
from marlin.tasks.actions import do_revise_rubric
from marlin.tasks.rubric import DEFAULT_CRITERIA
from tests.review.factories import make_comparison, make_project

RATIONALE = "Side A parses every accounting negative and keeps rejecting unbalanced input."


@pytest.fixture
def comparison(alice):
    comparison = make_comparison(make_project(overlap=1, min_rationale_chars=40))
    assert queue.next_comparison(alice) == comparison
    return comparison


@pytest.fixture
def alice_client(alice, client_for, comparison):
    client = client_for(alice)
    client.get(f"/compare/{comparison.public_id}/")
    return client


def _complete(**overrides) -> dict[str, str]:
    fields = {
        "draft_revision": "0",
        "rating-correctness": "-3",
        "rating-security": "na",
        "rating-reliability": "-1",
        "rating-maintainability": "0",
        "overall": "-2",
        "rationale": RATIONALE,
        "confidence": "4",
        "active_seconds": "321",  # sent by older pages; ignored
        "wall_seconds": "400",
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


def _submit(client, comparison, **overrides):
    return client.post(f"/compare/{comparison.public_id}/submit/", _complete(**overrides))


def _refused(client, comparison, **overrides) -> str:
    """Submit, be sent back to the page (POST/redirect/GET), and read it there."""
    page = f"/compare/{comparison.public_id}/"
    response = _submit(client, comparison, **overrides)
    assert response.status_code == 302 and response["Location"] == page
    html = client.get(page).content.decode()
    assert "['" not in html  # messages, never a Python list
    return html


def test_a_complete_judgment_is_submitted_audited_and_handed_to_the_pipeline(
    alice, alice_client, comparison
):
    response = _submit(alice_client, comparison)
    assert response.status_code == 302 and response["Location"] == "/compare/"
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.status == JudgmentStatus.SUBMITTED and judgment.submitted_at is not None
    assert judgment.ratings == {
        "correctness": -3,
        "security": None,
        "reliability": -1,
        "maintainability": 0,
    }
    assert judgment.overall == -2 and judgment.active_seconds == 0  # no heartbeats were sent
    assert judgment.rubric_version == comparison.project.rubric.current_version()
    assert judgment.turn_judged == 1
    assert Claim.objects.get(annotator=alice).released_at is not None
    assert (
        AuditEvent.objects.filter(verb="judgment.submitted", object_id=str(judgment.pk)).count()
        == 1
    )
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.IN_REVIEW  # overlap 1 reached: the pipeline moved it


def test_a_too_short_rationale_is_refused_and_the_draft_is_kept(alice, alice_client, comparison):
    html = _refused(alice_client, comparison, rationale="Too short.")
    assert "The rationale is too short: 10 of at least 40 characters" in html
    assert "<li><strong>Rationale</strong>: The rationale is too short" in html  # the summary
    assert ">Too short.</textarea>" in html
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.status == JudgmentStatus.DRAFT
    assert judgment.rationale == "Too short." and judgment.ratings["correctness"] == -3


def test_a_malformed_field_is_marked_and_everything_typed_is_shown_again(
    alice, alice_client, comparison
):
    html = _refused(alice_client, comparison, **{"rating-reliability": "9", "confidence": "8"})
    assert "Nothing was submitted: fix what is marked below." in html
    assert "Reliability: &#x27;9&#x27; is not on the 7-point scale (-3 to 3)." in html
    assert "Confidence must be 1 to 5, not &#x27;8&#x27;." in html
    assert f">{RATIONALE}</textarea>" in html
    assert re.search(r'name="rating-correctness" value="-3"[^>]* checked', html)
    assert re.search(r'name="rating-security" value="na"[^>]* checked', html)
    assert re.search(r'name="overall" value="-2"[^>]* checked', html)
    assert not Judgment.objects.filter(annotator=alice).exists()  # nothing saved, nothing started
    # Shown once: a reload shows the page as the server holds it, and posts nothing again.
    again = alice_client.get(f"/compare/{comparison.public_id}/").content.decode()
    assert "Nothing was submitted" not in again and RATIONALE not in again


def test_a_missing_criterion_is_named(alice, alice_client, comparison):
    assert "missing: Reliability." in _refused(
        alice_client, comparison, **{"rating-reliability": None}
    )
    assert Judgment.objects.get(annotator=alice).status == JudgmentStatus.DRAFT


def test_the_overall_preference_and_confidence_are_required(alice_client, comparison):
    html = _refused(alice_client, comparison, overall=None, confidence=None)
    assert "Choose an overall preference" in html
    assert "Say how confident you are" in html


def test_not_applicable_is_refused_where_the_rubric_does_not_allow_it(erin, alice, client_for):
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[0]["allow_not_applicable"] = False
    project = make_project(overlap=1)
    do_revise_rubric(erin, project.rubric, criteria, note="correctness always applies")
    comparison = make_comparison(project)
    queue.next_comparison(alice)
    client = client_for(alice)
    html = client.get(f"/compare/{comparison.public_id}/").content.decode()
    assert 'name="rating-correctness" value="na"' not in html
    assert "Correctness cannot be rated" in _refused(
        client, comparison, **{"rating-correctness": "na"}
    )


def test_submitting_is_final(alice, alice_client, comparison):
    _submit(alice_client, comparison)
    again = _submit(alice_client, comparison, overall="3", draft_revision="1")
    assert again.status_code == 302 and again["Location"] == f"/compare/{comparison.public_id}/"
    page = alice_client.get(again["Location"]).content.decode()
    assert "This judgment was submitted and is final" in page
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.overall == -2
    with pytest.raises(JudgmentClosed):
        do_submit_judgment(alice, judgment)
    draft = alice_client.post(
        f"/compare/{comparison.public_id}/draft/", _complete(draft_revision="1")
    )
    assert draft.status_code == 409 and "final" in draft.json()["error"]


def test_a_judgment_on_a_comparison_not_assigned_to_you_is_refused(
    make_user, client_for, comparison
):
    anna = make_user("anna", "annotator")
    response = _submit(client_for(anna), comparison)
    assert response.status_code == 403
    assert "not assigned to you" in response.content.decode()
    with pytest.raises(NotAssigned):
        do_start_judgment(anna, comparison)
    assert not Judgment.objects.filter(annotator=anna).exists()


def test_a_stale_submit_from_another_tab_submits_nothing_and_shows_your_text(
    alice, alice_client, comparison
):
    alice_client.post(
        f"/compare/{comparison.public_id}/draft/", {"draft_revision": "0", "rationale": "other tab"}
    )
    html = _refused(alice_client, comparison)  # this tab still thinks revision 0
    assert "changed in another tab" in html and "Nothing was submitted" in html
    assert RATIONALE in html  # what this tab typed is on the page again
    assert 'name="draft_revision" value="1"' in html  # submitting again goes through
    assert Judgment.objects.get(annotator=alice).status == JudgmentStatus.DRAFT


def test_an_incomplete_draft_cannot_be_submitted_through_the_action(alice, comparison):
    judgment = do_start_judgment(alice, comparison)
    with pytest.raises(ValidationError) as error:
        do_submit_judgment(alice, judgment)
    assert set(error.value.message_dict) == {"ratings", "overall", "rationale", "confidence"}


def test_a_judgment_keeps_the_rubric_version_it_started_on(erin, alice, alice_client, comparison):
    alice_client.post(
        f"/compare/{comparison.public_id}/draft/", {"draft_revision": "0", "overall": "-1"}
    )
    started_on = Judgment.objects.get(annotator=alice).rubric_version
    criteria = [dict(c) for c in DEFAULT_CRITERIA]
    criteria[1]["guidance"] += " Also check dependency pinning."
    do_revise_rubric(erin, comparison.project.rubric, criteria, note="pinning")
    _submit(alice_client, comparison, draft_revision="1")
    assert Judgment.objects.get(annotator=alice).rubric_version == started_on


def test_a_judgment_sent_back_for_revision_shows_the_comments_and_can_be_submitted_again(
    alice, bob, alice_client, comparison
):
    from marlin.review.pipeline import do_request_revision

    _submit(alice_client, comparison)
    judgment = Judgment.objects.get(annotator=alice)
    do_request_revision(bob, judgment, comments="Security is not n/a: side B calls eval.")
    html = alice_client.get(f"/compare/{comparison.public_id}/").content.decode()
    assert "A reviewer asked for a revision" in html and "side B calls eval" in html
    assert "bob" not in html.split('id="judgment-form"', 1)[1]
    response = _submit(alice_client, comparison, **{"rating-security": "-2", "draft_revision": "1"})
    assert response.status_code == 302
    judgment.refresh_from_db()
    assert judgment.status == JudgmentStatus.SUBMITTED and judgment.ratings["security"] == -2
