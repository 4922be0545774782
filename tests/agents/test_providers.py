"""Providers against the fake model server over real HTTP: wire format, retries, timeouts, keys."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from marlin.agents.providers import ProviderError, ProviderSettings, load_model
from marlin.agents.providers.retry import parse_retry_after
from marlin.agents.secrets import SecretError, redact, resolve_api_key
from marlin.agents.tools import TOOL_SPECS
from marlin.devtools.model_server import Call, Fail, FakeModelServer, Hang, Reply

HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Fix it."},
    {
        "role": "assistant",
        "content": "Looking.",
        "tool_calls": [
            {"id": "t1", "name": "view_file", "arguments": {"path": "a.py"}},
            {"id": "t2", "name": "bash", "arguments": '{"command": '},
        ],
    },
    {"role": "tool", "tool_call_id": "t1", "content": "1  x = 1"},
    {"role": "tool", "tool_call_id": "t2", "content": "Error: bad JSON", "is_error": True},
]


def model_for(provider: str, server: FakeModelServer, **overrides: Any):
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    settings = {
        "provider": provider,
        "model": "fake-model",
        "base_url": base_url,
        "backoff_base_s": 0.01,
    }
    settings.update(overrides)
    return load_model(ProviderSettings.from_dict(settings), api_key="sk-test-key")


def test_openai_gets_the_history_in_its_wire_format(model_server_factory) -> None:
    server = model_server_factory([Reply(text="ok", input_tokens=1000, output_tokens=500)])
    model = model_for(
        "openai", server, input_price_per_mtok=2.0, output_price_per_mtok=8.0, temperature=0.2
    )
    reply = model.query(HISTORY, TOOL_SPECS)
    body = server.requests[0].body
    assert body["model"] == "fake-model" and body["temperature"] == 0.2
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    calls = body["messages"][2]["tool_calls"]
    assert calls[0]["function"] == {"name": "view_file", "arguments": '{"path": "a.py"}'}
    assert (
        calls[1]["function"]["arguments"] == '{"command": '
    )  # replayed exactly as the model sent it
    assert body["tools"][0]["function"]["name"] == "bash"
    assert reply.text == "ok" and reply.cost_usd == pytest.approx((1000 * 2 + 500 * 8) / 1e6)


def test_anthropic_gets_system_apart_and_tool_results_as_one_user_turn(
    model_server_factory,
) -> None:
    server = model_server_factory([Reply(tool_calls=[Call("bash", {"command": "ls"})])])
    reply = model_for("anthropic", server).query(HISTORY, TOOL_SPECS)
    body = server.requests[0].body
    assert body["system"] == "Be brief."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    uses = [b for b in body["messages"][1]["content"] if b["type"] == "tool_use"]
    assert uses[1]["input"] == {"raw_arguments": '{"command": '}
    results = body["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == ["t1", "t2"] and results[1]["is_error"] is True
    assert body["tools"][0]["input_schema"]["required"] == ["command"]
    assert body["max_tokens"] == 4096
    assert reply.tool_calls[0].name == "bash" and reply.tool_calls[0].arguments == {"command": "ls"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_it_retries_a_rate_limit_after_the_retry_after_delay(
    provider: str, model_server_factory
) -> None:
    server = model_server_factory([Fail(429, retry_after=0.5), Fail(503), Reply(text="finally")])
    reply = model_for(provider, server, max_attempts=3).query(
        [{"role": "user", "content": "hi"}], []
    )
    assert reply.text == "finally"
    assert len(server.requests) == 3
    assert server.requests[1].at - server.requests[0].at >= 0.5


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_hanging_server_ends_in_a_provider_error_within_bounded_time(
    provider: str, model_server_factory
) -> None:
    server = model_server_factory([Hang(5), Hang(5)])
    model = model_for(provider, server, timeout_s=0.4, max_attempts=2)
    started = time.monotonic()
    with pytest.raises(
        ProviderError, match="Gave up after 2 attempts; last error: request timed out"
    ):
        model.query([{"role": "user", "content": "hi"}], [])
    assert time.monotonic() - started < 3
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_client_error_is_not_retried_and_says_what_went_wrong(
    provider: str, model_server_factory
) -> None:
    server = model_server_factory([Fail(401, message="invalid key")])
    with pytest.raises(ProviderError, match=r"HTTP 401 \(check the API key\).*invalid key"):
        model_for(provider, server).query([{"role": "user", "content": "hi"}], [])
    assert len(server.requests) == 1


def test_a_refused_connection_is_retried_then_reported() -> None:
    server = FakeModelServer()
    base_url = server.openai_base_url
    server.stop()  # nothing listens on that port any more
    settings = ProviderSettings(
        provider="openai", model="m", base_url=base_url, max_attempts=2, backoff_base_s=0.01
    )
    with pytest.raises(ProviderError, match="connection error"):
        load_model(settings, api_key=None).query([{"role": "user", "content": "hi"}], [])


def test_unknown_providers_and_settings_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="Unknown provider 'gemini'; choose one of"):
        load_model(ProviderSettings(provider="gemini", model="m"), api_key=None)
    with pytest.raises(ValueError, match=r"Unknown provider settings \['temprature'\]"):
        ProviderSettings.from_dict({"provider": "openai", "model": "m", "temprature": 0})
    with pytest.raises(ValueError, match="need 'model'"):
        ProviderSettings.from_dict({"provider": "openai"})


def test_it_reads_keys_from_the_environment_or_a_file_and_never_echoes_them(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file-123456\n")
    assert (
        resolve_api_key({"api_key_env": "K"}, environ={"K": "sk-from-env-123456"})
        == "sk-from-env-123456"
    )
    assert resolve_api_key({"api_key_file": str(key_file)}) == "sk-from-file-123456"
    assert resolve_api_key({}) is None
    with pytest.raises(SecretError, match="Environment variable K is not set") as missing:
        resolve_api_key({"api_key_env": "K"}, environ={"K": ""})
    with pytest.raises(SecretError, match="Cannot read the API key file"):
        resolve_api_key({"api_key_file": str(tmp_path / "absent")})
    with pytest.raises(SecretError, match="not both"):
        resolve_api_key({"api_key_env": "K", "api_key_file": str(key_file)})
    assert "sk-" not in str(missing.value)


def test_redact_replaces_every_secret_value() -> None:
    text = "Bearer sk-long-secret-abc and sk-long-secret-abcdef, short x"
    assert redact(text, ["sk-long-secret-abc", "sk-long-secret-abcdef", "x", None]) == (
        "Bearer [redacted] and [redacted], short x"
    )


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
