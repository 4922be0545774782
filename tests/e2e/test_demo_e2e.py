"""The demo as a newcomer meets it: `marlin demo` started as a real process (its load, the
scripted model server, gunicorn and the job worker), each demo role's first page in Debian's
chromium with data on it, then a new task written, approved and paired in the browser, run by
the two live agents through the model server and the worker until the annotator's queue holds
its comparison. Screenshots of every first page go to the test artifacts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from marlin.demo.load import DEMO_PASSWORD
from tests.checks.scenario import link_shared_tools
from tests.management.test_serve import Site, free_port


@pytest.fixture
def demo_site(tmp_path: Path, _data_dir: Path) -> Iterator[Site]:
    link_shared_tools(_data_dir)
    site = Site(tmp_path, _data_dir)
    site.start("demo", f"127.0.0.1:{site.port}", "--model-server", f"127.0.0.1:{free_port()}")
    yield site
    site.stop_everything()


def start_pages(site: Site) -> dict[str, str]:
    """What `marlin demo` printed: each user's first page."""
    found = re.findall(r"^  (\w+)\s+(http://\S+)$", site.log(), flags=re.MULTILINE)
    assert found, site.log()
    return dict(found)


def log_in(page: Page, site: Site, username: str) -> None:
    page.goto(f"http://127.0.0.1:{site.port}/account/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"http://127.0.0.1:{site.port}/")


@pytest.fixture
def as_user(browser):
    contexts = []

    def open_as(site: Site, username: str) -> Page:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        log_in(page, site, username)
        return page

    yield open_as
    for context in contexts:
        context.close()


def rows(page: Page, selector: str = "table tbody tr") -> int:
    return page.locator(selector).count()


def test_every_role_starts_on_a_page_with_data(demo_site: Site, as_user, artifacts_dir):
    pages = start_pages(demo_site)
    assert "Scripted model server for the live agents" in demo_site.log()

    erin = as_user(demo_site, "erin")
    erin.goto(pages["erin"])
    for agent in ("atlas-coder", "corvid-agent", "heron-swe", "kestrel-dev"):
        expect(erin.get_by_role("cell", name=re.compile(agent)).first).to_be_visible()
    expect(erin.get_by_text("Krippendorff").first).to_be_visible()
    erin.screenshot(path=str(artifacts_dir / "demo-admin-leaderboard.png"), full_page=True)

    dave = as_user(demo_site, "dave")
    dave.goto(pages["dave"])
    assert rows(dave) >= 30
    dave.screenshot(path=str(artifacts_dir / "demo-author-tasks.png"), full_page=True)

    alice = as_user(demo_site, "alice")
    alice.goto(pages["alice"])
    expect(alice.get_by_text(re.compile(r"\b3 comparisons waiting for you"))).to_be_visible()
    alice.screenshot(path=str(artifacts_dir / "demo-annotator-queue.png"), full_page=True)
    alice.goto(f"http://127.0.0.1:{demo_site.port}/review/revisions/")
    expect(alice.get_by_text("edge cases").first).to_be_visible()

    bob = as_user(demo_site, "bob")
    bob.goto(pages["bob"])
    assert rows(bob) >= 3
    bob.screenshot(path=str(artifacts_dir / "demo-reviewer-queue.png"), full_page=True)

    carol = as_user(demo_site, "carol")
    carol.goto(pages["carol"])
    assert rows(carol) >= 2
    carol.screenshot(path=str(artifacts_dir / "demo-adjudicator-queue.png"), full_page=True)

    alice.goto(f"http://127.0.0.1:{demo_site.port}/account/earnings/")
    expect(alice.get_by_text(re.compile(r"\$\d")).first).to_be_visible()


def test_a_new_task_is_run_by_the_two_live_agents(demo_site: Site, as_user, artifacts_dir):
    base = f"http://127.0.0.1:{demo_site.port}"
    dave = as_user(demo_site, "dave")
    dave.goto(f"{base}/tasks/new/")
    dave.get_by_label("Project").select_option(label="Ledgerlite pilot")
    dave.get_by_label("Repository").select_option(label="demo/ledgerlite")
    dave.get_by_label("Base commit").fill("main")
    dave.get_by_label("Title").fill("Mention the CSV importer in the README")
    dave.get_by_label("Kind").select_option("docs")
    dave.get_by_label("Prompt").fill("Say in the README that CSV files can be imported.")
    dave.get_by_label("Checks").fill("[]")
    dave.get_by_role("button", name="Create task").click()
    dave.wait_for_selector("text=Task created as a draft")
    task_url = dave.url

    carol = as_user(demo_site, "carol")
    carol.goto(task_url)
    carol.get_by_role("button", name="Approve").click()
    carol.wait_for_load_state()

    dave.goto(task_url)
    dave.get_by_role("button", name="Pair two agents from the pool").click()
    expect(dave.get_by_text(re.compile("Paired .* both runs queued"))).to_be_visible()
    # The worker runs both turns against the scripted model server (bounded wait).
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        dave.goto(task_url)
        done = dave.locator("#runs tbody tr", has_text="submitted").count()
        if done == 2:
            break
        time.sleep(2)
    else:
        pytest.fail("the live runs did not finish:\n" + demo_site.log()[-4000:])
    expect(dave.locator("#runs").get_by_text("osprey-live").first).to_be_visible()
    expect(dave.locator("#runs").get_by_text("petrel-live").first).to_be_visible()
    dave.screenshot(path=str(artifacts_dir / "demo-live-runs.png"), full_page=True)

    # Their comparison is in the annotators' queue, next to the three the demo loaded.
    alice = as_user(demo_site, "alice")
    alice.goto(f"{base}/compare/")
    expect(alice.get_by_text(re.compile(r"\b4 comparisons waiting for you"))).to_be_visible()
