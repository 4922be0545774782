"""Agents work over the tree their task's setup built (issue 13, item 3): the run's workspace is
a copy-on-write layer over the environment's base, /env is mounted, the file tools read and
write the merged tree through the sandbox, and the candidate is the layer's change only.

Fake model server over real HTTP, the demo repository's mirror, the real bwrap sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlin.agents import actions
from marlin.agents.jobs import run_turn
from marlin.agents.models import Provider, Turn, TurnStatus
from marlin.devtools.model_server import Call, Reply
from marlin.sandbox.workspace import read_marker
from marlin.tasks import actions as task_actions
from marlin.tasks.jobs import environment_for
from marlin.tasks.models import EnvironmentStatus, Task
from tests.agents.test_runs import KEY_ENV, api_agent

pytestmark = [pytest.mark.slow]

# The build writes a module into the tree and a tool into /env.
SETUP = (
    "echo 'GENERATED = 42' > generated_by_setup.py && mkdir -p /env/bin && "
    "printf '#!/bin/sh\\necho env-tool-ok\\n' > /env/bin/env-tool && chmod +x /env/bin/env-tool"
)
SCRIPT = [
    Reply(
        tool_calls=[
            Call(
                "bash",
                {"command": "python3 -c 'import generated_by_setup as g; print(g.GENERATED)'"},
            )
        ]
    ),
    Reply(tool_calls=[Call("bash", {"command": "env-tool"})]),
    Reply(tool_calls=[Call("view_file", {"path": "generated_by_setup.py"})]),
    Reply(
        tool_calls=[
            Call(
                "edit_file",
                {
                    "path": "README.md",
                    "old_str": "# ledgerlite\n",
                    "new_str": "# ledgerlite\n\nEdited over the built tree.\n",
                },
            )
        ]
    ),
    Reply(tool_calls=[Call("write_file", {"path": "docs/new.md", "content": "new\n"})]),
    Reply(tool_calls=[Call("view_file", {"path": "../outside.txt"})]),
    Reply(tool_calls=[Call("finish", {"summary": "done"})]),
]


@pytest.fixture
def built_task(db, erin, dave) -> Task:
    from marlin import paths
    from marlin.demo.load import ensure_demo_repository
    from marlin.demo.sample_repo import head_commit

    repository = ensure_demo_repository()
    project = task_actions.do_create_project(erin, "Agents on built trees")
    return task_actions.do_create_task(
        dave,
        project,
        repository=repository,
        base_ref="main",
        base_commit=head_commit(paths.data_dir() / "demo-src" / "ledgerlite"),
        title="Edit the readme",
        kind="docs",
        prompt="Add a line to README.md.",
        setup_command=SETUP,
        checks=[],
    )


def test_an_api_agent_works_in_a_layer_over_the_built_tree(
    built_task: Task, dave, model_server_factory, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")
    server = model_server_factory(SCRIPT)
    run = actions.do_start_run(dave, built_task, api_agent(dave, "openai", server))
    turn = run.turns.get()
    run_turn.call(turn.pk)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.DONE, turn.error

    environment = environment_for(built_task)
    assert environment.status == EnvironmentStatus.READY, environment.log
    outputs = [out for step in turn.steps.order_by("index") for out in step.content["tool_outputs"]]
    assert "42" in outputs[0]  # the module the setup generated, imported by the agent
    assert "env-tool-ok" in outputs[1]  # /env is mounted and on PATH
    assert "GENERATED = 42" in outputs[2]  # view_file reads the base through the layer
    assert "outside the workspace" in outputs[5] or "'..'" in outputs[5]
    patch = turn.candidate.patch
    assert "+Edited over the built tree." in patch and "docs/new.md" in patch
    assert "generated_by_setup" not in patch  # the build's output is not the agent's change
    run.refresh_from_db()
    layer = Path(run.workspace_path)
    assert read_marker(layer).layer == "overlay"
    tree = Path(environment.path) / "tree"
    assert "Edited over the built tree." not in (tree / "README.md").read_text()
    assert not (tree / "docs" / "new.md").exists()


def test_a_command_agent_sees_the_built_tree_and_its_prompt_file(built_task: Task, dave) -> None:
    script = (
        "import generated_by_setup, pathlib, sys; "
        "prompt = pathlib.Path(sys.argv[1]).read_text(); "
        "pathlib.Path('NOTES.md').write_text(f'{generated_by_setup.GENERATED} {len(prompt) > 0}')"
    )
    agent = actions.do_create_agent(
        dave,
        name="script",
        provider=Provider.COMMAND,
        settings={
            "argv": ["python3", "-c", script, "{prompt_file}"],
            "prompt_via": "file",
            "timeout": 60,
        },
    )
    run = actions.do_start_run(dave, built_task, agent)
    turn = Turn.objects.get(run=run)
    run_turn.call(turn.pk)
    turn.refresh_from_db()
    assert turn.status == TurnStatus.DONE, turn.error
    assert "+42 True" in turn.candidate.patch  # the generated module, and the prompt file
    assert "prompt.md" not in turn.candidate.patch
