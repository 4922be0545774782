"""Model providers: one Protocol, a provider-neutral message history, and a name → module map.

The history is a list of plain dicts (the ``Message`` TypedDicts), the same for every provider,
and is what gets persisted between turns::

    {"role": "system" | "user", "content": str}
    {"role": "assistant", "content": str | None, "tool_calls": [{"id", "name", "arguments"}]}
    {"role": "tool", "tool_call_id": str, "content": str, "is_error": bool}

``arguments`` is a dict, or the raw string the model sent when it was not valid JSON (kept so the
conversation can be replayed exactly). Each provider module translates it to its wire format.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Protocol, TypedDict


class ToolCallPart(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any] | str  # str when the model sent arguments that are not a JSON object


class SystemMessage(TypedDict):
    role: Literal["system"]
    content: str


class UserMessage(TypedDict):
    role: Literal["user"]
    content: str


class AssistantMessage(TypedDict):
    role: Literal["assistant"]
    content: str | None
    tool_calls: NotRequired[list[ToolCallPart]]


class ToolMessage(TypedDict):
    role: Literal["tool"]
    tool_call_id: str
    content: str
    is_error: NotRequired[bool]


Message = SystemMessage | UserMessage | AssistantMessage | ToolMessage


class ToolSpec(TypedDict):
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any] | str  # str when the model sent arguments that are not a JSON object

    def as_message_part(self) -> ToolCallPart:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True)
class ModelReply:
    text: str | None
    tool_calls: list[ToolCall]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    raw_message: dict[str, Any] = field(default_factory=dict)

    def as_message(self) -> AssistantMessage:
        message: AssistantMessage = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.as_message_part() for call in self.tool_calls]
        return message


class Model(Protocol):
    def query(self, messages: list[Message], tools: list[ToolSpec]) -> ModelReply: ...


class ModelFactory(Protocol):
    """What ``PROVIDERS`` names: a class (or function) that builds a Model from settings."""

    def __call__(self, settings: ProviderSettings, *, api_key: str | None) -> Model: ...


class ProviderError(RuntimeError):
    """The provider could not answer: a non-retryable error, or retries ran out."""


@dataclass(frozen=True)
class ProviderSettings:
    provider: str
    model: str
    base_url: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    input_price_per_mtok: float = 0.0  # USD per million input tokens
    output_price_per_mtok: float = 0.0
    api_key_env: str | None = None
    api_key_file: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProviderSettings:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown provider settings {unknown}; known: {sorted(known)}.")
        for required in ("provider", "model"):
            if not data.get(required):
                raise ValueError(f"Provider settings need '{required}'.")
        return cls(**data)

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_price_per_mtok + output_tokens * self.output_price_per_mtok
        ) / 1e6


PROVIDERS: dict[str, str] = {
    "openai": "marlin.agents.providers.openai.OpenAIModel",
    "anthropic": "marlin.agents.providers.anthropic.AnthropicModel",
}

_SDK_HINTS = {
    "openai": "pip install openai",
    "anthropic": "pip install anthropic",
}


def load_model(settings: ProviderSettings, *, api_key: str | None) -> Model:
    """Build the provider named in ``settings``; its SDK is imported only now."""
    dotted = PROVIDERS.get(settings.provider)
    if dotted is None:
        raise ValueError(
            f"Unknown provider {settings.provider!r}; choose one of {sorted(PROVIDERS)}."
        )
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = _SDK_HINTS.get(settings.provider, "install its SDK")
        raise ProviderError(
            f"Provider {settings.provider!r} needs the {exc.name!r} package: {hint}."
        ) from exc
    factory: ModelFactory = getattr(module, attr)
    return factory(settings, api_key=api_key)
