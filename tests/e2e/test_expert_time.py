"""The active-time tracker on the comparison page, with the browser's clock under the test's
control: reading with the mouse or keys counts, a page left idle past a minute stops counting,
wall time keeps running, and both reach the server with the draft."""

from __future__ import annotations

import pytest

from marlin.review import queue
from marlin.review.models import Judgment
from tests.e2e.test_expert_workspace import live_server  # noqa: F401 - the one-request-at-a-time server
from tests.review.factories import make_comparison, make_project


@pytest.fixture
def claimed(transactional_db, make_user):
    alice = make_user("alice", "annotator")
    comparison = make_comparison(make_project(overlap=1))
    assert queue.next_comparison(alice) == comparison
    return alice, comparison


def _times(page) -> tuple[int, int]:
    active = int(page.locator("input[name=active_seconds]").input_value())
    wall = int(page.locator("input[name=wall_seconds]").input_value())
    return active, wall


@pytest.mark.slow
def test_idle_time_is_not_counted_but_wall_time_is(page, live_server, login, claimed):  # noqa: F811
    alice, comparison = claimed
    login(page, live_server, alice)
    page.clock.install()
    page.goto(f"{live_server.url}/compare/{comparison.public_id}/")
    page.mouse.move(200, 300)
    page.clock.run_for(30_000)
    active, wall = _times(page)
    assert 28 <= active <= 31 and 28 <= wall <= 31
    # Nobody touches the page for five minutes: active time stops a minute after the last input.
    page.clock.run_for(300_000)
    active, wall = _times(page)
    assert 58 <= active <= 61 and 328 <= wall <= 331
    # Back at work: typing counts again.
    page.get_by_label("Rationale").press_sequentially("back")
    page.clock.run_for(20_000)
    active, wall = _times(page)
    assert 78 <= active <= 81 and 348 <= wall <= 351

    # The next autosave carries the time to the server.
    def is_final_save(response) -> bool:
        return response.url.endswith("/draft/") and "back!" in (response.request.post_data or "")

    with page.expect_response(is_final_save) as saved:
        page.get_by_label("Rationale").press_sequentially("!")
        page.clock.run_for(2_000)
    assert saved.value.status == 200
    judgment = Judgment.objects.get(annotator=alice)
    assert 78 <= judgment.active_seconds <= 84 and judgment.wall_seconds >= 348
    assert judgment.rationale == "back!"
