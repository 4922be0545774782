"""Layouts that hold: every page of the tour, as each role, on a 1440x900 monitor, a 1024x768
tablet and a 390x844 phone, in Debian's chromium. The document never scrolls sideways (wide
tables and code scroll inside their card), the split diff and the A | B view keep both code
columns readable (at least 35% of the table each), no template syntax shows as text, the nav
folds into a menu button on the phone, and every page is saved as a screenshot in the test
artifacts (``tour-<role>-<page>-<width>.png``) for a person to look at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marlin.agents.models import Agent
from marlin.review import pipeline
from marlin.review.models import ComparisonState
from tests.e2e.test_expert_workspace import SerialServerThread
from tests.review.factories import agree_all, started_judgment, submitted_judgment
from tests.review.workspace_factories import make_comparison, make_project

SIZES = {"desktop": (1440, 900), "tablet": (1024, 768), "phone": (390, 844)}

# Sideways overflow of the document: the page is wider than the window.
DOCUMENT_OVERFLOW = """() => {
  const root = document.documentElement;
  const wide = Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1)
    .slice(0, 3).map((el) => el.tagName + ' ' + el.getAttribute('class'));
  return {scroll: root.scrollWidth, client: root.clientWidth, wide};
}"""

# Each visible two-column diff table (old | new of one side, or A | B): the share of its width
# each code column gets.
SPLIT_SHARES = """() => Array.from(document.querySelectorAll('table.diff-split, table.diff-ab'))
  .filter((t) => t.getClientRects().length && t.offsetParent !== null)
  .map((t) => {
    const row = t.querySelector('tr.split, tr.ab');
    if (!row) return null;
    const cells = row.querySelectorAll('td.lc');
    const width = t.getBoundingClientRect().width;
    return Array.from(cells).map((c) => c.getBoundingClientRect().width / width);
  }).filter(Boolean)"""


@pytest.fixture
def live_server(transactional_db):
    # One request at a time: the in-memory test database has one connection (see
    # test_expert_workspace.SerialServerThread).
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost", start=False)
    server.thread = SerialServerThread(
        "localhost",
        static_handler=server.thread.static_handler,
        connections_override=server.thread.connections_override,
    )
    server.thread.daemon = True
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tour(transactional_db, make_user):
    """A project in every state the tour shows: a draft in progress, a judgment in review, a
    dispute and a decided comparison, all on the demo repository's real patches."""
    people = {
        name: make_user(name, *roles)
        for name, roles in (
            ("erin", ("admin",)),
            ("dave", ("author",)),
            ("alice", ("annotator",)),
            ("anna", ("annotator",)),
            ("bob", ("reviewer",)),
            ("brian", ("reviewer",)),
            ("carol", ("adjudicator",)),
        )
    }
    erin, dave = people["erin"], people["dave"]
    project = make_project(erin, overlap=2, reviewers_per_judgment=1, min_rationale_chars=20)

    def comparison():
        return make_comparison(erin, dave, project=project)

    drafting = comparison()
    started_judgment(drafting, people["alice"])

    in_review = comparison()
    reviewed = submitted_judgment(in_review, people["alice"], -2)
    submitted_judgment(in_review, people["anna"], -1)

    disputed = comparison()
    first = submitted_judgment(disputed, people["alice"], -2)
    second = submitted_judgment(disputed, people["anna"], 2)
    pipeline.do_review(
        people["bob"],
        first,
        verdict="agree",
        reason="Matches both diffs.",
        per_criterion=agree_all(disputed),
    )
    objections = agree_all(disputed)
    objections["correctness"] = {"agree": False, "reason": "B fails on the empty ledger."}
    pipeline.do_review(
        people["brian"],
        second,
        verdict="disagree",
        reason="B breaks callers.",
        per_criterion=objections,
    )
    disputed.refresh_from_db()
    assert disputed.state == ComparisonState.DISPUTED

    decided = comparison()
    a = submitted_judgment(decided, people["alice"], -1)
    b = submitted_judgment(decided, people["anna"], -1)
    for reviewer, judgment in ((people["bob"], a), (people["brian"], b)):
        pipeline.do_review(
            reviewer,
            judgment,
            verdict="agree",
            reason="Right call.",
            per_criterion=agree_all(decided),
        )
    decided.refresh_from_db()
    assert decided.state == ComparisonState.DECIDED

    task = drafting.task
    agent = Agent.objects.order_by("pk").first()
    pages = {
        "annotator": [
            ("home", "/"),
            ("queue", "/compare/"),
            ("compare-split", f"/compare/{drafting.public_id}/?mode=split"),
            ("compare-unified", f"/compare/{drafting.public_id}/?mode=unified"),
            ("earnings", "/account/earnings/"),
            ("profile", "/account/profile/"),
            ("leaderboards", "/leaderboard/"),
        ],
        "reviewer": [
            ("home", "/"),
            ("review-queue", "/review/queue/"),
            ("review", f"/review/{in_review.public_id}/judgments/{reviewed.pk}/"),
            ("tasks", "/tasks/"),
            ("leaderboard", f"/leaderboard/{project.pk}/"),
        ],
        "adjudicator": [
            ("home", "/"),
            ("disputes", "/review/adjudicate/"),
            ("adjudicate", f"/review/{disputed.public_id}/adjudicate/"),
            ("decision", f"/review/{decided.public_id}/decision/"),
        ],
        "author": [
            ("repositories", "/repositories/"),
            ("repository", f"/repositories/{task.repository_id}/"),
            ("tasks", "/tasks/"),
            ("task", f"/tasks/{task.pk}/"),
            ("new-task", "/tasks/new/"),
        ],
        "admin": [
            ("home", "/"),
            ("projects", "/tasks/projects/"),
            ("project", f"/tasks/projects/{project.pk}/"),
            ("rubric", f"/tasks/rubrics/{project.rubric_id}/"),
            ("rubric-history", f"/tasks/rubrics/{project.rubric_id}/history/"),
            ("rubric-edit", f"/tasks/rubrics/{project.rubric_id}/edit/"),
            ("agents", "/agents/"),
            ("agent", f"/agents/{agent.pk}/"),
            ("run", f"/agents/runs/{drafting.run_a_id}/"),
            ("pool", f"/agents/projects/{project.pk}/pool/"),
            ("compare", f"/compare/{decided.public_id}/?mode=split"),
            ("timeline", f"/review/{decided.public_id}/timeline/"),
            ("leaderboard", f"/leaderboard/{project.pk}/"),
            ("exports", "/exports/"),
            ("pay", "/account/earnings/dashboard/"),
            ("audit", "/audit/"),
        ],
    }
    users = {
        "annotator": people["alice"],
        "reviewer": people["bob"],
        "adjudicator": people["carol"],
        "author": dave,
        "admin": erin,
    }
    return pages, users


def _check(page, role: str, url: str, width: int, problems: list[str]) -> None:
    text = page.locator("body").inner_text()
    if "{#" in text or "{%" in text:  # a template comment or tag printed as text
        problems.append(f"{role} {url}: template syntax shown on the page")
    overflow = page.evaluate(DOCUMENT_OVERFLOW)
    if overflow["scroll"] > overflow["client"]:
        problems.append(f"{role} {url} at {width}px: document {overflow}")
    for shares in page.evaluate(SPLIT_SHARES):
        if min(shares) < 0.35:
            problems.append(f"{role} {url} at {width}px: code columns {shares}")


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_page_of_the_tour_fits_the_screen_for_every_role(
    browser, live_server, login, tour, artifacts_dir, size
):
    pages, users = tour
    width, height = SIZES[size]
    problems: list[str] = []
    for role, urls in pages.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        login(page, live_server, users[role])
        for name, url in urls:
            response = page.goto(f"{live_server.url}{url}")
            assert response is not None and response.status == 200, (role, url, response)
            page.wait_for_load_state("load")
            shots = [name]
            if "/compare/" in url and "mode=split" in url:
                # The comparison opens on A | B; side A alone is the old | new split view.
                expect(page.locator("#side-ab table.diff-ab").first).to_be_visible()
                _check(page, role, url, width, problems)
                page.screenshot(path=str(artifacts_dir / f"tour-{role}-{name}-ab-{width}.png"))
                page.get_by_role("tab", name=re.compile("^Side A")).click()
                expect(page.locator("#side-a table.diff-split").first).to_be_visible()
                shots = [f"{name}-side-a"]
            page.screenshot(path=str(artifacts_dir / f"tour-{role}-{shots[0]}-{width}.png"))
            _check(page, role, url, width, problems)
        if size == "phone":
            menu = page.get_by_role("button", name="Menu")
            expect(menu).to_be_visible()
            expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
            menu.click()
            expect(page.get_by_role("navigation", name="Main")).to_be_visible()
            page.screenshot(path=str(artifacts_dir / f"tour-{role}-menu-{width}.png"))
            overflow = page.evaluate(DOCUMENT_OVERFLOW)
            if overflow["scroll"] > overflow["client"]:
                problems.append(f"{role} menu at {width}px: document {overflow}")
        else:
            expect(page.get_by_role("button", name="Menu")).to_be_hidden()
            expect(page.get_by_role("navigation", name="Main")).to_be_visible()
        assert errors == [], (role, errors)
        context.close()
    assert problems == []


@pytest.mark.slow
def test_long_lines_scroll_inside_their_cell_and_wrap_only_when_asked(
    page, live_server, login, tour
):
    pages, users = tour
    url = dict(pages["annotator"])["compare-split"]
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, users["annotator"])
    page.goto(f"{live_server.url}{url}")
    page.get_by_role("tab", name=re.compile("^Side A")).click()
    cell = page.locator("#side-a table.diff-split td.lc").first
    expect(cell).to_be_visible()
    assert cell.evaluate("(c) => getComputedStyle(c).whiteSpace") == "pre"
    assert cell.evaluate("(c) => getComputedStyle(c).overflowX") == "auto"
    page.get_by_role("button", name="Wrap lines").click()
    assert cell.evaluate("(c) => getComputedStyle(c).whiteSpace") == "pre-wrap"
    page.reload()  # the choice is remembered
    assert (
        page.locator("#side-a table.diff-split td.lc").first.evaluate(
            "(c) => getComputedStyle(c).whiteSpace"
        )
        == "pre-wrap"
    )
