"""Agent pages: definitions (validated settings, no keys), pools, runs on the task page,
trajectories.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from django.urls import reverse

from marlin.agents import actions
from marlin.agents.forms import SettingsError, find_secret_like, validate_agent_settings
from marlin.agents.jobs import candidate_fields
from marlin.agents.models import Agent, Candidate, Provider, Run, TrajectoryStep, Turn, TurnStatus
from marlin.audit.models import AuditEvent
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Task

OPENAI = {
    "model": "gpt-4o",
    "base_url": "http://127.0.0.1:8000/v1",
    "api_key_env": "OPENAI_API_KEY",
}


def agent_post(**overrides: object) -> dict:
    data = {
        "name": "gpt-4o loop",
        "version_label": "2025-01",
        "provider": "openai",
        "settings": json.dumps(OPENAI),
        "description": "",
        "is_active": "on",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("agent_settings", "where"),
    [
        ({"model": "m", "api_key": "abc"}, "api_key"),
        (
            {"model": "m", "extra_headers": {"Authorization": "Bearer abcdefghijkl"}},
            "extra_headers.Authorization",
        ),
        (
            {"model": "m", "extra_headers": {"X-Org": "sk-proj-abcdefghijklmnop"}},
            "extra_headers.X-Org",
        ),
        ({"model": "m", "base_url": "https://x.example/v1?key=sk-abcdefghijklmnop"}, "base_url"),
        ({"argv": ["claude", "-p"], "env": {"ANTHROPIC_TOKEN": "x"}}, "env.ANTHROPIC_TOKEN"),
    ],
)
def test_it_refuses_settings_that_hold_a_key_in_clear(agent_settings: dict, where: str) -> None:
    provider = "command" if "argv" in agent_settings else "openai"
    assert where in find_secret_like(agent_settings)
    with pytest.raises(SettingsError, match="look like a secret in clear") as error:
        validate_agent_settings(provider, agent_settings)
    assert where in str(error.value) and "api_key_env" in str(error.value)


def test_settings_are_validated_per_provider_with_readable_errors() -> None:
    assert validate_agent_settings("openai", {"model": "m"})["limits"]["max_steps"] == 50
    assert (
        validate_agent_settings("command", {"argv": "claude -p", "network": "proxy"})["network"]
        == "proxy"
    )
    with pytest.raises(SettingsError, match="network is one of 'none', 'proxy', 'host'"):
        validate_agent_settings("command", {"argv": "claude -p", "network": True})
    with pytest.raises(SettingsError, match="model: Field required"):
        validate_agent_settings("anthropic", {"api_key_env": "K"})
    with pytest.raises(SettingsError, match="temprature: Extra inputs are not permitted"):
        validate_agent_settings("openai", {"model": "m", "temprature": 0.2})
    with pytest.raises(SettingsError, match="limits.max_steps"):
        validate_agent_settings("openai", {"model": "m", "limits": {"max_steps": 0}})
    with pytest.raises(SettingsError, match="not both"):
        validate_agent_settings("openai", {"model": "m", "api_key_env": "K", "api_key_file": "/k"})
    with pytest.raises(SettingsError, match="prompt_via"):
        validate_agent_settings("command", {"argv": ["x"], "prompt_via": "argv"})


def test_authors_create_agents_and_the_change_is_audited(client_for, dave) -> None:
    client = client_for(dave)
    response = client.post(reverse("agents:create"), agent_post())
    agent = Agent.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "agents:detail", args=[agent.pk]
    )
    assert agent.settings["api_key_env"] == "OPENAI_API_KEY" and agent.created_by == dave
    assert AuditEvent.objects.filter(verb="agent.create", object_id=str(agent.pk)).count() == 1
    page = client.get(reverse("agents:list")).content.decode()
    assert "gpt-4o loop" in page and "gpt-4o" in page

    edit = client.post(
        reverse("agents:edit", args=[agent.pk]),
        agent_post(settings=json.dumps({**OPENAI, "temperature": 0.2}), reason="cooler"),
    )
    assert edit.status_code == 302
    agent.refresh_from_db()
    assert agent.settings["temperature"] == 0.2
    event = AuditEvent.objects.get(verb="agent.update")
    assert event.reason == "cooler" and event.new_values["settings"]["temperature"] == 0.2


def test_the_form_shows_what_is_wrong(client_for, dave) -> None:
    client = client_for(dave)
    bad_json = client.post(
        reverse("agents:create"), agent_post(settings="{model: gpt}")
    ).content.decode()
    assert "Settings must be JSON" in bad_json
    key = client.post(
        reverse("agents:create"),
        agent_post(settings=json.dumps({"model": "m", "api_key": "sk-live-123456789"})),
    ).content.decode()
    assert (
        "look like a secret in clear" in key
        and "sk-live-123456789" not in key.split("</textarea>")[-1]
    )
    assert not Agent.objects.exists()


def test_people_without_the_author_role_cannot_see_agents(client_for, alice, bob, mallory) -> None:
    for user in (alice, bob, mallory):
        assert client_for(user).get(reverse("agents:list")).status_code == 403
        assert client_for(user).get(reverse("agents:create")).status_code == 403


@pytest.fixture
def task_with_runs(db, erin, dave) -> Task:
    from marlin.demo.load import ensure_demo_repository

    project = task_actions.do_create_project(erin, "Pages")
    task = task_actions.do_create_task(
        dave,
        project,
        repository=ensure_demo_repository(),
        base_ref="main",
        base_commit="0" * 40,
        title="Fix rounding",
        kind="bug_fix",
        prompt="Fix it.",
        checks=[],
    )
    agents = [
        actions.do_create_agent(
            dave, name=name, provider=Provider.COMMAND, settings={"argv": ["true"]}
        )
        for name in ("alpha-agent", "beta-agent")
    ]
    actions.do_set_agent_pool(erin, project, agents)
    run = Run.objects.create(task=task, agent=agents[0], status="waiting")
    turn = Turn.objects.create(
        run=run, number=1, prompt="Fix it.", status=TurnStatus.DONE, exit_status="submitted"
    )
    patch = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1,2 @@\n"
        " x = 1\n+# Generated with Claude Code\n"
    )
    Candidate.objects.create(turn=turn, **candidate_fields(patch))
    TrajectoryStep.objects.create(
        turn=turn, index=1, kind="output", content={"output": "edited x.py"}
    )
    return task


def test_the_task_page_lists_runs_with_stats_flags_and_trajectory_links(
    client_for, dave, task_with_runs
) -> None:
    html = client_for(dave).get(reverse("tasks:detail", args=[task_with_runs.pk])).content.decode()
    run = Run.objects.get()
    assert "alpha-agent" in html and "+1" in html and "1 file" in html
    assert "banner" in html  # the fingerprint flag
    assert reverse("agents:run", args=[run.pk]) + "#turn-1" in html
    detail = client_for(dave).get(reverse("agents:run", args=[run.pk])).content.decode()
    assert (
        "edited x.py" in detail
        and "Generated with Claude Code" in detail
        and "Identity fingerprints" in detail
    )


def test_reviewers_see_the_task_but_not_which_agents_ran(client_for, bob, task_with_runs) -> None:
    html = client_for(bob).get(reverse("tasks:detail", args=[task_with_runs.pk])).content.decode()
    assert task_with_runs.title in html
    # Our section is for authors and admins only (the checks section above it is not ours).
    assert 'id="runs"' not in html and "Agent runs" not in html and "paired with" not in html
    assert (
        client_for(bob).get(reverse("agents:run", args=[Run.objects.get().pk])).status_code == 403
    )


def test_starting_and_pairing_runs_from_the_pages(
    client_for, dave, task_with_runs, django_capture_on_commit_callbacks
) -> None:
    client = client_for(dave)
    alpha = Agent.objects.get(name="alpha-agent")
    with django_capture_on_commit_callbacks() as started:
        response = client.post(
            reverse("agents:task_runs", args=[task_with_runs.pk]), {"agent": alpha.pk}
        )
    assert response.status_code == 302 and len(started) == 1
    with django_capture_on_commit_callbacks() as paired:
        client.post(reverse("agents:task_pair", args=[task_with_runs.pk]))
    assert len(paired) == 2
    pair = Run.objects.filter(partner__isnull=False)
    assert {r.agent.name for r in pair} == {"alpha-agent", "beta-agent"}


def test_admins_edit_the_pool_and_authors_cannot(client_for, erin, dave, task_with_runs) -> None:
    project = task_with_runs.project
    beta = Agent.objects.get(name="beta-agent")
    assert client_for(dave).get(reverse("agents:pool", args=[project.pk])).status_code == 403
    response = client_for(erin).post(
        reverse("agents:pool", args=[project.pk]), {"agents": [beta.pk], "reason": "trim"}
    )
    assert response.status_code == 302
    assert list(project.agent_pool.all()) == [beta]
    assert AuditEvent.objects.filter(verb="project.agent_pool").last().reason == "trim"


def test_a_failed_turn_can_be_retried(
    client_for, dave, task_with_runs, django_capture_on_commit_callbacks
) -> None:
    turn = Turn.objects.get()
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.FAILED, error="key missing")
    with django_capture_on_commit_callbacks() as queued:
        client_for(dave).post(reverse("agents:turn_retry", args=[turn.pk]))
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED and turn.error == "" and len(queued) == 1


def test_an_agent_with_runs_keeps_its_behaviour_but_may_move_its_key(dave, task_with_runs) -> None:
    agent = Agent.objects.get(name="alpha-agent")  # has a run
    with pytest.raises(actions.IllegalTransition, match="argv cannot change; create a new version"):
        actions.do_update_agent(dave, agent, {"settings": {"argv": ["false"]}})
    keyed = actions.do_create_agent(dave, name="keyed", provider=Provider.OPENAI, settings=OPENAI)
    Run.objects.create(task=task_with_runs, agent=keyed)
    moved = {**OPENAI, "api_key_env": "OPENAI_KEY_2", "max_attempts": 2}
    assert (
        actions.do_update_agent(dave, keyed, {"settings": moved}).settings["api_key_env"]
        == "OPENAI_KEY_2"
    )
    with pytest.raises(actions.IllegalTransition, match="model cannot change"):
        actions.do_update_agent(dave, keyed, {"settings": {**moved, "model": "gpt-5"}})


def test_the_new_agent_page_offers_the_ready_made_clis_and_each_saves_as_shown(
    client_for, dave
) -> None:
    client = client_for(dave)
    page = client.get(reverse("agents:create")).content.decode()
    shipped = json.loads(
        (Path(__file__).parents[2] / "marlin" / "agents" / "cli_definitions.json").read_text()
    )
    for name, definition in shipped.items():
        assert f'id="ready-made-{name}"' in page
        # What the page shows is what an author pastes: it saves as a command agent unchanged.
        shown = json.dumps(definition["settings"], indent=2)
        assert html.escape(shown) in page
        response = client.post(
            reverse("agents:create"),
            agent_post(name=name, provider="command", settings=shown),
        )
        assert response.status_code == 302, response.content.decode()[:2000]
        saved = Agent.objects.get(name=name).settings
        assert saved["argv"] == definition["settings"]["argv"]
        assert saved["trajectory"] == definition["settings"]["trajectory"]
