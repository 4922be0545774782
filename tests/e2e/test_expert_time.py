"""The comparison page's activity tracker, with the browser's clock under the test's control:
the page sends a heartbeat when it opens and every 15 s while its user reads or types, stops a
minute after the last input, and starts again at once when they come back. The heartbeats carry
no time; the server stamps them. So the browser's clock, which here claims almost six minutes
passed, cannot make the server count more than the few real seconds the test took."""

from __future__ import annotations

import json
import time

import pytest

from marlin.review import queue
from marlin.review.models import Judgment, WorkSession
from tests.e2e.test_expert_workspace import live_server  # noqa: F401 - the one-request-at-a-time server
from tests.review.factories import make_comparison, make_project


@pytest.fixture
def claimed(transactional_db, make_user):
    alice = make_user("alice", "annotator")
    comparison = make_comparison(make_project(overlap=1))
    assert queue.next_comparison(alice) == comparison
    return alice, comparison


def _wait_for(condition, seconds: float = 10.0):
    """Poll the database (real time) until the page's requests have been answered."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


@pytest.mark.slow
def test_heartbeats_follow_activity_and_the_server_counts_only_real_time(
    page,
    live_server,  # noqa: F811
    login,
    claimed,
):
    alice, comparison = claimed
    login(page, live_server, alice)
    beats = []
    page.on("request", lambda r: beats.append(r) if r.url.endswith("/api/heartbeats") else None)
    page.clock.install()
    opened = time.monotonic()
    # The first heartbeat's answer carries the ticket the next ones send. The page's clock is
    # fake, so without waiting for that answer the next beat could go out before it arrived
    # on a loaded machine, which no real 15 s interval allows.
    with page.expect_response(lambda r: r.url.endswith("/api/heartbeats")):
        page.goto(f"{live_server.url}/compare/{comparison.public_id}/")
        page.mouse.move(200, 300)
        page.clock.run_for(1_000)
    page.clock.run_for(29_000)
    # A heartbeat as the page opens (once it has the focus), then one every 15 s of activity.
    assert 2 <= len(beats) <= 4, len(beats)
    body = json.loads(beats[0].post_data)
    assert body == {"work": "judgment", "comparison": comparison.public_id}  # no time in it
    # The first goes with the login (it opens the work); the next carry the page's ticket.
    assert "x-heartbeat-ticket" not in beats[0].headers
    assert beats[1].headers["x-heartbeat-ticket"]

    # Nobody touches the page for five minutes: heartbeats stop a minute after the last input.
    before_idle = len(beats)
    page.clock.run_for(300_000)
    after_idle = len(beats)
    assert after_idle - before_idle <= 2, after_idle - before_idle

    # Back at work: typing sends a heartbeat at once, then every 15 s again.
    page.get_by_label("Rationale").press_sequentially("back")
    page.clock.run_for(20_000)
    assert 2 <= len(beats) - after_idle <= 3, len(beats) - after_idle

    # The server received every heartbeat (and the autosave of what was typed) and stamped
    # them with its own clock: the six minutes the browser's clock ran count as the real time.
    session = _wait_for(
        lambda: WorkSession.objects.filter(user=alice, heartbeats=len(beats)).first()
    )
    assert session is not None, list(WorkSession.objects.values())
    real_ms = (time.monotonic() - opened) * 1000
    assert session.active_ms <= session.last_seen_ms - session.opened_ms <= real_ms
    assert session.active_ms < 60_000
    judgment = _wait_for(lambda: Judgment.objects.filter(annotator=alice, rationale="back").first())
    assert judgment is not None and judgment.active_seconds == 0  # counted at submission
