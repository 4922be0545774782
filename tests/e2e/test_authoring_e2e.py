import pytest

from marlin.tasks.models import Task, TaskStatus


@pytest.fixture
def setup_authoring(transactional_db, make_user):
    from marlin.demo.load import ensure_demo_repository
    from marlin.tasks.actions import do_create_project

    admin = make_user("erin", "admin")
    author = make_user("dave", "author")
    project = do_create_project(admin, "Pilot")
    repository = ensure_demo_repository()
    return author, project, repository


def test_an_author_logs_in_and_creates_a_task_through_the_form(
    page, live_server, login, setup_authoring, artifacts_dir
):
    author, project, repository = setup_authoring
    login(page, live_server, author)
    page.get_by_role("link", name="Tasks").first.click()
    page.get_by_role("link", name="New task").click()
    page.get_by_label("Project").select_option(str(project.pk))
    page.get_by_label("Repository").select_option(str(repository.pk))
    page.get_by_label("Base commit").fill("v0.3.0")
    page.get_by_label("Title").fill("Support (12.50) as a negative amount")
    page.get_by_label("Kind").select_option("bug_fix")
    page.get_by_label("Prompt").fill(
        "Accept accounting negatives in `parse_amount`.\n\n<b>not bold</b>"
    )
    page.get_by_label("Checks").fill(
        '[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]'
    )
    page.get_by_role("button", name="Create task").click()
    page.wait_for_selector("text=Task created as a draft")
    page.screenshot(path=str(artifacts_dir / "task-created.png"), full_page=True)

    task = Task.objects.get()
    assert task.status == TaskStatus.DRAFT and task.created_by == author
    assert len(task.base_commit) == 40
    assert page.locator(".prose code").first.inner_text() == "parse_amount"
    assert page.locator(".prose b").count() == 0  # raw HTML stays text
    assert "<b>not bold</b>" in page.locator(".prose").inner_text()
