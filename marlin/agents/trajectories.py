"""A command-line agent's own record of its work, read into steps like the built-in loop's.

Each CLI writes its trajectory in its own format:

* ``claude-stream-json``: ``claude -p --output-format stream-json --verbose`` on stdout, one JSON
  event a line (``system``/init with the session id, ``assistant`` messages with text and
  tool_use blocks, ``user`` messages with tool_result blocks, a closing ``result`` with the
  turn's usage and cost);
* ``codex-json``: ``codex exec --json`` on stdout (``thread.started`` with the thread id,
  ``item.completed`` items: agent messages, reasoning, command executions, file changes; a
  ``turn.completed`` with usage);
* ``aider-history``: aider's chat history file (Markdown: ``#### `` starts the user's message,
  ``> `` lines are aider's own output, the rest is the model's reply);
* ``mini-swe-agent``: mini-swe-agent's trajectory file (JSON: ``messages`` with the assistant's
  tool calls and the tool results, each reply's usage under ``extra.response``);
* ``text``: anything else; the whole output is one step.

A line or record that does not parse is kept as text, never dropped, and never fails the turn.
Tool names are mapped to the built-in loop's (``bash``, ``view_file``, ``edit_file``,
``write_file``) so that a tool's name alone does not tell an expert which CLI ran.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

TrajectoryFormat = Literal[
    "text", "claude-stream-json", "codex-json", "aider-history", "mini-swe-agent"
]
FORMATS: tuple[TrajectoryFormat, ...] = (
    "text",
    "claude-stream-json",
    "codex-json",
    "aider-history",
    "mini-swe-agent",
)
# The CLIs' tool names, as the built-in loop calls the same tools.
NEUTRAL_TOOL_NAMES = {
    "Bash": "bash",
    "exec_command": "bash",
    "shell": "bash",
    "command_execution": "bash",
    "Read": "view_file",
    "Edit": "edit_file",
    "MultiEdit": "edit_file",
    "apply_patch": "edit_file",
    "file_change": "edit_file",
    "Write": "write_file",
}
MAX_OUTPUT_CHARS = 20_000  # per tool output kept in a step


@dataclass
class ParsedStep:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_outputs: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0

    def content(self) -> dict[str, Any]:
        """The step as saved: the same keys as the built-in loop's steps."""
        return {"text": self.text, "tool_calls": self.tool_calls, "tool_outputs": self.tool_outputs}


@dataclass
class Trajectory:
    steps: list[ParsedStep] = field(default_factory=list)
    session_id: str | None = None  # what a follow-up turn resumes
    input_tokens: int = 0  # as the CLI counted them (the proxy's count is the one billed)
    output_tokens: int = 0
    cost_usd: float | None = None
    final_text: str = ""
    unparsed: int = 0  # lines or records kept as text because they did not parse


def parse_trajectory(fmt: str, output: str, file_text: str | None = None) -> Trajectory:
    """The steps of one turn. ``output`` is the CLI's standard output, ``file_text`` the part of
    its trajectory file (aider's history, mini-swe-agent's JSON) written during the turn."""
    if fmt == "claude-stream-json":
        return _claude(output)
    if fmt == "codex-json":
        return _codex(output)
    if fmt == "aider-history":
        return _aider(file_text or "")
    if fmt == "mini-swe-agent":
        return _mini(file_text or "")
    if fmt != "text":
        raise ValueError(f"unknown trajectory format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return Trajectory(steps=[ParsedStep(text=output)] if output.strip() else [])


def _tool_name(name: object) -> str:
    text = str(name or "tool")
    return NEUTRAL_TOOL_NAMES.get(text, text)


def _clip(text: object) -> str:
    value = text if isinstance(text, str) else json.dumps(text)
    if len(value) <= MAX_OUTPUT_CHARS:
        return value
    return value[:MAX_OUTPUT_CHARS] + f"\n[... {len(value) - MAX_OUTPUT_CHARS} more characters]"


def _json_lines(output: str) -> list[dict[str, Any] | str]:
    """Each line as a JSON object, or as the text it is when it is not one."""
    records: list[dict[str, Any] | str] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            records.append(line)
            continue
        records.append(record if isinstance(record, dict) else line)
    return records


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text_step(trajectory: Trajectory, line: str) -> None:
    trajectory.unparsed += 1
    last = trajectory.steps[-1] if trajectory.steps else None
    if last is not None and not last.tool_calls and last.text.startswith("[output] "):
        last.text += "\n" + line
    else:
        trajectory.steps.append(ParsedStep(text="[output] " + line))


def _claude(output: str) -> Trajectory:
    trajectory = Trajectory()
    by_message: dict[str, ParsedStep] = {}
    by_call: dict[str, ParsedStep] = {}
    for record in _json_lines(output):
        if isinstance(record, str):
            _text_step(trajectory, record)
            continue
        kind = record.get("type")
        if isinstance(record.get("session_id"), str):
            trajectory.session_id = record["session_id"]
        message = _dict(record.get("message"))
        blocks = _list(message.get("content"))
        if kind == "assistant":
            # One API message arrives as several events (a text block, then a tool_use block).
            key = str(message.get("id") or len(trajectory.steps))
            step = by_message.get(key)
            if step is None:
                step = by_message[key] = ParsedStep()
                trajectory.steps.append(step)
            for block in blocks:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    step.text = "\n\n".join(t for t in (step.text, block.get("text") or "") if t)
                elif block.get("type") == "tool_use":
                    step.tool_calls.append(
                        {"name": _tool_name(block.get("name")), "arguments": block.get("input")}
                    )
                    by_call[str(block.get("id"))] = step
        elif kind == "user":
            for block in blocks:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    target = by_call.get(str(block.get("tool_use_id")))
                    if target is not None:
                        target.tool_outputs.append(_clip(_tool_result_text(block)))
        elif kind == "result":
            usage = _dict(record.get("usage"))
            trajectory.input_tokens = (
                _int(usage.get("input_tokens"))
                + _int(usage.get("cache_creation_input_tokens"))
                + _int(usage.get("cache_read_input_tokens"))
            )
            trajectory.output_tokens = _int(usage.get("output_tokens"))
            cost = record.get("total_cost_usd")
            trajectory.cost_usd = float(cost) if isinstance(cost, int | float) else None
            trajectory.final_text = str(record.get("result") or "")
    return trajectory


def _tool_result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _codex(output: str) -> Trajectory:
    trajectory = Trajectory()
    for record in _json_lines(output):
        if isinstance(record, str):
            _text_step(trajectory, record)
            continue
        kind = record.get("type")
        if kind == "thread.started" and isinstance(record.get("thread_id"), str):
            trajectory.session_id = record["thread_id"]
        elif kind == "turn.completed":
            usage = _dict(record.get("usage"))
            trajectory.input_tokens += _int(usage.get("input_tokens"))
            trajectory.output_tokens += _int(usage.get("output_tokens"))
        elif kind in ("turn.failed", "error"):
            error = _dict(record.get("error")) or record
            trajectory.steps.append(ParsedStep(text=f"[error] {error.get('message', '')}"))
        elif kind == "item.completed" and isinstance(record.get("item"), dict):
            step = _codex_item(record["item"])
            if step is not None:
                trajectory.steps.append(step)
                if step.text and not step.tool_calls:
                    trajectory.final_text = step.text
    return trajectory


def _codex_item(item: dict[str, Any]) -> ParsedStep | None:
    kind = item.get("type")
    if kind in ("agent_message", "reasoning"):
        text = str(item.get("text") or "")
        return ParsedStep(text=text if kind == "agent_message" else f"[reasoning] {text}")
    if kind == "command_execution":
        output = str(item.get("aggregated_output") or "")
        code = item.get("exit_code")
        return ParsedStep(
            tool_calls=[{"name": "bash", "arguments": {"command": item.get("command")}}],
            tool_outputs=[_clip(output + (f"\n[exit code {code}]" if code is not None else ""))],
        )
    if kind == "file_change":
        return ParsedStep(
            tool_calls=[{"name": "edit_file", "arguments": {"changes": item.get("changes")}}],
            tool_outputs=[str(item.get("status") or "")],
        )
    if kind == "error":
        return ParsedStep(text=f"[error] {item.get('message', '')}")
    if kind in ("mcp_tool_call", "web_search", "todo_list"):
        return ParsedStep(tool_calls=[{"name": str(kind), "arguments": item}])
    return None


_AIDER_TOKENS = re.compile(
    r"Tokens: ([\d.]+)(k?) sent(?:, [\d.]+k? cache \w+)*, ([\d.]+)(k?) received", re.IGNORECASE
)


def _tokens(number: str, thousands: str) -> int:
    return round(float(number) * (1000 if thousands else 1))


def _aider(history: str) -> Trajectory:
    """aider's chat history: ``#### `` lines are the user's, ``> `` lines aider's own output
    (edits applied, commands run, token counts), the rest the model's reply."""
    trajectory = Trajectory()
    step: ParsedStep | None = None
    fenced = False  # inside a code block of the reply (its ">>>>>>> REPLACE" is the model's)
    for line in history.splitlines():
        if not fenced and line.startswith("# aider chat started at"):
            continue
        if not fenced and line.startswith("#### "):
            step = None  # the user's message: the model's next reply is a new step
            continue
        if not fenced and (line.startswith("> ") or line == ">"):
            said = line[1:].strip()
            tokens = _AIDER_TOKENS.search(said)
            if step is None or not said:
                continue  # aider's start-up banner, before any reply
            if tokens:
                step.input_tokens += _tokens(tokens.group(1), tokens.group(2))
                step.output_tokens += _tokens(tokens.group(3), tokens.group(4))
            else:
                step.tool_outputs.append(said)
            continue
        if step is None or step.tool_outputs:
            if not line.strip():
                continue
            step = ParsedStep()
            trajectory.steps.append(step)
        if line.lstrip().startswith("```"):
            fenced = not fenced
        step.text = f"{step.text}\n{line}" if step.text else line
    for parsed in trajectory.steps:
        parsed.text = parsed.text.strip()
        if parsed.tool_outputs:
            parsed.tool_calls = [{"name": "edit_file", "arguments": "edits in the reply"}]
    trajectory.input_tokens = sum(s.input_tokens for s in trajectory.steps)
    trajectory.output_tokens = sum(s.output_tokens for s in trajectory.steps)
    trajectory.final_text = trajectory.steps[-1].text if trajectory.steps else ""
    return trajectory


def _mini(text: str) -> Trajectory:
    trajectory = Trajectory()
    if not text.strip():
        return trajectory
    try:
        data = json.loads(text)
    except ValueError:
        _text_step(trajectory, text[:MAX_OUTPUT_CHARS])
        return trajectory
    messages = data.get("messages") if isinstance(data, dict) else None
    by_call: dict[str, ParsedStep] = {}
    last: ParsedStep | None = None
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        extra = _dict(message.get("extra"))
        if role == "assistant":
            last = ParsedStep(text=str(message.get("content") or ""))
            for call in message.get("tool_calls") or []:
                function = call.get("function", {}) if isinstance(call, dict) else {}
                arguments: Any = function.get("arguments")
                try:
                    arguments = json.loads(arguments)
                except (TypeError, ValueError):
                    pass
                last.tool_calls.append(
                    {"name": _tool_name(function.get("name")), "arguments": arguments}
                )
                by_call[str(call.get("id"))] = last
            response = _dict(extra.get("response"))
            usage = _dict(response.get("usage"))
            last.input_tokens = _int(usage.get("prompt_tokens"))
            last.output_tokens = _int(usage.get("completion_tokens"))
            trajectory.steps.append(last)
        elif role == "tool":
            target = by_call.get(str(message.get("tool_call_id"))) or last
            if target is not None:
                target.tool_outputs.append(_clip(message.get("content") or ""))
        elif role == "user" and last is not None:
            # Text-based mini-swe-agent configs send the command's output as a user message.
            last.tool_outputs.append(_clip(message.get("content") or ""))
        elif role == "exit":
            trajectory.final_text = str(extra.get("exit_status") or "")
    info = data.get("info") if isinstance(data, dict) else None
    stats = info.get("model_stats") if isinstance(info, dict) else None
    if isinstance(stats, dict) and isinstance(stats.get("instance_cost"), int | float):
        trajectory.cost_usd = float(stats["instance_cost"])
    trajectory.input_tokens = sum(s.input_tokens for s in trajectory.steps)
    trajectory.output_tokens = sum(s.output_tokens for s in trajectory.steps)
    return trajectory


def summary(trajectory: Trajectory, max_output: int = 2000) -> str:
    """The turn as text, for a follow-up prompt of a CLI that cannot resume its session."""
    parts: list[str] = []
    for step in trajectory.steps:
        if step.text:
            parts.append(step.text)
        for call in step.tool_calls:
            arguments = call.get("arguments")
            shown = arguments if isinstance(arguments, str) else json.dumps(arguments)
            parts.append(f"[{call.get('name')}] {shown}")
        for output in step.tool_outputs:
            clipped = output if len(output) <= max_output else output[:max_output] + " [...]"
            parts.append(f"[output] {clipped}")
    return "\n\n".join(parts)
