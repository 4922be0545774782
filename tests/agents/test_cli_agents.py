"""The real command-line agents (Claude Code, Codex CLI, aider, mini-swe-agent), installed by
scripts/agent-clis.sh, run as Marlin `command` agents with the shipped definitions: inside the
bwrap sandbox in `proxy` mode, talking to the fake model server (streaming, scripted tool use)
through the egress proxy's credential endpoint, which adds the real key on the host.

Each test runs the job as the worker does and shows: the CLI's edit is the candidate, its
trajectory became Marlin's steps, the tokens the proxy counted are the candidate's, the real key
reached the model server but is nowhere the sandbox could see it (the environment the CLI's own
tool printed, every file of the agent's home and workspace including the CLI's logs and session
files, its output), and a follow-up turn continued the CLI's session where the CLI has one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from marlin.agents import actions
from marlin.agents.clis import home_dir
from marlin.agents.jobs import run_turn
from marlin.agents.models import Agent, Candidate, Provider, Run, Turn, TurnStatus
from marlin.devtools.model_server import Call, Fail, FakeModelServer, Reply
from marlin.paths import workspaces_dir
from marlin.review.models import Comparison
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Task

pytestmark = [pytest.mark.slow]

DEFINITIONS = json.loads(
    (Path(__file__).parents[2] / "marlin" / "agents" / "cli_definitions.json").read_text()
)
KEY_ENV = "MARLIN_TEST_CLI_MODEL_KEY"
REAL_KEY = "sk-real-cli-key-4f9b2c71d0e8a6"
TOOLS_DIR = Path(
    os.environ.get("MARLIN_AGENT_TOOLS_DIR") or Path.home() / ".cache" / "marlin" / "agent-tools"
)
SIGNED = "Created hello.txt, said \u0421laude."  # a Cyrillic С
MAKE_HELLO = "echo hello > hello.txt"
ENV_DUMP = "env; cat /proc/self/environ | tr '\\0' '\\n'"


@pytest.fixture
def agent_tools(settings) -> Path:
    if not (TOOLS_DIR / "versions.txt").is_file():
        message = f"the agent CLIs are not installed in {TOOLS_DIR}: run scripts/agent-clis.sh"
        if os.environ.get("CI"):
            pytest.fail(message)  # `make test` installs them first; CI must not skip silently
        pytest.skip(message)
    settings.AGENT_TOOLS_DIR = TOOLS_DIR
    return TOOLS_DIR


@pytest.fixture
def demo_task(db, erin, dave) -> Task:
    from marlin import paths
    from marlin.demo.load import ensure_demo_repository
    from marlin.demo.sample_repo import head_commit

    repository = ensure_demo_repository()
    project = task_actions.do_create_project(erin, "CLI agents")
    return task_actions.do_create_task(
        dave,
        project,
        repository=repository,
        base_ref="main",
        base_commit=head_commit(paths.data_dir() / "demo-src" / "ledgerlite"),
        title="Say hello",
        kind="docs",
        prompt="Create hello.txt saying hello.",
        checks=[],
    )


def cli_agent(actor: Any, name: str, server: FakeModelServer) -> Agent:
    """The shipped definition, with its model API pointed at the fake server."""
    settings = json.loads(json.dumps(DEFINITIONS[name]["settings"]))
    api = settings["model_apis"][0]
    api["base_url"] = (
        server.anthropic_base_url if api["kind"] == "anthropic" else (server.openai_base_url)
    )
    api["api_key_env"] = KEY_ENV
    return actions.do_create_agent(actor, name=name, provider=Provider.COMMAND, settings=settings)


def run_job(turn: Turn) -> Turn:
    run_turn.call(turn.pk)
    turn.refresh_from_db()
    return turn


def follow_up(actor: Any, expert: Any, run: Run, prompt: str) -> Turn:
    """A follow-up the way an expert asks for one: on the comparison the run is part of."""
    other_agent = actions.do_create_agent(
        actor, name=f"other-{run.pk}", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    other = actions.do_start_run(actor, run.task, other_agent)
    Turn.objects.filter(run=other).update(status=TurnStatus.DONE)
    Candidate.objects.create(turn=other.turns.get(), patch="")
    comparison = Comparison.objects.create(
        project=run.task.project, task=run.task, run_a=run, run_b=other
    )
    actions.do_start_follow_up(expert, comparison, prompt)
    return Turn.objects.get(run=run, number=2)


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def check_the_key_stayed_out(run: Run, server: FakeModelServer, turn: Turn) -> None:
    # The real key went to the model server, from the host side of the proxy ...
    sent = [r.headers.get("x-api-key") or r.headers.get("authorization") for r in server.requests]
    assert sent and all(value and REAL_KEY in value for value in sent), sent
    # ... and the sandbox only ever had the run's dummy token: the environment printed from
    # inside shows it, and no step, file (the CLI's logs and sessions included) or output holds
    # the real key.
    steps = json.dumps([s.content for s in turn.steps.all()])
    home = home_dir(workspaces_dir(), run.pk)
    files = files_under(home, Path(run.workspace_path))
    assert files, "the CLI wrote nothing to its home"
    seen = steps + "".join(p.read_bytes().decode(errors="replace") for p in files)
    assert "marlin-run-" in seen  # the dummy token
    assert "_BASE_URL=http://127.0.0.1:3128/" in seen  # the credential endpoint, inside
    assert REAL_KEY not in steps
    holding = [str(p) for p in files if REAL_KEY.encode() in p.read_bytes()]
    assert holding == []
    assert REAL_KEY not in json.dumps(run.conversation)


def check_the_run(turn: Turn, server: FakeModelServer, tokens: tuple[int, int]) -> None:
    assert turn.status == TurnStatus.DONE, turn.error
    assert turn.exit_status == "submitted", [s.content for s in turn.steps.all()]
    candidate = turn.candidate
    assert "+hello" in candidate.patch and "hello.txt" in candidate.patch
    # Proxy mode: every model call went through the credential endpoint and was logged.
    models = [c for c in turn.network_log if c["kind"] == "model"]
    assert models and all(c["allowed"] for c in models)
    assert len(models) == len([r for r in server.requests if r.path.startswith("/v1/")])
    # The tokens the proxy counted from the (streamed) answers are the candidate's.
    assert (candidate.input_tokens, candidate.output_tokens) == tokens


def model_steps(turn: Turn) -> list[dict[str, Any]]:
    return [s.content for s in turn.steps.order_by("index") if s.kind == "model"]


def test_claude_code(
    agent_tools: Path, demo_task: Task, dave, alice, client, model_server_factory, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, REAL_KEY)
    write = {"file_path": "/workspace/hello.txt", "content": "hello\n"}
    server = model_server_factory(
        [
            Reply(text="Creating the file.", tool_calls=[Call("Write", write)]),
            Reply(text="Checking the sandbox.", tool_calls=[Call("Bash", {"command": ENV_DUMP})]),
            Reply(text=SIGNED, input_tokens=150, output_tokens=30),
        ]
    )
    run = actions.do_start_run(dave, demo_task, cli_agent(dave, "claude-code", server))
    turn = run_job(run.turns.get())
    check_the_run(turn, server, (350, 70))
    steps = model_steps(turn)
    assert [c["name"] for s in steps for c in s["tool_calls"]] == ["write_file", "bash"]
    assert steps[0]["tool_calls"][0]["arguments"] == write
    assert "File created successfully" in steps[0]["tool_outputs"][0]
    assert steps[-1]["text"] == SIGNED
    # The CLI's steps are scanned and scrubbed like a model's, disguised names included.
    last = turn.steps.filter(kind="model").order_by("-index").first()
    assert last.scrubbed_content["text"] == "Created hello.txt, said [model]."
    assert any(f["match"] == "\u0421laude" for f in turn.candidate.fingerprints)
    run.refresh_from_db()
    check_the_key_stayed_out(run, server, turn)
    session = run.conversation[-1]["session_id"]
    assert session and (home_dir(workspaces_dir(), run.pk) / ".claude").is_dir()
    # The run page shows the parsed steps and the proxy's network log.
    client.force_login(dave)
    page = client.get(reverse("agents:run", args=[run.pk])).content.decode()
    assert "Created hello.txt" in page and "write_file" in page and "Network log" in page

    # The follow-up resumes the session: Claude Code sends the first turn's messages itself.
    before = len(server.requests)
    server.add(
        Reply(
            text="Adding a second line.",
            tool_calls=[Call("Bash", {"command": "echo again >> hello.txt"})],
        ),
        Reply(text="Done."),
    )
    second = run_job(follow_up(dave, alice, run, "Add a second line."))
    assert second.status == TurnStatus.DONE, second.error
    sent = json.dumps(server.requests[before].body["messages"])
    assert "Creating the file." in sent and "Add a second line." in sent
    assert "Earlier in this session" not in sent  # no transcript: the CLI had the session
    assert "+again" in second.candidate.patch and "+hello" in second.candidate.patch
    run.refresh_from_db()
    assert run.conversation[-1]["session_id"] == session


def test_codex(agent_tools: Path, demo_task: Task, dave, alice, model_server_factory, monkeypatch):
    monkeypatch.setenv(KEY_ENV, REAL_KEY)
    make = {"cmd": "printf 'hello\\n' > hello.txt", "tty": False}
    server = model_server_factory(
        [
            Reply(text="Creating the file.", tool_calls=[Call("exec_command", make)]),
            Reply(text="Checking.", tool_calls=[Call("exec_command", {"cmd": ENV_DUMP})]),
            Reply(text="Created hello.txt.", input_tokens=150, output_tokens=30),
        ]
    )
    run = actions.do_start_run(dave, demo_task, cli_agent(dave, "codex", server))
    turn = run_job(run.turns.get())
    check_the_run(turn, server, (350, 70))
    steps = model_steps(turn)
    calls = [c for s in steps for c in s["tool_calls"]]
    assert [c["name"] for c in calls] == ["bash", "bash"]
    assert "hello.txt" in calls[0]["arguments"]["command"]
    assert steps[-1]["text"] == "Created hello.txt."
    assert server.requests[0].path == "/v1/responses" and server.requests[0].body["stream"]
    run.refresh_from_db()
    check_the_key_stayed_out(run, server, turn)
    session = run.conversation[-1]["session_id"]
    assert session

    before = len(server.requests)
    server.add(
        Reply(
            text="Adding a line.",
            tool_calls=[Call("exec_command", {"cmd": "echo again >> hello.txt", "tty": False})],
        ),
        Reply(text="Done."),
    )
    second = run_job(follow_up(dave, alice, run, "Add a second line."))
    assert second.status == TurnStatus.DONE, second.error
    sent = json.dumps(server.requests[before].body["input"])
    assert "Creating the file." in sent and "Add a second line." in sent
    assert "Earlier in this session" not in sent
    assert "+again" in second.candidate.patch
    run.refresh_from_db()
    assert run.conversation[-1]["session_id"] == session


AIDER_EDIT = (
    "Creating the file.\n\nhello.txt\n```\n<<<<<<< SEARCH\n=======\nhello\n>>>>>>> REPLACE\n```\n"
)
AIDER_AGAIN = (
    "Adding a line.\n\nhello.txt\n```\n<<<<<<< SEARCH\nhello\n=======\nhello\nagain\n"
    ">>>>>>> REPLACE\n```\n"
)


def test_aider(agent_tools: Path, demo_task: Task, dave, alice, model_server_factory, monkeypatch):
    monkeypatch.setenv(KEY_ENV, REAL_KEY)
    # aider's edits are in the reply's text. It has no tool of its own to print the environment
    # with (it declines the shell commands a reply proposes when run with --message), so the
    # command line records the sandbox's environment before aider starts.
    server = model_server_factory([Reply(text=AIDER_EDIT, input_tokens=350, output_tokens=70)])
    agent = cli_agent(dave, "aider", server)
    agent.settings["argv"] = f"({ENV_DUMP}) > /home/agent/sandbox-env.txt; {agent.settings['argv']}"
    agent.save(update_fields=["settings"])
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run_job(run.turns.get())
    check_the_run(turn, server, (350, 70))
    steps = model_steps(turn)
    assert "<<<<<<< SEARCH" in steps[0]["text"]
    assert any("Applied edit to hello.txt" in o for s in steps for o in s["tool_outputs"])
    run.refresh_from_db()
    check_the_key_stayed_out(run, server, turn)

    before = len(server.requests)
    server.add(Reply(text=AIDER_AGAIN))
    second = run_job(follow_up(dave, alice, run, "Add a second line."))
    assert second.status == TurnStatus.DONE, second.error
    sent = json.dumps(server.requests[before].body["messages"])
    assert "Create hello.txt saying hello." in sent and "Add a second line." in sent
    assert "Earlier in this session" not in sent  # the restored chat history, not a transcript
    assert "+again" in second.candidate.patch


def test_mini_swe_agent(
    agent_tools: Path, demo_task: Task, dave, alice, model_server_factory, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, REAL_KEY)
    submit = Call("bash", {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"})
    server = model_server_factory(
        [
            Reply(
                text="Creating it.",
                tool_calls=[Call("bash", {"command": "echo hello > hello.txt"})],
            ),
            Reply(text="Checking.", tool_calls=[Call("bash", {"command": ENV_DUMP})]),
            Reply(text="Submitting.", tool_calls=[submit], input_tokens=150, output_tokens=30),
        ]
    )
    run = actions.do_start_run(dave, demo_task, cli_agent(dave, "mini-swe-agent", server))
    turn = run_job(run.turns.get())
    check_the_run(turn, server, (350, 70))
    steps = model_steps(turn)
    assert [s["text"] for s in steps] == ["Creating it.", "Checking.", "Submitting."]
    assert steps[0]["tool_calls"][0] == {"name": "bash", "arguments": {"command": MAKE_HELLO}}
    assert [s.input_tokens for s in turn.steps.filter(kind="model").order_by("index")] == [
        100,
        100,
        150,
    ]
    run.refresh_from_db()
    check_the_key_stayed_out(run, server, turn)

    # mini-swe-agent keeps no session: the follow-up's prompt carries the transcript.
    before = len(server.requests)
    server.add(
        Reply(text="Again.", tool_calls=[Call("bash", {"command": "echo again >> hello.txt"})]),
        Reply(text="Submitting.", tool_calls=[submit]),
    )
    second = run_job(follow_up(dave, alice, run, "Add a second line."))
    assert second.status == TurnStatus.DONE, second.error
    sent = json.dumps(server.requests[before].body["messages"])
    assert "Earlier in this session" in sent and "Creating it." in sent
    assert "+again" in second.candidate.patch


def test_the_docs_ship_the_definitions_the_tests_run() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "agents.md").read_text()
    for name, definition in DEFINITIONS.items():
        assert json.dumps(definition["settings"]) in docs, name


def test_a_cli_whose_model_calls_fail_fails_the_turn_with_its_reason(
    agent_tools: Path, demo_task: Task, dave, monkeypatch
):
    monkeypatch.setenv(KEY_ENV, REAL_KEY)
    # Every request refused, retries included, so the CLI gives up at once.
    refuse = Fail(400, message="model claude-sonnet-4-5 is not served")
    with FakeModelServer(side=lambda path, body: refuse) as server:
        run = actions.do_start_run(dave, demo_task, cli_agent(dave, "claude-code", server))
        turn = run_job(run.turns.get())
    assert turn.status == TurnStatus.FAILED
    assert "exited with exit:1 and changed nothing" in turn.error
    # What the CLI said about it is in the trajectory, and the key is not.
    steps = json.dumps([s.content for s in turn.steps.all()])
    assert "is not served" in steps and REAL_KEY not in steps + turn.error


def test_the_install_script_is_a_no_op_once_installed_and_stays_out_of_marlins_venv(
    agent_tools: Path,
) -> None:
    script = Path(__file__).parents[2] / "scripts" / "agent-clis.sh"
    done = subprocess.run(
        [str(script)],
        env={**os.environ, "MARLIN_AGENT_TOOLS_DIR": str(agent_tools)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "installed in" not in done.stdout  # nothing rebuilt: every stamp matched its pin
    pins = (agent_tools / "versions.txt").read_text()
    for pin in ("claude-code=", "codex=", "aider-chat=", "mini-swe-agent="):
        assert pin in pins
    assert {p.name for p in (agent_tools / "bin").iterdir()} >= {"claude", "codex", "aider", "mini"}
    # The CLIs' Python packages are in their own venvs, not in the one Marlin runs from.
    assert importlib.util.find_spec("aider") is None
    assert importlib.util.find_spec("minisweagent") is None
