"""The agent loop: ask the model, run the tools it calls, repeat until it finishes or a limit hits.

``run_agent`` repeats ``step``; exits are exceptions carrying their message. A malformed tool
call is not an exit: the error goes back to the model as the tool's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from marlin.agents.providers import Message, Model, ProviderError, ToolCall, ToolCallPart
from marlin.agents.tools import (
    DEFAULT_COMMAND_TIMEOUT,
    TOOL_SPECS,
    Environment,
    Submitted,
    ToolError,
    cap_output,
    execute_tool,
)

ExitStatus = Literal[
    "submitted", "limit:steps", "limit:wall", "limit:tokens", "limit:cost", "error"
]
# What a step record keeps of each tool output (the model itself gets up to DEFAULT_OUTPUT_CAP).
STEP_OUTPUT_CAP = 10_000


class LimitExceeded(Exception):
    def __init__(self, status: ExitStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AgentLimits:
    max_steps: int = 50
    max_wall_seconds: float = 1800.0
    max_tokens: int = 2_000_000
    max_cost_usd: float = 5.0
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT


@dataclass
class Totals:
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Step:
    index: int
    text: str | None
    tool_calls: list[ToolCallPart]
    tool_outputs: list[str]  # one per tool call, capped at STEP_OUTPUT_CAP
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_s: float
    raw_message: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AgentResult:
    exit_status: ExitStatus
    message: str  # the finish summary, the limit that was hit, or the error
    messages: list[Message]  # the full history: the conversation state for a follow-up turn
    steps: list[Step]
    totals: Totals


def run_agent(
    model: Model,
    env: Environment,
    messages: list[Message],
    *,
    limits: AgentLimits = AgentLimits(),  # noqa: B008 - frozen, so sharing the default is safe
    on_step: Callable[[Step], None] = lambda step: None,
) -> AgentResult:
    """Run until ``finish``, a limit, or a provider error. ``messages`` is not modified."""
    history = list(messages)
    steps: list[Step] = []
    totals = Totals()
    started = time.monotonic()
    while True:
        totals.wall_s = time.monotonic() - started
        try:
            check_limits(limits, totals)
            steps.append(step(model, env, history, limits, totals))
            on_step(steps[-1])
        except SubmittedStep as exc:
            steps.append(exc.record)
            on_step(exc.record)
            return _result("submitted", str(exc), history, steps, totals, started)
        except LimitExceeded as exc:
            return _result(exc.status, str(exc), history, steps, totals, started)
        except ProviderError as exc:
            return _result("error", str(exc), history, steps, totals, started)


def check_limits(limits: AgentLimits, totals: Totals) -> None:
    """The one place limits are checked, before each model call."""
    if totals.steps >= limits.max_steps:
        raise LimitExceeded("limit:steps", f"Stopped after {totals.steps} steps (max_steps).")
    if totals.wall_s >= limits.max_wall_seconds:
        raise LimitExceeded(
            "limit:wall", f"Stopped after {totals.wall_s:.0f} s (max_wall_seconds)."
        )
    if totals.input_tokens + totals.output_tokens >= limits.max_tokens:
        raise LimitExceeded(
            "limit:tokens",
            f"Stopped at {totals.input_tokens + totals.output_tokens} tokens (max_tokens).",
        )
    if totals.cost_usd >= limits.max_cost_usd:
        raise LimitExceeded("limit:cost", f"Stopped at ${totals.cost_usd:.4f} (max_cost_usd).")


def step(
    model: Model, env: Environment, history: list[Message], limits: AgentLimits, totals: Totals
) -> Step:
    """One model call and its tool calls; appends to ``history``. Raises Submitted on finish."""
    reply = model.query(history, TOOL_SPECS)
    totals.steps += 1
    totals.input_tokens += reply.input_tokens
    totals.output_tokens += reply.output_tokens
    totals.cost_usd += reply.cost_usd
    history.append(reply.as_message())
    if not reply.tool_calls:
        # A format error: the model must act through tools. Tell it and carry on.
        history.append(
            {"role": "user", "content": "Use one of the tools; call finish when the task is done."}
        )
    outputs: list[str] = []
    submitted: Submitted | None = None
    for call in reply.tool_calls:
        output, is_error, done = _run_tool(env, call, limits)
        submitted = submitted or done
        history.append(
            {"role": "tool", "tool_call_id": call.id, "content": output, "is_error": is_error}
        )
        outputs.append(cap_output(output, STEP_OUTPUT_CAP))
    record = Step(
        index=totals.steps,
        text=reply.text,
        tool_calls=[call.as_message_part() for call in reply.tool_calls],
        tool_outputs=outputs,
        input_tokens=reply.input_tokens,
        output_tokens=reply.output_tokens,
        cost_usd=reply.cost_usd,
        latency_s=reply.latency_s,
        raw_message=reply.raw_message,
    )
    if submitted is not None:
        raise SubmittedStep(record, str(submitted))
    return record


def _run_tool(
    env: Environment, call: ToolCall, limits: AgentLimits
) -> tuple[str, bool, Submitted | None]:
    try:
        return execute_tool(env, call, timeout=limits.command_timeout), False, None
    except Submitted as exc:
        return f"Finished: {exc}", False, exc
    except ToolError as exc:
        return f"Error: {exc}", True, None


class SubmittedStep(Submitted):
    """Carries the finishing step out of ``step`` so that ``on_step`` still sees it."""

    def __init__(self, record: Step, summary: str) -> None:
        super().__init__(summary)
        self.record = record


def _result(
    status: ExitStatus,
    message: str,
    history: list[Message],
    steps: list[Step],
    totals: Totals,
    started: float,
) -> AgentResult:
    totals.wall_s = time.monotonic() - started
    return AgentResult(status, message, history, steps, totals)
