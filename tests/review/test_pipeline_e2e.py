"""End to end through the web UI (the Django test client posting the real forms): two annotators,
two reviewers and an adjudicator drive one comparison to agreement and another to adjudication;
the timeline, the decisions and the earnings come out exactly as expected.

Marked ``postgres``: `make test` runs it again on PostgreSQL; it runs on SQLite too.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client

from marlin.accounts.models import Earning
from marlin.review.models import Comparison, Decision, JudgmentStatus
from marlin.review.pipeline_views import timeline_events
from tests.review.factories import make_comparison, make_project

CRITERIA = ("correctness", "security", "reliability", "maintainability")
RATIONALE = (
    "Side A handles the empty ledger and keeps the public API; side B breaks callers of total()."
)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def judge(user, ratings: dict[str, str], overall: int) -> str:
    """Take the next comparison from the annotator queue, open it, submit the judgment form."""
    client = login(user)
    response = client.post("/compare/next/")
    assert response.status_code == 302, response.content
    public_id = response["Location"].rstrip("/").split("/")[-1]
    assert client.get(f"/compare/{public_id}/").status_code == 200
    form = {f"rating-{key}": value for key, value in ratings.items()}
    form |= {
        "overall": str(overall),
        "rationale": RATIONALE,
        "confidence": "4",
        "active_seconds": "900",  # what an old page sent; the server measures time itself
        "draft_revision": "0",
    }
    response = client.post(f"/compare/{public_id}/submit/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    return public_id


def review_from_the_queue(user, limit: int) -> list[str]:
    """Open up to `limit` links of the reviewer's queue and post the review form (agreeing);
    return the public ids reviewed."""
    client = login(user)
    links = re.findall(
        r'href="(/review/[^/"]+/judgments/\d+/)"', client.get("/review/queue/").content.decode()
    )[:limit]
    for link in links:
        assert client.get(link).status_code == 200
        form = {"verdict": "agree", "reason": "I read both diffs and the tests."}
        for key in CRITERIA:
            form[f"agree-{key}"] = "agree"
        response = client.post(link, form)
        assert response.status_code == 302, response.content.decode()[-2000:]
    return [link.split("/")[2] for link in links]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db
def test_two_comparisons_go_to_agreement_and_to_adjudication_through_the_web_ui(
    make_user, erin
) -> None:
    if connection.vendor not in ("postgresql", "sqlite"):
        pytest.skip(f"needs PostgreSQL or SQLite, not {connection.vendor}")
    project = make_project(
        overlap=2,
        reviewers_per_judgment=1,
        agreement_max_step_difference=2,
        pay_per_judgment_cents=2000,
        pay_per_review_cents=500,
        pay_per_adjudication_cents=1200,
    )
    first = make_comparison(project=project, agents=("solver-one", "solver-two"))
    second = make_comparison(project=project, agents=("solver-three", "solver-four"))
    alice, anna = make_user("alice", "annotator"), make_user("anna", "annotator")
    bob, brian = make_user("bob", "reviewer"), make_user("brian", "reviewer")
    carol = make_user("carol", "adjudicator")

    # Both annotators judge both comparisons (the queue hands out the oldest first).
    a_prefers = {"correctness": "-3", "security": "na", "reliability": "-1", "maintainability": "0"}
    assert judge(alice, a_prefers, -2) == first.public_id
    assert (
        judge(
            anna,
            {"correctness": "-1", "security": "na", "reliability": "0", "maintainability": "1"},
            -1,
        )
        == first.public_id
    )
    assert judge(alice, a_prefers, -2) == second.public_id
    assert (
        judge(
            anna,
            {"correctness": "2", "security": "na", "reliability": "1", "maintainability": "1"},
            2,
        )
        == second.public_id
    )

    # One review per judgment: bob takes the two oldest from his queue, brian the other two.
    assert review_from_the_queue(bob, 2) == [first.public_id, first.public_id]
    assert review_from_the_queue(brian, 5) == [second.public_id, second.public_id]
    assert review_from_the_queue(bob, 5) == []
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("decided", "disputed")

    # The adjudicator finds the dispute in the queue and decides it.
    client = login(carol)
    assert second.public_id in client.get("/review/adjudicate/").content.decode()
    assert client.get(f"/review/{second.public_id}/adjudicate/").status_code == 200
    form = {
        "overall": "-1",
        "rationale": "A is correct on empty input; B's change to total() breaks two callers.",
    }
    form |= {
        "rating-correctness": "-2",
        "rating-security": "na",
        "rating-reliability": "-1",
        "rating-maintainability": "0",
    }
    response = client.post(f"/review/{second.public_id}/adjudicate/", form)
    assert (
        response.status_code == 302
        and response["Location"] == f"/review/{second.public_id}/decision/"
    )

    # Decisions: the median of the agreeing judgments, rounded toward a tie; the adjudicator's own.
    agreed, adjudicated = (
        Decision.objects.get(comparison=first),
        Decision.objects.get(comparison=second),
    )
    assert (agreed.source, agreed.overall, agreed.decided_by) == ("agreement", -1, None)
    assert agreed.ratings == {
        "correctness": -2,
        "security": None,
        "reliability": 0,
        "maintainability": 0,
    }
    assert (adjudicated.source, adjudicated.overall, adjudicated.decided_by) == (
        "adjudication",
        -1,
        carol,
    )
    statuses = dict(second.judgments.values_list("annotator__username", "status"))
    assert statuses == {"alice": JudgmentStatus.ACCEPTED, "anna": JudgmentStatus.REJECTED}

    # Earnings: accepted judgments, every review, the adjudication; anna's rejected one is unpaid.
    earned = sorted(Earning.objects.values_list("user__username", "kind", "amount_cents"))
    assert earned == [
        ("alice", "judgment", 2000),
        ("alice", "judgment", 2000),
        ("anna", "judgment", 2000),
        ("bob", "review", 500),
        ("bob", "review", 500),
        ("brian", "review", 500),
        ("brian", "review", 500),
        ("carol", "adjudication", 1200),
    ]
    # No page here sent heartbeats, so the server counted no active time: the 900 s the judgment
    # form claimed are not what the earnings say.
    assert all(e.active_seconds == 0 for e in Earning.objects.filter(kind="judgment"))

    # Timelines: who did what, in order.
    def story(comparison: Comparison) -> list[tuple[str, str]]:
        return [(e.actor_name, e.verb) for e in timeline_events(comparison)]

    assert story(first) == [
        ("alice", "comparison.claimed"),
        ("alice", "judgment.started"),
        ("alice", "judgment.draft_verdict"),
        ("alice", "judgment.submitted"),
        ("anna", "comparison.claimed"),
        ("anna", "judgment.started"),
        ("anna", "judgment.draft_verdict"),
        ("anna", "judgment.submitted"),
        ("anna", "comparison.start_review"),
        ("bob", "review.submitted"),
        ("bob", "review.submitted"),
        ("bob", "comparison.agreed"),
        ("bob", "comparison.decided"),
    ]
    assert story(second)[-4:] == [
        ("brian", "review.submitted"),
        ("brian", "review.submitted"),
        ("brian", "comparison.disputed"),
        ("carol", "comparison.adjudicated"),
    ]
    page = login(erin).get(f"/review/{second.public_id}/timeline/").content.decode()
    assert "comparison.adjudicated" in page and "A is correct on empty input" in page
    assert "<dt>Side A</dt><dd>solver-three 1</dd>" in page

    # Experts' earnings pages and the admins' payroll agree with the ledger.
    page = login(alice).get("/account/earnings/").content.decode()
    assert '<dd class="total">$40.00</dd>' in page
    period = Earning.objects.first().created_at.strftime("%Y-%m")
    csv = login(erin).get(f"/account/earnings/payroll.csv?period={period}").content.decode()
    rows = [line.split(",") for line in csv.strip().splitlines()]
    assert rows[0] == ["user", "pseudonym", "items", "active_hours", "total"]
    assert [(r[0], r[2], r[4]) for r in rows[1:]] == [
        ("alice", "2", "40.00"),
        ("anna", "1", "20.00"),
        ("bob", "2", "10.00"),
        ("brian", "2", "10.00"),
        ("carol", "1", "12.00"),
    ]
