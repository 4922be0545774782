"""The rubric editor in chromium: add a criterion, move it, remove one, save a new version, and
read the field-level history."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.review.factories import make_project


@pytest.mark.slow
def test_an_admin_edits_the_rubric_as_a_form_and_reads_what_changed(
    page, live_server, login, make_user, artifacts_dir
):
    erin = make_user("erin", "admin")
    project = make_project()
    login(page, live_server, erin)
    page.goto(f"{live_server.url}/tasks/rubrics/{project.rubric_id}/edit/")
    page.get_by_role("button", name="Add a criterion").click()
    added = page.locator(".criterion-form").last
    added.get_by_label("Key").fill("tests")
    added.get_by_label("Name").fill("Tests")
    added.get_by_label("Guidance").fill("Do the tests fail without the change and pass with it?")
    expect(added.locator(".criterion-number")).to_have_text("6")
    added.get_by_role("button", name="Move criterion up").click()  # before overall
    expect(page.locator(".criterion-form").nth(4).get_by_label("Key")).to_have_value("tests")
    maintainability = page.locator(".criterion-form").nth(3)
    expect(maintainability.get_by_label("Key")).to_have_value("maintainability")
    maintainability.get_by_label("Remove").check()
    page.get_by_label("Change note").fill("A tests criterion replaces maintainability.")
    page.screenshot(path=str(artifacts_dir / "rubric-editor.png"), full_page=True)
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_text("Saved as version 2.")).to_be_visible()
    version = project.rubric.current_version()
    assert version.number == 2
    assert version.criterion_keys == [
        "correctness",
        "security",
        "reliability",
        "tests",
        "overall",
    ]
    changes = page.locator(".version").first
    expect(changes).to_contain_text("added Tests tests")
    expect(changes).to_contain_text("removed Maintainability maintainability")
    page.screenshot(path=str(artifacts_dir / "rubric-history.png"), full_page=True)
