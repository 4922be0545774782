"""What the demo's scripted model server answers: two personas that really drive Marlin's agent
loop (tool calls that read, edit and test the ledgerlite repository, then ``finish``).

``demo-careful`` (the demo's OpenAI-compatible agent) reads the code, writes the good solution of
a demo task, runs the tests and finishes; ``demo-hasty`` (the Anthropic one) writes the flawed
solution at once and finishes. A task the demo does not know (one a newcomer writes) and every
follow-up get a small, honest change: the careful one notes the request and its plan in
``NOTES.md``, the hasty one appends the request to the README, so both runs produce a candidate
and a comparison. The answer depends only on the request (the
conversation so far), so the server needs no state and serves any number of runs at once.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from marlin.demo.sample_repo_files import TASKS
from marlin.devtools.model_server import Call, Entry, Reply

CAREFUL = "demo-careful"
HASTY = "demo-hasty"
NUDGE = "Use one of the tools"  # the loop's reminder when a reply calls no tool
TEST_COMMAND = "python3 -m pytest -q 2>&1 | tail -3"

FORMAT_TESTS_GOOD = """import pytest

from ledgerlite.money import format_cents


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "$0.00"), (1, "$0.01"), (123456789, "$1,234,567.89"), (-250, "-$2.50")],
)
def test_format_cents_edge_cases(cents, text):
    assert format_cents(cents) == text


def test_format_cents_custom_symbol():
    assert format_cents(1999, symbol="EUR ") == "EUR 19.99"
"""
FORMAT_TESTS_HASTY = """from ledgerlite.money import format_cents


def test_zero():
    assert format_cents(0)
"""


def _text(content: Any) -> str:
    """The text of a message's content, in either provider's shape."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _is_prompt(message: dict[str, Any]) -> bool:
    """A user message with text of its own. Anthropic sends tool results as a user message,
    and a follow-up's prompt rides in that same message after the last turn's results."""
    if message.get("role") != "user":
        return False
    content = message.get("content")
    if isinstance(content, list):
        content = [p for p in content if isinstance(p, dict) and p.get("type") != "tool_result"]
    text = _text(content)
    return bool(text) and not text.startswith(NUDGE)


def conversation_state(body: dict[str, Any]) -> tuple[list[str], int]:
    """(every prompt so far, the model replies since the last one) of a request."""
    messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
    prompts: list[str] = []
    steps = 0
    for message in messages:
        if _is_prompt(message):
            prompts.append(_text(message.get("content")))
            steps = 0
        elif message.get("role") == "assistant":
            steps += 1
    return prompts, steps


def _known_task(prompt: str) -> dict[str, Any] | None:
    return next((task for task in TASKS if task["prompt"].strip() == prompt.strip()), None)


def _solution(task: dict[str, Any], persona: str) -> dict[str, str]:
    if task["key"] == "format-tests":
        body = FORMAT_TESTS_GOOD if persona == CAREFUL else FORMAT_TESTS_HASTY
        return {"tests/test_format_edge_cases.py": body}
    return dict(task["candidates"]["good" if persona == CAREFUL else "flawed"])


def _note(prompt: str, turn: int) -> str:
    first = re.sub(r"\s+", " ", prompt).strip()[:160]
    return f"- Turn {turn}: {first}"


def _plan(prompts: list[str], persona: str) -> list[Reply]:
    """Every reply of this turn, in order."""
    prompt, turn = prompts[-1], len(prompts)
    task = _known_task(prompt) if turn == 1 else None
    if task is not None:
        files = _solution(task, persona)
        writes = [Call("write_file", {"path": p, "content": c}) for p, c in files.items()]
        if persona == HASTY:
            return [
                Reply(text="This is a quick one.", tool_calls=writes),
                Reply(tool_calls=[Call("finish", {"summary": f"Done: {task['title']}."})]),
            ]
        first = next(iter(files))
        return [
            Reply(
                text="I'll read the code the task is about first.",
                tool_calls=[Call("view_file", {"path": first})],
            ),
            Reply(text="Writing the change and a test for it.", tool_calls=writes),
            Reply(
                text="Running the tests.",
                tool_calls=[Call("bash", {"command": TEST_COMMAND})],
            ),
            Reply(tool_calls=[Call("finish", {"summary": f"{task['title']}, with a test."})]),
        ]
    note = _note(prompt, turn)
    if persona == HASTY:
        line = shlex.quote(f"\n{note}")
        append = Call("bash", {"command": f"printf '%s\\n' {line} >> README.md"})
        return [
            Reply(text="Adding it to the README.", tool_calls=[append]),
            Reply(tool_calls=[Call("finish", {"summary": "Added the request to the README."})]),
        ]
    plan = shlex.quote(f"{note}\n  Plan: read the code it touches, change it, add a test.")
    append = Call("bash", {"command": f"printf '%s\\n' {plan} >> NOTES.md && tail -2 NOTES.md"})
    return [
        Reply(
            text="Looking at the repository first.",
            tool_calls=[Call("bash", {"command": "ls -R ledgerlite tests"})],
        ),
        Reply(text="I'll record what was asked and how I would do it.", tool_calls=[append]),
        Reply(
            text="Checking that nothing else broke.",
            tool_calls=[Call("bash", {"command": TEST_COMMAND})],
        ),
        Reply(
            tool_calls=[Call("finish", {"summary": "Recorded the request and a plan in NOTES.md."})]
        ),
    ]


def answer(path: str, body: dict[str, Any]) -> Entry | None:
    """The scripted model server's ``side`` answer: the next reply of the conversation in
    ``body`` (None for a request that is not a conversation, which the server then refuses)."""
    prompts, steps = conversation_state(body)
    if not prompts:
        return None
    persona = HASTY if str(body.get("model", "")).startswith(HASTY) else CAREFUL
    plan = _plan(prompts, persona)
    if steps < len(plan):
        return plan[steps]
    return plan[-1]  # the model was asked again after finishing: finish again
