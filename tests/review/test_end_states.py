"""Clear end states: a submitted judgment reads back what was submitted and when; refusals and
errors are styled pages that say what happened and what to do; preferences read as words."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

from marlin.review import pipeline, queue
from marlin.review.models import Judgment
from tests.review.factories import (
    agree_all,
    make_comparison,
    make_project,
    submitted_judgment,
)

RATIONALE = "Side A parses every accounting negative and keeps rejecting unbalanced input."


@pytest.fixture
def comparison(alice):
    comparison = make_comparison(make_project(overlap=1, min_rationale_chars=40))
    assert queue.next_comparison(alice) == comparison
    return comparison


def test_a_submitted_judgment_reads_back_what_was_submitted_and_when(alice, client_for, comparison):
    client = client_for(alice)
    page = f"/compare/{comparison.public_id}/"
    posted = client.post(
        f"{page}submit/",
        {
            "draft_revision": "0",
            "rating-correctness": "-3",
            "rating-security": "na",
            "rating-reliability": "-1",
            "rating-maintainability": "0",
            "overall": "-2",
            "rationale": RATIONALE,
            "confidence": "4",
            "turn_note-1": "",
        },
    )
    assert posted.status_code == 302
    html = client.get(page).content.decode()
    judgment = Judgment.objects.get(annotator=alice)
    stamp = judgment.submitted_at.astimezone().strftime("%Y-%m-%d")
    assert "Submitted <time" in html and stamp in html and "It is read-only now" in html
    assert 'id="judgment-form"' not in html and "Draft restored" not in html
    assert "Submit judgment" not in html and "Send follow-up" not in html
    summary = html.split('class="kv judgment-summary"', 1)[1].split("</dl>", 1)[0]
    assert 'title="-3">A much better</span>' in summary
    assert 'title="-2">A better</span>' in summary  # the overall preference, in words
    assert 'title="0">Tie</span>' in summary and ">n/a</span>" in summary
    assert "4 of 5" in summary and RATIONALE in html


def test_a_role_denial_is_a_styled_page_with_its_reason_and_no_traceback(alice, client_for, caplog):
    client = client_for(alice)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/review/queue/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "You may not do this" in html and "This page needs one of these roles: reviewer" in html
    assert "ask an admin to grant you the role" in html and "marlin.css" in html
    assert all(record.exc_info is None for record in caplog.records)


def test_a_page_that_does_not_exist_is_a_styled_404(alice, client_for):
    response = client_for(alice).get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "There is nothing here" in html and "/no/such/page/" in html and "marlin.css" in html


def test_a_server_error_page_says_it_is_not_the_users_fault(db):
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on Marlin" in html and "Your saved drafts are kept" in html


def test_the_decision_page_shows_the_preference_in_words_with_the_number_as_a_tooltip(
    alice, make_user, client_for
):
    comparison = make_comparison(make_project(overlap=1, reviewers_per_judgment=1))
    judgment = submitted_judgment(comparison, alice, -2)
    pipeline.do_review(
        make_user("bob", "reviewer"),
        judgment,
        verdict="agree",
        reason="Right call.",
        per_criterion=agree_all(comparison),
    )
    html = client_for(make_user("carol", "adjudicator")).get(
        f"/review/{comparison.public_id}/decision/"
    )
    text = html.content.decode()
    assert 'class="decision-overall"><span class="pref" data-value="-2" title="-2">A better' in text
    assert ">-2<" not in text
