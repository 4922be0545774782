"""In chromium, on the demo data, after the worker's sweep ordered the queue and computed the
checks' weak labels: the author reads on the project page which comparisons the annotators get
next and why; bob, reviewing, sees the weak label; alice, judging, never does."""

from __future__ import annotations

import pytest

from marlin.accounts.models import User
from marlin.agents.models import Candidate
from marlin.analytics import queue_order
from marlin.checks.models import CheckResult, CheckStatus
from marlin.demo.load import DEMO_PASSWORD, load_demo
from marlin.review.models import Comparison, ComparisonState
from tests.review.factories import submitted_judgment


def _hidden_tests(comparison: Comparison, a_passes: bool) -> None:
    for run, passes in ((comparison.run_a, a_passes), (comparison.run_b, not a_passes)):
        candidate = Candidate.objects.filter(turn__run=run).order_by("-turn__number").first()
        if candidate is not None:
            CheckResult.objects.update_or_create(
                candidate=candidate,
                check_index=90,
                defaults={
                    "name": "hidden tests",
                    "kind": "hidden-tests",
                    "status": CheckStatus.PASSED if passes else CheckStatus.FAILED,
                },
            )


@pytest.fixture
def demo(transactional_db):
    project = load_demo()
    comparisons = list(Comparison.objects.filter(project=project).order_by("pk"))
    # No worker runs the demo's checks here: they finished (the unit tests, lint and scans pass
    # on both sides), and the hidden tests below split the sides.
    CheckResult.objects.filter(
        candidate__turn__run__task__project=project,
        status__in=(CheckStatus.QUEUED, CheckStatus.RUNNING),
    ).update(status=CheckStatus.PASSED)
    for n, comparison in enumerate(comparisons):
        _hidden_tests(comparison, a_passes=n % 2 == 0)
    waiting = [c for c in comparisons if c.state == ComparisonState.AWAITING_JUDGMENTS]
    assert len(waiting) >= 2, "the demo has comparisons waiting for judgments"
    # Two of the demo's annotators judge the first waiting one: it goes to review.
    in_review = waiting[0]
    for name in ("priya", "tomas"):
        submitted_judgment(in_review, User.objects.get(username=name), overall=-2)
    in_review.refresh_from_db()
    assert in_review.state == ComparisonState.IN_REVIEW
    queue_order.refresh_project(project, seed=0)
    return project, in_review


def test_the_queue_order_and_the_weak_label_reach_the_people_allowed_to_see_them(
    page, live_server, login, demo, artifacts_dir
):
    project, in_review = demo
    login(page, live_server, User.objects.get(username="dave"), DEMO_PASSWORD)
    page.goto(f"{live_server.url}/tasks/projects/{project.pk}/")
    card = page.locator("#next-in-queue")
    card.wait_for()
    assert card.locator("li").count() >= 1
    assert " vs " in card.locator("li").first.inner_text()
    page.screenshot(path=str(artifacts_dir / "project-next-in-queue.png"), full_page=True)
    card.get_by_role("link", name="The whole order and how it is computed").click()
    page.wait_for_selector("#queue-order")
    assert page.locator("#queue-order tbody tr").count() >= 1

    page.context.clear_cookies()
    login(page, live_server, User.objects.get(username="bob"), DEMO_PASSWORD)
    judgment = in_review.judgments.order_by("pk").first()
    page.goto(f"{live_server.url}/review/{in_review.public_id}/judgments/{judgment.pk}/")
    label = page.locator("#weak-label")
    label.wait_for()
    text = label.inner_text()
    assert "A better" in text and "B better" in text and "hidden tests" in text
    page.screenshot(path=str(artifacts_dir / "review-weak-label.png"), full_page=True)

    page.context.clear_cookies()
    login(page, live_server, User.objects.get(username="alice"), DEMO_PASSWORD)
    page.goto(f"{live_server.url}/compare/")
    page.get_by_role("button", name="Take the next comparison").click()
    page.wait_for_url(f"{live_server.url}/compare/*/")
    assert page.url.rstrip("/") != f"{live_server.url}/compare"  # a comparison, not the queue
    assert page.locator("#weak-label").count() == 0
    assert "weak label" not in page.content().lower()
