"""The fake model server streams the way the real APIs do: the official SDKs put its server-sent
events back together into the same text, tool calls and usage as the plain JSON answer."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from marlin.devtools.model_server import Call, FakeModelServer, Reply

REPLY = Reply(
    text="Reading the file first.",
    tool_calls=[Call("view_file", {"path": "app.py"}, id="call_7")],
    input_tokens=321,
    output_tokens=45,
)


def test_anthropic_messages_stream() -> None:
    with FakeModelServer([REPLY]) as server:
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="k")
        with client.messages.stream(
            model="fake-model", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            texts = list(stream.text_stream)
            message = stream.get_final_message()
    assert len(texts) == 2 and "".join(texts) == "Reading the file first."
    tool = message.content[1]
    assert tool.type == "tool_use" and tool.id == "call_7" and tool.input == {"path": "app.py"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (321, 45)
    assert server.requests[0].body["stream"] is True


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_chat_completions_stream(include_usage: bool) -> None:
    with FakeModelServer([REPLY]) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k")
        with client.chat.completions.stream(
            model="fake-model",
            messages=[{"role": "user", "content": "hi"}],
            stream_options={"include_usage": include_usage},
        ) as stream:
            chunks = list(stream)
            completion = stream.get_final_completion()
    message = completion.choices[0].message
    assert message.content == "Reading the file first."
    assert message.tool_calls is not None and message.tool_calls[0].id == "call_7"
    assert json.loads(message.tool_calls[0].function.arguments) == {"path": "app.py"}
    assert completion.choices[0].finish_reason == "tool_calls"
    if include_usage:
        assert completion.usage is not None and completion.usage.prompt_tokens == 321
    else:
        assert completion.usage is None
    assert sum(c.type == "content.delta" and bool(c.delta) for c in chunks) == 2


def test_openai_responses_stream_and_json() -> None:
    patch = "*** Begin Patch\n*** Add File: a.txt\n+hello\n*** End Patch\n"
    custom = Reply(text="Patching.", tool_calls=[Call("apply_patch", patch, custom=True)])
    with FakeModelServer([REPLY, custom, REPLY]) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k")
        with client.responses.stream(model="fake-model", input="hi") as stream:
            kinds = [event.type for event in stream]
            response = stream.get_final_response()
        with client.responses.stream(model="fake-model", input="hi") as stream:
            patched = stream.get_final_response()
        plain = client.responses.create(model="fake-model", input="hi")
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 2
    for answer in (response, plain):
        assert answer.output_text == "Reading the file first."
        call = answer.output[1]
        assert call.type == "function_call" and call.call_id == "call_7"
        assert json.loads(call.arguments) == {"path": "app.py"}
        assert answer.usage is not None
        assert (answer.usage.input_tokens, answer.usage.output_tokens) == (321, 45)
    tool = patched.output[1]
    assert tool.type == "custom_tool_call" and tool.input == patch


def test_side_requests_do_not_consume_the_script_and_gets_are_recorded() -> None:
    def side(path: str, body: dict) -> Reply | None:
        return Reply(text="a title") if "tools" not in body else None

    with FakeModelServer([REPLY], side=side) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="k", max_retries=0)
        title = client.chat.completions.create(
            model="small", messages=[{"role": "user", "content": "title?"}]
        )
        turn = client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "fix it"}],
            tools=[{"type": "function", "function": {"name": "view_file", "parameters": {}}}],
        )
        models = httpx.get(f"{server.openai_base_url}/models", timeout=5)
        missing = httpx.get(f"{server.url}/v1/nothing", timeout=5)
        with pytest.raises(openai.InternalServerError, match="script is exhausted"):
            client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": "again"}], tools=[]
            )
    assert title.choices[0].message.content == "a title"
    assert turn.choices[0].message.tool_calls is not None
    assert models.json()["data"][0]["id"] == "fake-model" and missing.status_code == 404
    assert [r.path for r in server.requests][-3:] == [
        "/v1/models",
        "/v1/nothing",
        "/v1/chat/completions",
    ]
