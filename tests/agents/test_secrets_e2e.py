"""An agent's API key, set in the worker's environment, reaches the model server and nothing else:
not the sandbox, the trajectory, the candidate, the conversation, the settings, any table, the
logs, the files under DATA_DIR, the pages or the API."""

from __future__ import annotations

import io
import logging
import secrets
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from marlin.agents import actions
from marlin.agents.jobs import run_turn
from marlin.agents.models import Agent, Candidate, Run, TrajectoryStep, Turn, TurnStatus
from marlin.devtools.model_server import Call, Fail, Reply
from tests.agents.test_runs import demo_task  # noqa: F401 - a fixture, used by name

KEY_ENV = "MARLIN_SECRET_E2E_KEY"
PROBE = (
    "env; echo ---; tr '\\0' '\\n' < /proc/self/environ; echo ---; "
    "tr '\\0' '\\n' < /proc/1/environ 2>&1; echo ---; ls -a ~ /run 2>&1 | head -40"
)


@pytest.mark.slow
def test_the_key_reaches_the_model_server_and_nothing_else(
    demo_task,  # noqa: F811 - the fixture imported above
    dave,
    erin,
    client_for,
    model_server_factory,
    monkeypatch,
    caplog,
    capfd,
) -> None:
    key = f"sk-marlin-{secrets.token_hex(16)}"
    monkeypatch.setenv(KEY_ENV, key)
    caplog.set_level(logging.DEBUG)  # the SDKs' and httpx's debug logs included
    server = model_server_factory(
        [
            Reply(text="Let me look around.", tool_calls=[Call("bash", {"command": PROBE})]),
            Reply(tool_calls=[Call("write_file", {"path": "NOTES.md", "content": "notes\n"})]),
            Reply(tool_calls=[Call("finish", {"summary": "done"})]),
            # A second run whose server echoes the key in an error message.
            Fail(401, message=f"Incorrect API key provided: {key}"),
        ]
    )
    agent = actions.do_create_agent(
        dave,
        name="keyed",
        provider="openai",
        settings={
            "model": "fake-model",
            "base_url": server.openai_base_url,
            "api_key_env": KEY_ENV,
            "timeout_s": 5,
            "max_attempts": 1,
        },
    )
    run = actions.do_start_run(dave, demo_task, agent)
    run_turn.call(run.turns.get().pk)
    turn = run.turns.get()
    assert turn.status == TurnStatus.DONE, turn.error
    failing = actions.do_start_run(dave, demo_task, agent)
    run_turn.call(failing.turns.get().pk)
    failed = failing.turns.get()
    assert failed.status == TurnStatus.FAILED and "[redacted]" in failed.error

    # The key was really used: the server saw it.
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    # The sandbox ran the probe and printed an environment without it.
    probe_output = TrajectoryStep.objects.get(turn=turn, index=1).content["tool_outputs"][0]
    assert "PATH=" in probe_output and KEY_ENV not in probe_output and key not in probe_output

    places: dict[str, str] = {}
    for step in TrajectoryStep.objects.all():
        places[f"step {step.pk}"] = f"{step.content} {step.scrubbed_content}"
    for candidate in Candidate.objects.all():
        places[f"candidate {candidate.pk}"] = (
            f"{candidate.patch} {candidate.scrubbed_patch} {candidate.fingerprints}"
        )
    for each in Run.objects.all():
        places[f"run {each.pk}"] = f"{each.conversation} {each.error}"
    for each in Turn.objects.all():
        places[f"turn {each.pk}"] = f"{each.prompt} {each.error}"
    places["agent settings"] = str(Agent.objects.get(pk=agent.pk).settings)
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    places["dumpdata"] = dump.getvalue()
    places["logs"] = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    captured = capfd.readouterr()
    places["stdout and stderr"] = captured.out + captured.err
    for path in Path(settings.DATA_DIR).rglob("*"):
        if path.is_file() and not path.is_symlink():
            places[f"file {path}"] = path.read_bytes().decode("utf-8", errors="replace")
    client = client_for(erin)
    for name, url in [
        ("agent list", reverse("agents:list")),
        ("agent page", reverse("agents:detail", args=[agent.pk])),
        ("agent form", reverse("agents:edit", args=[agent.pk])),
        ("run page", reverse("agents:run", args=[run.pk])),
        ("failed run page", reverse("agents:run", args=[failing.pk])),
        ("task page", reverse("tasks:detail", args=[demo_task.pk])),
        ("API agent", f"/api/agents/{agent.pk}"),
        ("API run", f"/api/runs/{run.pk}"),
        ("API failed run", f"/api/runs/{failing.pk}"),
    ]:
        response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        places[name] = response.content.decode()

    assert len(places["dumpdata"]) > 1000 and "keyed" in places["agent page"]
    assert "HTTP Request: POST" in places["logs"] and "failed" in places["logs"]
    leaks = [where for where, text in places.items() if key in text or key[3:] in text]
    assert leaks == []
