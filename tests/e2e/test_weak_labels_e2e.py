"""In chromium, on the demo data: the project page says how pairs are chosen and links to why;
its author reads the weak-label report (checks as weak labels scored against decisions)."""

from __future__ import annotations

import pytest

from marlin.accounts.models import User
from marlin.agents.models import Candidate
from marlin.checks.models import CheckResult, CheckStatus
from marlin.demo.load import DEMO_PASSWORD, load_demo
from marlin.review.models import Comparison, Judgment
from tests.analytics_views.factories import decide, judge


@pytest.fixture
def demo(transactional_db):
    project = load_demo()
    alice, anna = User.objects.get(username="alice"), User.objects.get(username="anna")
    comparisons = Comparison.objects.filter(project=project).order_by("pk")
    for n, comparison in enumerate(comparisons):
        # Hidden tests: side A resolves them on even comparisons, side B on odd ones.
        for side, run in (("a", comparison.run_a), ("b", comparison.run_b)):
            candidate = Candidate.objects.filter(turn__run=run).order_by("-turn__number").first()
            if candidate is None:
                continue
            CheckResult.objects.update_or_create(
                candidate=candidate,
                check_index=90,
                defaults={
                    "name": "hidden tests",
                    "kind": "hidden-tests",
                    "status": CheckStatus.PASSED
                    if (side == "a") == (n % 2 == 0)
                    else CheckStatus.FAILED,
                },
            )
        if hasattr(comparison, "decision"):
            continue
        verdict = -2 if n % 2 == 0 else 2
        for who in (alice, anna):
            if not Judgment.objects.filter(comparison=comparison, annotator=who).exists():
                judge(comparison, who, verdict)
        decide(comparison, verdict)
    return project


def test_the_project_page_explains_pairing_and_the_weak_label_report_renders(
    page, live_server, login, demo, artifacts_dir
):
    login(page, live_server, User.objects.get(username="dave"), DEMO_PASSWORD)
    page.goto(f"{live_server.url}/tasks/projects/{demo.pk}/")
    page.get_by_role("link", name="Why the next pairs are chosen").click()
    page.wait_for_selector("h2:has-text('Why the next pairs are chosen')")
    assert page.get_by_text("Active: the pair whose next decision").count() == 1
    page.screenshot(path=str(artifacts_dir / "pair-selection.png"), full_page=True)

    page.get_by_role("link", name="checks as weak labels").click()
    page.wait_for_selector("h2:has-text('How well the weak label predicts the decision')")
    report = page.locator("#weak-labels")
    assert "decided" in report.inner_text()
    # The cross-validated figures render (the demo has decisions and, here, hidden tests).
    assert report.get_by_text("Coverage (a check voted)").count() == 1
    assert page.locator("#calibration tbody tr").count() >= 1
    functions = page.locator("#labelling-functions tbody tr")
    assert functions.count() == 3
    assert "hidden tests" in functions.nth(0).inner_text()
    page.screenshot(path=str(artifacts_dir / "weak-labels.png"), full_page=True)
