"""Time measured by the server: heartbeats through the API (as the pages' activity.js sends
them), the intervals that count, the wall-time bound, refusals, and what reviews are paid."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import F
from django.test import Client
from django.utils import timezone

from marlin.review import activity, queue
from marlin.review.actions import do_judgment_heartbeat
from marlin.review.models import Claim, Judgment, Review, WorkKind, WorkSession
from tests.review.factories import (
    agree_all,
    make_comparison,
    reviewing,
    started_judgment,
    submitted_judgment,
)
from tests.review.test_forged_time import (
    FORGED,
    RATE,
    earning_of,
    hourly,
    judgment_form,
    token_headers,
)


def heartbeat(client: Client, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return client.post(
        "/api/heartbeats", body, content_type="application/json", headers=headers or {}
    )


@pytest.mark.django_db
def test_only_intervals_between_heartbeats_within_the_gap_count(alice, client_for, settings):
    settings.ACTIVITY_GAP_SECONDS = 1
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    client = client_for(alice)
    client.post("/compare/next/")
    beat = {"work": "judgment", "comparison": comparison.public_id}
    for pause in (0.3, 1.6, 0.3, 0):  # the 1.6 s pause is longer than the gap: not counted
        assert heartbeat(client, **beat).status_code == 204
        time.sleep(pause)
    session = WorkSession.objects.get(user=alice, kind=WorkKind.JUDGMENT)
    assert (session.heartbeats, session.intervals) == (4, 2)
    assert 600 <= session.active_ms < 1600
    assert session.active_ms < session.last_seen_ms - session.opened_ms


@pytest.mark.django_db
def test_active_time_is_the_sum_of_counted_intervals_and_never_more_than_wall_time(
    alice, client_for
):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    client = client_for(alice)
    client.post("/compare/next/")
    # Heartbeats the server stamped over the last five minutes (set back through the action's
    # clock): 30 + 30 s counted, a 140 s pause not, then 10 s; the 90 s up to the submission is
    # another pause.
    start = activity.now_ms() - 300_000
    for offset in (0, 30, 60, 200, 210):
        do_judgment_heartbeat(alice, comparison, at_ms=start + offset * 1000)
    client.post(f"/compare/{comparison.public_id}/submit/", judgment_form(0, **FORGED))

    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.active_seconds == 70 and 300 <= judgment.wall_seconds <= 302
    session = WorkSession.objects.get(user=alice)
    assert (session.heartbeats, session.intervals, session.work_id) == (6, 3, judgment.pk)
    earning = earning_of(alice, "judgment")
    assert earning.amount_cents == (70 * RATE + 1800) // 3600 == 117


@pytest.mark.django_db
def test_a_flood_of_heartbeats_buys_no_more_than_the_time_that_passed(alice, client_for):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    client = client_for(alice)
    client.post("/compare/next/")
    opened = time.monotonic()
    for _ in range(200):
        heartbeat(client, work="judgment", comparison=comparison.public_id)
    client.post(f"/compare/{comparison.public_id}/submit/", judgment_form(0, **FORGED))
    elapsed = time.monotonic() - opened
    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.active_seconds <= judgment.wall_seconds <= elapsed + 1
    assert WorkSession.objects.get(user=alice).heartbeats == 201


@pytest.mark.django_db
def test_a_review_is_paid_the_time_its_heartbeats_measured(alice, bob, client):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=1))
    judgment = submitted_judgment(comparison, alice, -1, active_seconds=600)
    reviewing(bob, judgment, 90)
    headers = token_headers(bob)
    assert heartbeat(client, headers, work="review", judgment_id=judgment.pk).status_code == 204
    response = client.post(
        "/api/reviews",
        {
            "judgment_id": judgment.pk,
            "verdict": "agree",
            "reason": "The ratings follow the diff.",
            "per_criterion": agree_all(comparison),
        },
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 201
    assert Review.objects.get(reviewer=bob).active_seconds == 90
    assert earning_of(bob, "review").amount_cents == 150  # 90 s at $60/h
    assert earning_of(alice, "judgment").amount_cents == 1000  # 600 s


@pytest.mark.django_db
def test_heartbeats_are_refused_to_people_who_may_not_do_the_work(
    alice, bob, carol, mallory, make_user, client
):
    anna = make_user("anna", "annotator")
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=1))
    on_it = {"work": "judgment", "comparison": comparison.public_id}

    refused = heartbeat(client, token_headers(mallory), **on_it)
    assert refused.status_code == 403
    not_assigned = heartbeat(client, token_headers(anna), **on_it)
    assert (
        not_assigned.status_code == 403 and "not assigned to you" in not_assigned.json()["detail"]
    )
    nowhere = heartbeat(client, token_headers(anna), work="judgment", comparison="no-such-id")
    assert nowhere.status_code == 404
    missing = heartbeat(client, token_headers(anna), work="judgment")
    assert missing.status_code == 422

    judgment = submitted_judgment(comparison, alice, -1, active_seconds=0)
    closed = heartbeat(client, token_headers(alice), **on_it)
    assert closed.status_code == 409 and "submitted" in closed.json()["detail"]
    own = heartbeat(client, token_headers(alice), work="review", judgment_id=judgment.pk)
    assert own.status_code == 403
    not_yet = heartbeat(client, token_headers(carol), **on_it | {"work": "adjudication"})
    assert not_yet.status_code == 409 and "disputed" in not_yet.json()["detail"]
    draft = started_judgment(make_comparison(hourly(overlap=2)), anna)
    hidden = heartbeat(client, token_headers(bob), work="review", judgment_id=draft.pk)
    assert hidden.status_code == 404
    # Nothing refused opened a session: the refusals counted no time.
    assert not WorkSession.objects.exists()


@pytest.mark.django_db
def test_heartbeats_keep_the_claim_alive_while_the_annotator_reads(alice, make_user, client_for):
    anna = make_user("anna", "annotator")
    comparison = make_comparison(hourly(overlap=1, claim_timeout_minutes=30))
    client = client_for(alice)
    client.post("/compare/next/")
    beat = {"work": "judgment", "comparison": comparison.public_id}
    assert heartbeat(client, **beat).status_code == 204  # opens the session
    # The last save was 31 minutes ago, but alice's page kept sending heartbeats (each one
    # writes only her work session).
    half_an_hour_ago = timezone.now() - timedelta(minutes=31)
    Claim.objects.filter(annotator=alice).update(last_seen_at=half_an_hour_ago)
    assert heartbeat(client, **beat).status_code == 204
    assert Claim.objects.get(annotator=alice).last_seen_at == half_an_hour_ago
    assert client_for(anna).post("/compare/next/")["Location"] == "/compare/"  # nothing free
    assert Claim.objects.get(annotator=alice).released_at is None
    # Thirty-one minutes with neither a save nor a heartbeat: the place goes to anna.
    WorkSession.objects.filter(user=alice).update(last_seen_ms=F("last_seen_ms") - 31 * 60_000)
    assert queue.release_expired_claims() == 1  # the worker's sweep
    moved = client_for(anna).post("/compare/next/")
    assert moved["Location"] == f"/compare/{comparison.public_id}/"
    assert Claim.objects.get(annotator=alice).released_at is not None


@pytest.mark.django_db
def test_a_pages_ticket_counts_heartbeats_only_on_work_its_holder_opened(alice, client_for):
    comparison = make_comparison(hourly(overlap=1, reviewers_per_judgment=0))
    client = client_for(alice)
    client.post("/compare/next/")
    page = client.get(f"/compare/{comparison.public_id}/").content.decode()
    ticket = re.search(r'data-ticket="([^"]+)"', page)[1]
    anonymous = Client()  # no login at all: only the ticket
    beat = {"work": "judgment", "comparison": comparison.public_id}
    with_ticket = {"X-Heartbeat-Ticket": ticket}

    # A ticket cannot open work: the first heartbeat needs the login and the work's checks.
    refused = heartbeat(anonymous, with_ticket, **beat)
    assert (
        refused.status_code == 404
        and "send the heartbeat with your login" in refused.json()["detail"]
    )
    assert not WorkSession.objects.exists()
    assert heartbeat(client, **beat).status_code == 204
    assert heartbeat(anonymous, with_ticket, **beat).status_code == 204
    # The ticket names the work; what the body says does not move it elsewhere.
    other = make_comparison(hourly(overlap=1))
    assert (
        heartbeat(anonymous, with_ticket, work="judgment", comparison=other.public_id).status_code
        == 204
    )
    assert list(WorkSession.objects.values_list("subject_id", "heartbeats")) == [(comparison.pk, 3)]
    # A ticket changed by a client is no ticket: without a login the request is refused.
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    assert heartbeat(anonymous, {"X-Heartbeat-Ticket": forged}, **beat).status_code == 401

    client.post(f"/compare/{comparison.public_id}/submit/", judgment_form(0))
    assert heartbeat(anonymous, with_ticket, **beat).status_code == 404  # the work is closed
    assert heartbeat(client, **beat).status_code == 409
