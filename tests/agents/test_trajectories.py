"""Trajectory parsers, follow-up commands and the agent home, on the CLIs' real formats (lines
as Claude Code 2.1, Codex CLI 0.171, aider 0.86 and mini-swe-agent 2.4 write them; the end-to-end
runs are in test_cli_agents.py) and on output that is broken or hostile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marlin.agents.clis import read_text, trajectory_path, turn_command, written_during
from marlin.agents.forms import SettingsError, validate_agent_settings
from marlin.agents.trajectories import parse_trajectory, summary

CLAUDE = [
    {"type": "system", "subtype": "init", "session_id": "s-1", "tools": ["Bash", "Write"]},
    {
        "type": "assistant",
        "message": {"id": "msg_2", "content": [{"type": "text", "text": "Creating it."}]},
    },
    {
        "type": "assistant",
        "message": {
            "id": "msg_2",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Write", "input": {"file_path": "a"}}
            ],
        },
    },
    {
        "type": "user",
        "message": {
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "created"}]
        },
    },
    {
        "type": "assistant",
        "message": {"id": "msg_3", "content": [{"type": "text", "text": "Done"}]},
    },
    {
        "type": "result",
        "session_id": "s-1",
        "total_cost_usd": 0.0018,
        "result": "Done",
        "usage": {"input_tokens": 200, "cache_read_input_tokens": 100, "output_tokens": 60},
    },
]


def test_claude_stream_json_merges_a_message_and_attaches_tool_results() -> None:
    output = "\n".join(json.dumps(e) for e in CLAUDE[:3]) + "\nnot json at all\n"
    output += "\n".join(json.dumps(e) for e in CLAUDE[3:])
    parsed = parse_trajectory("claude-stream-json", output)
    assert parsed.session_id == "s-1"
    assert [s.content() for s in parsed.steps] == [
        {
            "text": "Creating it.",
            "tool_calls": [{"name": "write_file", "arguments": {"file_path": "a"}}],
            "tool_outputs": ["created"],
        },
        {"text": "[output] not json at all", "tool_calls": [], "tool_outputs": []},
        {"text": "Done", "tool_calls": [], "tool_outputs": []},
    ]
    assert (parsed.input_tokens, parsed.output_tokens, parsed.unparsed) == (300, 60, 1)
    assert parsed.final_text == "Done" and parsed.cost_usd == pytest.approx(0.0018)


def test_codex_json_items_usage_and_failures() -> None:
    events = [
        {"type": "thread.started", "thread_id": "t-9"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Making it."}},
        {
            "type": "item.completed",
            "item": {
                "type": "command_execution",
                "command": "/bin/sh -lc 'echo hi > a'",
                "aggregated_output": "",
                "exit_code": 0,
            },
        },
        {"type": "item.completed", "item": {"type": "mystery", "x": 1}},
        {"type": "turn.completed", "usage": {"input_tokens": 200, "output_tokens": 40}},
        {"type": "turn.failed", "error": {"message": "stream disconnected"}},
    ]
    parsed = parse_trajectory("codex-json", "\n".join(json.dumps(e) for e in events))
    assert parsed.session_id == "t-9" and (parsed.input_tokens, parsed.output_tokens) == (200, 40)
    assert [s.text for s in parsed.steps] == ["Making it.", "", "[error] stream disconnected"]
    assert parsed.steps[1].tool_calls == [
        {"name": "bash", "arguments": {"command": "/bin/sh -lc 'echo hi > a'"}}
    ]
    assert parsed.steps[1].tool_outputs == ["\n[exit code 0]"]


AIDER = """
# aider chat started at 2026-11-30 21:13:40

> Aider v0.86.2
> Model: openai/fake-model with diff edit format

#### Create hello.txt saying hello

I'll create the file.

hello.txt
```
<<<<<<< SEARCH
=======
hello
>>>>>>> REPLACE
```

> Tokens: 2.3k sent, 22 received.
> Applied edit to hello.txt
"""


def test_aider_history_replies_outputs_and_token_lines() -> None:
    parsed = parse_trajectory("aider-history", "ignored stdout", AIDER)
    assert len(parsed.steps) == 1
    step = parsed.steps[0]
    assert step.text.startswith("I'll create the file.") and "hello\n>>>>>>> REPLACE" in step.text
    assert step.tool_outputs == ["Applied edit to hello.txt"]
    assert (step.input_tokens, step.output_tokens) == (2300, 22)
    assert "Aider v0.86.2" not in json.dumps(step.content())  # the banner is not a step


def test_mini_swe_agent_trajectory_and_a_broken_file() -> None:
    data = {
        "info": {"model_stats": {"instance_cost": 0.5}},
        "messages": [
            {"role": "system", "content": "You are..."},
            {"role": "user", "content": "Please solve this issue"},
            {
                "role": "assistant",
                "content": "Creating it.",
                "tool_calls": [
                    {"id": "call_1", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
                ],
                "extra": {"response": {"usage": {"prompt_tokens": 11, "completion_tokens": 3}}},
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
            {"role": "exit", "content": "", "extra": {"exit_status": "Submitted"}},
        ],
    }
    parsed = parse_trajectory("mini-swe-agent", "", json.dumps(data))
    assert [s.content() for s in parsed.steps] == [
        {
            "text": "Creating it.",
            "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}],
            "tool_outputs": ["a.txt"],
        }
    ]
    assert (parsed.input_tokens, parsed.output_tokens, parsed.cost_usd) == (11, 3, 0.5)
    assert parsed.final_text == "Submitted"
    assert "[bash]" in summary(parsed) and "[output] a.txt" in summary(parsed)
    broken = parse_trajectory("mini-swe-agent", "", '{"messages": [')
    assert broken.unparsed == 1 and broken.steps[0].text.startswith("[output] {")
    assert parse_trajectory("mini-swe-agent", "", None).steps == []
    with pytest.raises(ValueError, match="unknown trajectory format 'yaml'"):
        parse_trajectory("yaml", "")


def test_follow_up_commands() -> None:
    argv = ["claude", "-p"]
    resume = ["claude", "-p", "--resume", "{session_id}"]
    assert turn_command(argv, resume, earlier_turn=False, session_id=None).argv == argv
    resumed = turn_command(argv, resume, earlier_turn=True, session_id="s-1")
    assert resumed.argv == ["claude", "-p", "--resume", "s-1"] and resumed.resumed
    # No session recorded (the first turn crashed): back to the transcript.
    assert not turn_command(argv, resume, earlier_turn=True, session_id=None).resumed
    # A bash command line gets the id as one quoted word, whatever the CLI printed as its id.
    line = turn_command(
        "x", "codex exec resume {session_id} -", earlier_turn=True, session_id="a'; rm -rf ~ #"
    )
    assert line.argv == "codex exec resume 'a'\\''; rm -rf ~ #' -"
    # No placeholder (aider): the resume command on every follow-up.
    assert turn_command(
        "aider", "aider --restore-chat-history", earlier_turn=True, session_id=None
    ).resumed


def test_trajectory_files_stay_in_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert trajectory_path(home, "/home/agent/t.json") == (home / "t.json").resolve()
    assert trajectory_path(home, "../outside") is None
    assert trajectory_path(home, "") is None
    (tmp_path / "secret").write_text("host file")
    (home / "t.json").symlink_to(tmp_path / "secret")  # planted by the agent
    assert read_text(home / "t.json") is None
    assert written_during("old\n", "old\nnew\n") == "new\n"
    assert written_during("old\n", "rewritten\n") == "rewritten\n"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"argv": ["x"], "trajectory": "yaml"}, "trajectory"),
        ({"argv": ["x"], "trajectory_file": "../../etc/passwd"}, "under the agent's home"),
        ({"argv": ["x"], "resume_argv": ["x", ""]}, "non-empty strings"),
    ],
)
def test_bad_cli_settings_are_refused_with_a_reason(given: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        validate_agent_settings("command", given)


def test_the_shipped_definitions_are_valid_settings() -> None:
    shipped = json.loads(
        (Path(__file__).parents[2] / "marlin" / "agents" / "cli_definitions.json").read_text()
    )
    assert set(shipped) == {"claude-code", "codex", "aider", "mini-swe-agent"}
    for definition in shipped.values():
        saved = validate_agent_settings("command", definition["settings"])
        assert saved["network"] == "proxy" and saved["trajectory"] != "text"
