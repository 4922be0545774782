"""Anthropic Messages API with tool_use / tool_result blocks."""

from __future__ import annotations

import time
from typing import Any

from marlin.agents.providers import (
    AssistantMessage,
    Message,
    ModelReply,
    ProviderSettings,
    ToolCall,
    ToolSpec,
)
from marlin.agents.providers.retry import classify_sdk_error, with_retries

# The Messages API requires max_tokens on every request.
DEFAULT_MAX_TOKENS = 4096
# Without an explicit value the SDK reads ANTHROPIC_API_KEY from the worker's environment: a key
# the agent definition never named, which our redaction would not know about. Local servers
# that need no key accept any value.
_NO_KEY = "no-key"


class AnthropicModel:
    def __init__(self, settings: ProviderSettings, *, api_key: str | None) -> None:
        import anthropic

        self.settings = settings
        self._client = anthropic.Anthropic(
            base_url=settings.base_url,
            api_key=api_key or _NO_KEY,
            max_retries=0,
            timeout=settings.timeout_s,
            default_headers=settings.extra_headers or None,
        )
        self._classify = classify_sdk_error(anthropic, "anthropic")

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelReply:
        system, wire = to_anthropic_messages(messages)
        request: dict[str, Any] = {
            "model": self.settings.model,
            "messages": wire,
            "max_tokens": self.settings.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = [to_anthropic_tool(tool) for tool in tools]
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        started = time.monotonic()
        response = with_retries(
            lambda: self._client.messages.create(**request),
            self._classify,
            max_attempts=self.settings.max_attempts,
            base=self.settings.backoff_base_s,
            cap=self.settings.backoff_max_s,
        )
        latency = time.monotonic() - started
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                arguments = block.input if isinstance(block.input, dict) else str(block.input)
                calls.append(ToolCall(id=block.id, name=block.name, arguments=arguments))
        input_tokens = response.usage.input_tokens
        output_tokens = response.usage.output_tokens
        return ModelReply(
            text="\n".join(texts) if texts else None,
            tool_calls=calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.settings.cost(input_tokens, output_tokens),
            latency_s=latency,
            raw_message={
                "role": "assistant",
                "content": [
                    b.model_dump(exclude_none=True, warnings=False) for b in response.content
                ],
            },
        )


def to_anthropic_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "name": tool["name"],
        "description": tool["description"],
        "input_schema": tool["parameters"],
    }


def to_anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Return (system prompt, messages); tool results become user turns, and consecutive turns of
    one role are merged because the API wants user and assistant to alternate."""
    system: list[str] = []
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "system":
            system.append(message["content"])
            continue
        if message["role"] == "user":
            wire_role, blocks = "user", [{"type": "text", "text": message["content"]}]
        elif message["role"] == "assistant":
            wire_role, blocks = "assistant", _assistant_blocks(message)
        elif message["role"] == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message["tool_call_id"],
                "content": message["content"],
            }
            if message.get("is_error"):
                result["is_error"] = True
            wire_role, blocks = "user", [result]
        else:
            raise ValueError(f"Unknown message role {message['role']!r} in the history.")
        if wire and wire[-1]["role"] == wire_role:
            wire[-1]["content"].extend(blocks)
        else:
            wire.append({"role": wire_role, "content": blocks})
    return "\n\n".join(system), wire


def _assistant_blocks(message: AssistantMessage) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        arguments = call["arguments"]
        # tool_use.input must be an object; keep a malformed call's text so the model sees it.
        tool_input = arguments if isinstance(arguments, dict) else {"raw_arguments": arguments}
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": tool_input}
        )
    if not blocks:
        blocks.append({"type": "text", "text": "(no content)"})
    return blocks
