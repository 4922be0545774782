"""An annotator's whole session in Debian's chromium: take the next comparison, read both
diffs, switch layouts, expand context, comment on a line, rate with the keyboard, reload and
find the draft intact, meet a stale draft from another tab, send a follow-up that the fake model
server answers (the turn jobs run through the immediate backend), judge the final turn, submit.
Screenshots go to the test artifacts at 1280 px and on a 2560 px monitor."""

from __future__ import annotations

import re

import pytest
from django.core.servers.basehttp import WSGIServer
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler
from playwright.sync_api import expect

from marlin.review.models import Judgment, JudgmentStatus
from tests.fakes import model_server_factory  # noqa: F401
from tests.review.workspace_factories import KEY_ENV, model_writes, paired_comparison

# Every visible form control and button must have an accessible name.
UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
  'input:not([type=hidden]), select, textarea, button')).filter((el) => {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
    return !named && el.getClientRects().length > 0;
  }).map((el) => el.outerHTML.slice(0, 120))"""
RATIONALE = (
    "Side A handles the accounting negatives and keeps rejecting unbalanced input; B does not."
)


class SerialServerThread(LiveServerThread):
    """One request at a time. The test database is SQLite in memory, shared with the server
    thread through one connection, which concurrent requests (an autosave racing a lazy file
    load) would use at once; a served SQLite database uses WAL and busy waits instead."""

    def _create_server(self, connections_override=None):
        return WSGIServer(
            (self.host, self.port), QuietWSGIRequestHandler, allow_reuse_address=False
        )


@pytest.fixture
def live_server(transactional_db):
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost", start=False)
    server.thread = SerialServerThread(
        "localhost",
        static_handler=server.thread.static_handler,
        connections_override=server.thread.connections_override,
    )
    server.thread.daemon = True
    server.start()  # pytest-django's autouse helper adds the host to ALLOWED_HOSTS
    yield server
    server.stop()


@pytest.fixture
def workspace(transactional_db, make_user, settings, model_server_factory, monkeypatch):  # noqa: F811
    monkeypatch.setenv(KEY_ENV, "sk-test-e2e-0123456789abcdef")
    server = model_server_factory([])
    erin, dave = make_user("erin", "admin"), make_user("dave", "author", "reviewer")
    alice = make_user("alice", "annotator")
    # No checks: with the immediate backend they would run inside the follow-up request too.
    comparison = paired_comparison(erin, dave, server, checks=[], overlap=1, min_rationale_chars=60)
    # Follow-up turns run inside the request that starts them, answered by the fake server.
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    return alice, comparison, server


def _rating(page, criterion: str, label: str):
    return page.get_by_label(f"{criterion}: {label}", exact=True)


@pytest.mark.slow
def test_an_annotator_judges_a_comparison_from_the_queue_to_submission(
    page, live_server, login, workspace, artifacts_dir
):
    alice, comparison, server = workspace
    login(page, live_server, alice)
    page.get_by_role("link", name="Next comparison").click()
    page.get_by_role("button", name="Take the next comparison").click()
    expect(page).to_have_url(re.compile(rf"/compare/{comparison.public_id}/$"))
    # The page opens on A | B: both runs changed the README, so it is marked as changed by both.
    expect(page.locator("#side-ab .diff-file").first).to_be_visible()
    expect(page.locator('#side-ab .ab-file[data-path="README.md"]')).to_have_attribute(
        "data-touched", "both"
    )
    # Each side inserts a blank line and its sentence after the title: side by side, row by row.
    expect(page.locator("#side-ab tr.ab:has(td.lc.add + td.ln.add)")).to_have_count(2)
    expect(page.locator("#save-status")).to_have_text("Not saved yet.")
    assert not Judgment.objects.filter(annotator=alice).exists()  # opening the page wrote nothing
    page.screenshot(path=str(artifacts_dir / "expert-compare-1280.png"), full_page=False)
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_hidden()

    # Read each side alone: side B by its tab, then A by key.
    page.get_by_role("tab", name=re.compile("Side B")).click()
    expect(page.locator("#side-b .diff-file").first).to_be_visible()
    expect(page.locator("#side-a")).to_be_hidden()
    expect(page.locator("#side-ab")).to_be_hidden()
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("a")
    expect(page.locator("#side-a .diff-file").first).to_be_visible()
    page.keyboard.press("j")
    expect(page.locator("#side-a .diff-file.focused")).to_have_count(1)

    # Switch layouts: unified, remembered across a reload.
    page.get_by_role("button", name="Unified").click()
    expect(page.locator("#side-a table.diff-unified").first).to_be_visible()
    assert page.evaluate("localStorage.getItem('marlin-diff-mode')") == "unified"

    # Expand hidden context below the change, from the base commit in the mirror.
    page.locator("#side-a .diff-expand").first.click()
    expect(page.locator("#side-a tr.expanded").first).to_be_visible()

    # Comment on a line of side A.
    page.locator("#side-a td.ln[data-side=new][data-line]").first.click()
    page.locator("tr.comment-row textarea").fill("This line needs a test.")
    page.get_by_role("button", name="Add comment").click()
    expect(page.locator("#comment-list li")).to_have_count(1)
    # The comment shows on the same line in the A | B view (s), and side A comes back (a).
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("s")
    expect(page.locator("#side-ab td.ln.commented")).to_have_count(1)
    expect(page.locator("#side-ab tr.comment-row")).to_contain_text("This line needs a test.")
    page.keyboard.press("a")

    # Rate with keys (1 = A much better ... 7 = B much better, 0 = n/a) and with the mouse.
    page.locator("fieldset.crit[data-key=correctness] legend").click()
    page.keyboard.press("2")  # correctness: A better; focus moves on to security
    page.keyboard.press("0")  # security: not applicable
    _rating(page, "Reliability", "A slightly better").check()
    page.get_by_label("Rationale").fill(RATIONALE[:30])
    # Saved means the browser holds no unsaved copy any more (not just an earlier save's status).
    page.wait_for_function(f"!localStorage.getItem('marlin-draft-{comparison.public_id}')")
    expect(page.locator("#save-status")).to_contain_text("Draft saved")
    assert (
        Judgment.objects.get(annotator=alice).status == JudgmentStatus.DRAFT
    )  # the save started it

    # Reload mid-way: the draft, the comment and the layout are all still there.
    page.reload()
    expect(_rating(page, "Correctness", "A better")).to_be_checked()
    expect(_rating(page, "Security", "not applicable")).to_be_checked()
    expect(_rating(page, "Reliability", "A slightly better")).to_be_checked()
    expect(page.get_by_label("Rationale")).to_have_value(RATIONALE[:30])
    expect(page.locator("#comment-list li")).to_contain_text("This line needs a test.")
    expect(page.locator("#side-a table.diff-unified").first).to_be_visible()
    expect(page.locator("#rationale-count")).to_contain_text(f"{len(RATIONALE[:30].strip())} / 60")

    # A second tab saves first; this tab is told, keeps its text locally, and loads the newer draft.
    other = page.context.new_page()
    other.goto(page.url)
    other.get_by_label("Rationale").fill("Written in the other tab.")
    expect(other.locator("#save-status")).to_contain_text("Draft saved")
    other.close()
    page.get_by_label("Rationale").fill(RATIONALE[:40])
    expect(page.locator("#stale-banner")).to_be_visible()
    expect(page.locator("#stale-text")).to_contain_text("changed in another tab")
    page.get_by_role("button", name="Load the newer draft").click()
    expect(page.get_by_label("Rationale")).to_have_value("Written in the other tab.")

    # Follow-up: both agents continue; the fake model server answers both.
    server.add(*model_writes("CHANGES.md", "Side one notes.\n", "changes"))
    server.add(*model_writes("CHANGES.md", "Side two notes.\n", "changes"))
    page.get_by_label("Ask both sides to continue").fill("Please also add a CHANGES.md entry.")
    page.get_by_role("button", name="Send follow-up to A and B").click(timeout=120_000)
    expect(page.locator("#followup-status")).to_contain_text("Turn 2 is ready")
    page.get_by_role("link", name="Show turn 2").click()
    expect(page.locator(".turns a[aria-current=page]")).to_have_text("Turn 2")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("t")  # cycles to turn 1 and back
    expect(page.locator(".turns a[aria-current=page]")).to_have_text("Turn 1")
    page.keyboard.press("t")
    expect(page.locator(".turns a[aria-current=page]")).to_have_text("Turn 2")
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    page.get_by_role("link", name="Since turn 1").click()
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("s")
    expect(page.locator("#side-ab .diff-path").first).to_have_text("CHANGES.md")
    expect(page.locator("#side-ab .side-diff")).not_to_contain_text("run was here")
    page.set_viewport_size({"width": 2560, "height": 1440})
    expect(page.locator("#side-ab table.diff-ab").first).to_be_visible()  # A next to B
    page.screenshot(path=str(artifacts_dir / "expert-compare-2560.png"), full_page=False)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Finish: every criterion, the overall preference, a remark per turn; a short rationale first.
    _rating(page, "Maintainability", "Tie").check()
    _rating(page, "Correctness", "A better").check()
    _rating(page, "Security", "not applicable").check()
    _rating(page, "Reliability", "A slightly better").check()
    page.get_by_label("Overall: A better", exact=True).check()
    # Per-turn verdicts: after turn 1 B was slightly ahead; the follow-up turned it to A.
    _rating(page, "Turn 1", "B slightly better").check()
    page.get_by_label("Confidence").select_option("4")
    page.get_by_label("Remark on turn 2", exact=True).fill(
        "Both answered the follow-up; A's entry is clearer."
    )
    page.get_by_label("Rationale").fill("Too short.")
    page.get_by_role("button", name="Submit judgment").click()
    # Back on the page (POST/redirect/GET): listed at the top and marked at the field.
    expect(page).to_have_url(re.compile(rf"/compare/{comparison.public_id}/$"))
    expect(page.locator(".error-summary li")).to_have_text(
        re.compile("Rationale: The rationale is too short: 10 of at least 60 characters")
    )
    expect(page.locator("#rationale-error")).to_contain_text("10 of at least 60 characters")
    expect(_rating(page, "Correctness", "A better")).to_be_checked()  # nothing lost
    page.get_by_label("Rationale").fill(RATIONALE)
    page.screenshot(path=str(artifacts_dir / "expert-judgment-form.png"), full_page=True)
    page.get_by_role("button", name="Submit judgment").click()
    expect(page.get_by_text("Judgment submitted")).to_be_visible()
    # Back on the comparison: what was submitted, read-only, turn by turn.
    page.goto(f"{live_server.url}/compare/{comparison.public_id}/")
    expect(page.locator(".judgment-done")).to_contain_text("It is read-only now")
    expect(page.locator(".judgment-summary")).to_contain_text(
        "turn 1: B slightly better · turn 2: A better"
    )
    expect(page.get_by_role("button", name="Submit judgment")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "expert-judgment-submitted.png"), full_page=False)

    judgment = Judgment.objects.get(annotator=alice)
    assert judgment.status == JudgmentStatus.SUBMITTED and judgment.turn_judged == 2
    assert judgment.ratings == {
        "correctness": -2,
        "security": None,
        "reliability": -1,
        "maintainability": 0,
    }
    assert judgment.overall == -2 and judgment.confidence == 4 and judgment.rationale == RATIONALE
    assert (
        judgment.comments[0]["text"] == "This line needs a test."
        and judgment.comments[0]["side"] == "A"
    )
    assert judgment.turn_notes == {"2": "Both answered the follow-up; A's entry is clearer."}
    assert judgment.turn_verdicts == {"1": 1, "2": -2}
    assert judgment.wall_seconds > 0 and 0 < judgment.active_seconds <= judgment.wall_seconds
