"""In chromium: two reviewers review blind, one disagrees, the adjudicator decides, the admin
reads the timeline with the agents revealed. Screenshots go to the test artifacts."""

from __future__ import annotations

import pytest

from marlin.review.models import ComparisonState, Decision
from tests.review.factories import make_comparison, make_project, submitted_judgment


@pytest.fixture
def disputed_soon(transactional_db, make_user):
    project = make_project(overlap=2, reviewers_per_judgment=1)
    comparison = make_comparison(project=project, agents=("Hidden-Agent-One", "Hidden-Agent-Two"))
    first = submitted_judgment(comparison, make_user("alice", "annotator"), -2)
    second = submitted_judgment(comparison, make_user("anna", "annotator"), 1)
    people = {
        name: make_user(name, role)
        for name, role in (
            ("bob", "reviewer"),
            ("brian", "reviewer"),
            ("carol", "adjudicator"),
            ("erin", "admin"),
        )
    }
    return comparison, first, second, people


def _review(
    page,
    live_server,
    login,
    user,
    verdict: str,
    reason: str,
    disagree_on: dict[str, str] | None = None,
) -> None:
    login(page, live_server, user)
    page.goto(f"{live_server.url}/review/queue/")
    page.locator("main").get_by_role("link", name="Review", exact=True).first.click()
    page.wait_for_selector("text=Your review")
    for key in ("correctness", "security", "reliability", "maintainability"):
        answer = "disagree" if disagree_on and key in disagree_on else "agree"
        page.check(f'input[name="agree-{key}"][value="{answer}"]')
        if answer == "disagree":
            page.fill(f'input[name="reason-{key}"]', disagree_on[key])
    page.check(f'input[name="verdict"][value="{verdict}"]')
    page.get_by_label("Reason (required").fill(reason)
    page.get_by_role("button", name="Submit review").click()
    page.wait_for_selector("text=Review recorded.")
    page.context.clear_cookies()


def test_reviewers_and_an_adjudicator_decide_a_disputed_comparison_in_the_browser(
    page, live_server, login, disputed_soon, artifacts_dir
):
    comparison, first, second, people = disputed_soon
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    _review(page, live_server, login, people["bob"], "agree", "Matches what I see in both diffs.")
    login(page, live_server, people["brian"])
    page.goto(f"{live_server.url}/review/queue/")
    page.locator("main").get_by_role("link", name="Review", exact=True).first.click()
    page.wait_for_selector("text=Your review")
    assert "Hidden-Agent" not in page.content()
    page.screenshot(path=str(artifacts_dir / "pipeline-review-form.png"), full_page=True)
    page.context.clear_cookies()
    _review(
        page,
        live_server,
        login,
        people["brian"],
        "disagree",
        "B fails on the empty ledger.",
        {"correctness": "B crashes on []."},
    )
    comparison.refresh_from_db()
    assert comparison.state == ComparisonState.DISPUTED

    login(page, live_server, people["carol"])
    page.goto(f"{live_server.url}/review/adjudicate/")
    page.locator("main").get_by_role("link", name="Adjudicate", exact=True).first.click()
    page.wait_for_selector("text=Final decision")
    assert "B crashes on []." in page.content()
    # The annotator's A3 … B3 control, keyboard included: 2 = A better, 0 = not applicable.
    page.locator("form.rating-form fieldset.crit[data-key=correctness] legend").click()
    page.keyboard.press("2")
    page.keyboard.press("0")
    for label, word in (
        ("Reliability", "A slightly better"),
        ("Maintainability", "Tie"),
        ("Overall", "A better"),
    ):
        page.get_by_label(f"{label}: {word}", exact=True).check()
    assert page.get_by_label("Correctness: A better", exact=True).is_checked()
    assert page.get_by_label("Security: not applicable", exact=True).is_checked()
    page.get_by_label("Rationale").fill("A handles the empty ledger; B crashes on an empty list.")
    page.screenshot(path=str(artifacts_dir / "pipeline-adjudication.png"), full_page=True)
    page.get_by_role("button", name="Record the decision").click()
    page.wait_for_selector("text=Decision recorded.")
    decision = Decision.objects.get(comparison=comparison)
    assert (decision.source, decision.overall, decision.decided_by.username) == (
        "adjudication",
        -2,
        "carol",
    )
    page.context.clear_cookies()

    login(page, live_server, people["erin"])
    page.goto(f"{live_server.url}/review/{comparison.public_id}/timeline/")
    text = page.locator("main").inner_text()
    assert "comparison.adjudicated" in text and "Hidden-Agent-One" in text
    page.screenshot(path=str(artifacts_dir / "pipeline-timeline.png"), full_page=True)
    assert errors == []
