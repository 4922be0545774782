"""OpenAI chat.completions with tools; also any OpenAI-compatible server (vLLM, Ollama, ...)."""

from __future__ import annotations

import json
import time
from typing import Any

from marlin.agents.providers import Message, ModelReply, ProviderSettings, ToolCall, ToolSpec
from marlin.agents.providers.retry import classify_sdk_error, with_retries

# Local OpenAI-compatible servers want no key, but the SDK insists on one.
_NO_KEY = "no-key"


class OpenAIModel:
    def __init__(self, settings: ProviderSettings, *, api_key: str | None) -> None:
        import openai

        self.settings = settings
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=api_key or _NO_KEY,
            max_retries=0,
            timeout=settings.timeout_s,
            default_headers=settings.extra_headers or None,
        )
        self._classify = classify_sdk_error(openai, "openai")

    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelReply:
        request: dict[str, Any] = {
            "model": self.settings.model,
            "messages": to_openai_messages(messages),
        }
        if tools:
            request["tools"] = [to_openai_tool(tool) for tool in tools]
        if self.settings.temperature is not None:
            request["temperature"] = self.settings.temperature
        if self.settings.max_tokens is not None:
            request["max_tokens"] = self.settings.max_tokens
        started = time.monotonic()
        response = with_retries(
            lambda: self._client.chat.completions.create(**request),
            self._classify,
            max_attempts=self.settings.max_attempts,
            base=self.settings.backoff_base_s,
            cap=self.settings.backoff_max_s,
        )
        latency = time.monotonic() - started
        message = response.choices[0].message
        calls = [
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=_parse_arguments(call.function.arguments),
            )
            for call in message.tool_calls or []
            if call.type == "function"
        ]
        usage = response.usage
        input_tokens = usage.prompt_tokens if usage else 0
        output_tokens = usage.completion_tokens if usage else 0
        return ModelReply(
            text=message.content,
            tool_calls=calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=self.settings.cost(input_tokens, output_tokens),
            latency_s=latency,
            raw_message=message.model_dump(exclude_none=True),
        )


def _parse_arguments(raw: str | None) -> dict[str, Any] | str:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return raw or ""
    return value if isinstance(value, dict) else (raw or "")


def to_openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool["description"],
            "parameters": tool["parameters"],
        },
    }


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "system" or message["role"] == "user":
            wire.append({"role": message["role"], "content": message["content"]})
        elif message["role"] == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
            if message.get("tool_calls"):
                item["tool_calls"] = [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {
                            "name": call["name"],
                            "arguments": _dump_arguments(call["arguments"]),
                        },
                    }
                    for call in message["tool_calls"]
                ]
            wire.append(item)
        elif message["role"] == "tool":
            wire.append(
                {
                    "role": "tool",
                    "tool_call_id": message["tool_call_id"],
                    "content": message["content"],
                }
            )
        else:
            raise ValueError(f"Unknown message role {message['role']!r} in the history.")
    return wire


def _dump_arguments(arguments: dict[str, Any] | str) -> str:
    # A malformed call is sent back exactly as the model wrote it.
    return arguments if isinstance(arguments, str) else json.dumps(arguments)
