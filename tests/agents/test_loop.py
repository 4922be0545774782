"""The agent loop end to end: fake model servers over real HTTP, the real sandbox, real git
repos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marlin.agents.loop import AgentLimits, Step, run_agent
from marlin.agents.providers import Model, ProviderSettings, load_model
from marlin.agents.secrets import resolve_api_key
from marlin.agents.tools import SandboxEnvironment
from marlin.devtools.model_server import Call, FakeModelServer, Reply
from tests.agents.conftest import CALC, git

PROVIDERS = ["openai", "anthropic"]
FIX_SCRIPT = [
    Reply(text="Let me look.", tool_calls=[Call("view_file", {"path": "calc.py"})]),
    Reply(
        tool_calls=[Call("edit_file", {"path": "calc.py", "old_str": "a - b", "new_str": "a + b"})]
    ),
    Reply(
        tool_calls=[
            Call("bash", {"command": "python3 -m unittest -q test_calc 2>&1; git status --short"})
        ]
    ),
    Reply(text="Fixed.", tool_calls=[Call("finish", {"summary": "add() now adds"})]),
]


def make_model(provider: str, server: FakeModelServer, **overrides: Any) -> Model:
    settings: dict[str, Any] = {
        "provider": provider,
        "model": "fake-model",
        "base_url": server.openai_base_url if provider == "openai" else server.anthropic_base_url,
        # The scripted server answers one entry per request, so a client retry after a timeout
        # would skip an entry and the test would fail far from the cause: on a loaded machine,
        # wait long and do not retry (a timeout then fails loudly as itself).
        "timeout_s": 120.0,
        "max_attempts": 1,
        "backoff_base_s": 0.01,
    }
    settings.update(overrides)
    parsed = ProviderSettings.from_dict(settings)
    return load_model(parsed, api_key=resolve_api_key(settings) or "sk-test-key")


def start(calc_repo: Path) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You fix bugs."},
        {"role": "user", "content": f"Make the tests in {calc_repo.name} pass."},
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_it_fixes_a_bug_end_to_end(provider: str, calc_repo: Path, model_server_factory) -> None:
    server = model_server_factory(FIX_SCRIPT)
    seen: list[Step] = []
    result = run_agent(
        make_model(provider, server),
        SandboxEnvironment(calc_repo),
        start(calc_repo),
        on_step=seen.append,
    )
    assert result.exit_status == "submitted", result.message
    assert result.message == "add() now adds"
    outputs = [step.tool_outputs for step in seen]
    # The file itself, not `git diff`: the fix is a same-size edit within the second of the
    # fixture's commit, which git's stat check can take for unchanged on a loaded machine.
    assert (calc_repo / "calc.py").read_text() == CALC.replace("a - b", "a + b"), outputs
    assert "calc.py" in seen[0].tool_outputs[0] or "return a - b" in seen[0].tool_outputs[0]
    assert "OK" in seen[2].tool_outputs[0] and "M calc.py" in seen[2].tool_outputs[0]
    assert [s.index for s in seen] == [1, 2, 3, 4]
    assert result.totals.steps == 4 and result.totals.input_tokens == 400
    # The second request carries the file view back to the model.
    second = json.dumps(server.requests[1].body)
    assert "return a - b" in second
    assert len(server.requests) == 4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_it_reports_malformed_tool_calls_back_to_the_model(
    provider: str, calc_repo: Path, model_server_factory
) -> None:
    server = model_server_factory(
        [
            Reply(tool_calls=[Call("bash", '{"command": "ls"')]),  # invalid JSON arguments
            Reply(tool_calls=[Call("rm_rf", {"path": "."})]),
            Reply(tool_calls=[Call("edit_file", {"path": "calc.py"})]),
            Reply(tool_calls=[Call("view_file", {"path": "../../etc/passwd"})]),
            Reply(tool_calls=[Call("finish", {"summary": "gave up"})]),
        ]
    )
    result = run_agent(
        make_model(provider, server), SandboxEnvironment(calc_repo), start(calc_repo)
    )
    assert result.exit_status == "submitted"
    errors = [m["content"] for m in result.messages if m["role"] == "tool"]
    assert "not a JSON object" in errors[0]
    assert "Unknown tool 'rm_rf'" in errors[1]
    assert "missing required argument(s): old_str, new_str" in errors[2]
    assert "contains '..'" in errors[3]
    # The error really went over the wire in the next request.
    assert "not a JSON object" in json.dumps(server.requests[1].body)
    assert git(calc_repo, "status", "--short") == ""


def test_a_text_only_reply_is_nudged_towards_the_tools(
    calc_repo: Path, model_server_factory
) -> None:
    server = model_server_factory(
        [Reply(text="I think it is fine."), Reply(tool_calls=[Call("finish", {"summary": "ok"})])]
    )
    result = run_agent(
        make_model("openai", server), SandboxEnvironment(calc_repo), start(calc_repo)
    )
    assert result.exit_status == "submitted"
    assert "Use one of the tools" in json.dumps(server.requests[1].body["messages"][-1])


@pytest.mark.parametrize(
    ("limits", "overrides", "status"),
    [
        (AgentLimits(max_steps=2), {}, "limit:steps"),
        (AgentLimits(max_tokens=250), {}, "limit:tokens"),  # each reply costs 120 tokens
        (AgentLimits(max_cost_usd=0.001), {"input_price_per_mtok": 5.0}, "limit:cost"),
        (AgentLimits(max_wall_seconds=0), {}, "limit:wall"),
    ],
)
def test_limits_stop_the_loop_with_their_exit_status(
    limits: AgentLimits,
    overrides: dict[str, Any],
    status: str,
    calc_repo: Path,
    model_server_factory,
) -> None:
    forever = [Reply(tool_calls=[Call("bash", {"command": "true"})]) for _ in range(10)]
    server = model_server_factory(forever)
    result = run_agent(
        make_model("openai", server, **overrides),
        SandboxEnvironment(calc_repo),
        start(calc_repo),
        limits=limits,
    )
    assert result.exit_status == status, result.message
    expected_calls = {"limit:steps": 2, "limit:tokens": 3, "limit:cost": 2, "limit:wall": 0}[status]
    assert len(server.requests) == expected_calls
    assert result.totals.steps == expected_calls


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_follow_up_turn_sends_the_full_history_and_builds_on_the_edit(
    provider: str, calc_repo: Path, model_server_factory
) -> None:
    server = model_server_factory(FIX_SCRIPT)
    env = SandboxEnvironment(calc_repo)
    first = run_agent(make_model(provider, server), env, start(calc_repo))
    assert first.exit_status == "submitted"
    server.add(
        Reply(
            tool_calls=[
                Call("edit_file", {"path": "calc.py", "old_str": "a + b", "new_str": "b + a"})
            ]
        ),
        Reply(tool_calls=[Call("finish", {"summary": "commuted"})]),
    )
    follow_up = [*first.messages, {"role": "user", "content": "Please write b + a instead."}]
    second = run_agent(make_model(provider, server), env, follow_up)
    assert second.exit_status == "submitted"
    assert "+    return b + a" in git(calc_repo, "diff")
    sent = server.requests[len(FIX_SCRIPT)].body
    wire = json.dumps(sent)
    # Every earlier tool call and result is in the follow-up request, then the new prompt.
    for earlier in ("view_file", "edit_file", "add() now adds", "Please write b + a instead."):
        assert earlier in wire
    assert "return a - b" in wire  # the file view from the first turn
    assert len(second.messages) == len(follow_up) + 4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_api_key_stays_out_of_the_sandbox_and_the_step_records(
    provider: str, calc_repo: Path, model_server_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-marlin-test-0123456789abcdef"
    monkeypatch.setenv("MARLIN_TEST_MODEL_KEY", key)
    server = model_server_factory(
        [
            Reply(
                tool_calls=[
                    Call("bash", {"command": "env; cat /proc/self/environ | tr '\\0' '\\n'"})
                ]
            ),
            Reply(tool_calls=[Call("finish", {"summary": "looked"})]),
        ]
    )
    seen: list[Step] = []
    model = make_model(provider, server, api_key_env="MARLIN_TEST_MODEL_KEY")
    result = run_agent(model, SandboxEnvironment(calc_repo), start(calc_repo), on_step=seen.append)
    assert result.exit_status == "submitted"
    env_output = seen[0].tool_outputs[0]
    assert "PATH=" in env_output  # the command really ran and printed its environment
    assert key not in env_output and "MARLIN_TEST_MODEL_KEY" not in env_output
    assert key not in json.dumps([s.as_dict() for s in seen])
    assert key not in json.dumps(result.messages)
    for request in server.requests:
        assert key not in json.dumps(request.body)
        # Anthropic SDK 2.x sends the key as a bearer token; older ones used x-api-key.
        auth = request.headers.get("authorization", "") + request.headers.get("x-api-key", "")
        assert key in auth
