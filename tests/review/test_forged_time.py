"""Issue 11, finding 1: experts set their own pay. Reproduced through the interfaces an expert
has: the comparison page's forms, the review and adjudication pages, and the JSON API. Each opens
a piece of work, submits it about a second later and claims a week of work (604,800 s), or
posts a review or decision form with a four-hour-old timer. At $60 an hour the week used to be
paid 1,008,000 cents. Time is now what the server counted between heartbeats it stamped itself
(tests/review/test_server_time.py), so none of this moves the earning.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core import signing
from django.test import Client

from marlin.accounts.models import ApiToken, Earning
from marlin.review.models import Comparison, ComparisonState, Judgment, Review
from tests.review.factories import (
    RATIONALE,
    agree_all,
    make_comparison,
    make_project,
    submitted_judgment,
)

WEEK = "604800"
FORGED = {"active_seconds": WEEK, "wall_seconds": WEEK}
# The old review and adjudication pages trusted a signed "timer" of when the form was opened:
# a tab (or a token) kept four hours was paid four hours.
OLD_TIMER_SALT = "marlin.review.pipeline.timer"
RATE = 6000  # cents an hour
# A couple of seconds at $60/h; the forged week would be 1,008,000 c.
AT_MOST_CENTS = 5


def hourly(**policy: Any) -> Any:
    return make_project(pay_mode="hourly", hourly_rate_cents=RATE, **policy)


def judgment_form(revision: int = 0, **extra: str) -> dict[str, str]:
    return {
        "draft_revision": str(revision),
        "rating-correctness": "-2",
        "rating-security": "na",
        "rating-reliability": "-1",
        "rating-maintainability": "0",
        "overall": "-2",
        "rationale": RATIONALE,
        "confidence": "4",
        **extra,
    }


def token_headers(user: Any) -> dict[str, str]:
    _, raw = ApiToken.issue(user, "tests")
    return {"Authorization": f"Bearer {raw}"}


def earning_of(user: Any, kind: str) -> Earning:
    return Earning.objects.get(user=user, kind=kind)


def disputed(annotators: tuple[Any, Any], reviewers: tuple[Any, Any]) -> Comparison:
    """An hourly comparison whose two judgments point different ways, both reviews agreeing."""
    comparison = make_comparison(hourly(overlap=2, reviewers_per_judgment=1))
    first = submitted_judgment(comparison, annotators[0], -2, active_seconds=0)
    second = submitted_judgment(comparison, annotators[1], 2, active_seconds=0)
    for reviewer, judgment in zip(reviewers, (first, second), strict=True):
        client = Client()
        client.force_login(reviewer)
        form = {"verdict": "agree", "reason": "The ratings follow the diff."}
        form |= {f"agree-{key}": "agree" for key in agree_all(comparison)}
        url = f"/review/{comparison.public_id}/judgments/{judgment.pk}/"
        assert client.post(url, form).status_code == 302
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED
    return comparison


# The attacks -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_week_claimed_through_the_comparison_page_is_not_paid(alice, client_for):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    client = client_for(alice)
    assert client.post("/compare/next/")["Location"] == f"/compare/{comparison.public_id}/"
    assert client.get(f"/compare/{comparison.public_id}/").status_code == 200
    draft = client.post(f"/compare/{comparison.public_id}/draft/", judgment_form(0, **FORGED))
    assert draft.status_code == 200
    time.sleep(1)
    submitted = client.post(f"/compare/{comparison.public_id}/submit/", judgment_form(1, **FORGED))
    assert submitted.status_code == 302, submitted.content.decode()[-1500:]

    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.active_seconds <= judgment.wall_seconds <= 3
    earning = earning_of(alice, "judgment")
    assert earning.amount_cents <= AT_MOST_CENTS, earning.amount_cents


@pytest.mark.django_db
def test_a_week_claimed_through_the_api_is_not_paid(alice, client):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    headers = token_headers(alice)
    claimed = client.post("/api/comparisons/next", headers=headers)
    assert claimed.status_code == 200 and claimed.json()["public_id"] == comparison.public_id
    url = f"/api/comparisons/{comparison.public_id}/judgment"
    body = {
        "draft_revision": 0,
        "ratings": {"correctness": -2, "security": None, "reliability": -1, "maintainability": 0},
        "overall": -2,
        "rationale": RATIONALE,
        "confidence": 4,
        "active_seconds": int(WEEK),
        "wall_seconds": int(WEEK),
    }
    saved = client.put(url, body, content_type="application/json", headers=headers)
    assert saved.status_code == 200, saved.json()
    time.sleep(1)
    submitted = client.post(url + "/submit", headers=headers)
    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["active_seconds"] <= submitted.json()["wall_seconds"] <= 3
    assert earning_of(alice, "judgment").amount_cents <= AT_MOST_CENTS


@pytest.mark.django_db
def test_a_week_claimed_for_a_review_through_the_api_is_not_paid(alice, bob, client):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=1))
    judgment = submitted_judgment(comparison, alice, -1, active_seconds=0)
    time.sleep(1)
    response = client.post(
        "/api/reviews",
        {
            "judgment_id": judgment.pk,
            "verdict": "agree",
            "reason": "The ratings follow the diff.",
            "per_criterion": agree_all(comparison),
            "active_seconds": int(WEEK),
        },
        content_type="application/json",
        headers=token_headers(bob),
    )
    assert response.status_code == 201, response.json()
    assert Review.objects.get(reviewer=bob).active_seconds <= 3
    assert earning_of(bob, "review").amount_cents <= AT_MOST_CENTS


@pytest.mark.django_db
def test_an_old_timer_or_a_week_on_the_review_page_is_not_paid(alice, bob, client_for):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=1))
    judgment = submitted_judgment(comparison, alice, -1, active_seconds=0)
    client = client_for(bob)
    url = f"/review/{comparison.public_id}/judgments/{judgment.pk}/"
    assert client.get(url).status_code == 200
    form = {
        "verdict": "agree",
        "reason": "The ratings follow the diff.",
        "timer": signing.dumps(time.time() - 4 * 3600, salt=OLD_TIMER_SALT),
        **FORGED,
    }
    form |= {f"agree-{key}": "agree" for key in agree_all(comparison)}
    assert client.post(url, form).status_code == 302
    assert Review.objects.get(reviewer=bob).active_seconds <= 3
    assert earning_of(bob, "review").amount_cents <= AT_MOST_CENTS


@pytest.mark.django_db
def test_an_old_timer_or_a_week_on_the_adjudication_page_is_not_paid(
    alice, make_user, bob, carol, client_for
):
    anna, brian = make_user("anna", "annotator"), make_user("brian", "reviewer")
    comparison = disputed((alice, anna), (bob, brian))
    client = client_for(carol)
    url = f"/review/{comparison.public_id}/adjudicate/"
    assert client.get(url).status_code == 200
    form = {
        "overall": "-1",
        "rationale": "A is correct on empty input; B's change to total() breaks two callers.",
        "rating-correctness": "-2",
        "rating-security": "na",
        "rating-reliability": "-1",
        "rating-maintainability": "0",
        "timer": signing.dumps(time.time() - 4 * 3600, salt=OLD_TIMER_SALT),
        **FORGED,
    }
    assert client.post(url, form).status_code == 302
    assert comparison.decision.active_seconds <= 3
    assert earning_of(carol, "adjudication").amount_cents <= AT_MOST_CENTS
