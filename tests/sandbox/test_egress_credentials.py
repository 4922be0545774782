"""Credential injection: inside the sandbox the model APIs are at a local endpoint that takes the
run's dummy token; the host side adds the real key, forwards to the real base URL (here the fake
model server on loopback), counts tokens and cost, and stops the run past its cost limit."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest
from anthropic import Anthropic
from openai import OpenAI

from marlin.devtools.model_server import Fail, FakeModelServer, Reply
from marlin.sandbox import run
from marlin.sandbox.egress import Egress, ModelRoute, Redactor, UsageMeter, egress_session

PY = "/usr/bin/python3"
ANTHROPIC_KEY = "sk-ant-api03-REAL-KEY-never-in-the-sandbox"
OPENAI_KEY = "sk-proj-REAL-KEY-never-in-the-sandbox"

# Calls both APIs the way their SDKs do, with the variables Marlin sets, and prints what it saw.
CALL_BOTH = r"""
import json, os, urllib.request
def post(url, headers, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())
a = post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
         {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"},
         {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
o = post(os.environ["OPENAI_BASE_URL"] + "/chat/completions",
         {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]},
         {"model": "m", "messages": [{"role": "user", "content": "hi"}]})
texts = {"anthropic": a["content"][0]["text"], "openai": o["choices"][0]["message"]["content"]}
print(json.dumps({**texts, "env": dict(os.environ)}))
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def routes(server: FakeModelServer) -> tuple[ModelRoute, ...]:
    return (
        ModelRoute(
            "anthropic",
            server.anthropic_base_url,
            api_key=ANTHROPIC_KEY,
            input_price_per_mtok=3.0,
            output_price_per_mtok=15.0,
        ),
        ModelRoute(
            "openai",
            server.openai_base_url,
            api_key=OPENAI_KEY,
            input_price_per_mtok=2.5,
            output_price_per_mtok=10.0,
        ),
    )


def test_the_real_key_is_added_on_the_host_and_never_enters_the_sandbox(
    workspace: Path,
) -> None:
    script = [
        Reply(text="from anthropic", input_tokens=1000, output_tokens=200),
        Reply(text="from openai", input_tokens=500, output_tokens=50),
    ]
    with FakeModelServer(script) as server:
        result = run(
            [PY, "-c", CALL_BOTH],
            workdir=workspace,
            network="proxy",
            egress=Egress(models=routes(server)),
            timeout=60,
        )
        seen = [(r.path, r.headers) for r in server.requests]

    assert result.ok, result
    out = json.loads(result.stdout)
    assert (out["anthropic"], out["openai"]) == ("from anthropic", "from openai")
    [(a_path, a_headers), (o_path, o_headers)] = seen
    assert a_path == "/v1/messages" and a_headers["x-api-key"] == ANTHROPIC_KEY
    assert o_path == "/v1/chat/completions"
    assert o_headers["authorization"] == f"Bearer {OPENAI_KEY}"
    token = out["env"]["ANTHROPIC_API_KEY"]
    assert token.startswith("marlin-run-") and out["env"]["OPENAI_API_KEY"] == token
    assert "authorization" not in a_headers and "x-api-key" not in o_headers
    everything_inside = result.stdout + result.stderr
    assert ANTHROPIC_KEY not in everything_inside and OPENAI_KEY not in everything_inside
    usage = result.model_usage
    assert usage is not None
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (2, 1500, 250)
    # 1000 * 3 + 200 * 15 + 500 * 2.5 + 50 * 10 per million tokens
    assert usage.cost_usd == pytest.approx(0.00775)
    assert [(e.kind, e.allowed, e.reason) for e in result.network_log] == [
        ("model", True, "200"),
        ("model", True, "200"),
    ]


def test_a_request_without_the_runs_token_is_refused_and_never_forwarded(
    workspace: Path,
) -> None:
    code = (
        "import os, urllib.request, urllib.error\n"
        "request = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',\n"
        "    data=b'{}', method='POST', headers={'x-api-key': 'marlin-run-guessed'})\n"
        "try:\n"
        "    urllib.request.urlopen(request, timeout=10)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code)\n"
    )
    with FakeModelServer([Reply(text="never")]) as server:
        result = run(
            [PY, "-c", code],
            workdir=workspace,
            network="proxy",
            egress=Egress(models=routes(server)),
            timeout=60,
        )
        asked = len(server.requests)

    assert result.stdout.strip() == "401", result
    assert asked == 0
    [entry] = result.network_log
    assert not entry.allowed and "does not carry this run's token" in entry.reason


def test_the_proxy_stops_the_run_past_its_cost_limit(workspace: Path) -> None:
    # Each reply costs 1000 * 3 + 1000 * 15 = 18,000 per million = $0.018; the limit is $0.05,
    # so the third reply crosses it and the run is stopped while it asks for a fourth.
    loop = (
        "import os, time, urllib.request\n"
        "for i in range(50):\n"
        "    request = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',\n"
        "        data=b'{\"model\": \"m\"}', method='POST',\n"
        "        headers={'x-api-key': os.environ['ANTHROPIC_API_KEY']})\n"
        "    try:\n"
        "        urllib.request.urlopen(request, timeout=10).read()\n"
        "    except Exception as exc:\n"
        "        print('refused', exc)\n"
        "    print('asked', i + 1, flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    script = [Reply(text="ok", input_tokens=1000, output_tokens=1000) for _ in range(50)]
    with FakeModelServer(script) as server:
        result = run(
            [PY, "-c", loop],
            workdir=workspace,
            network="proxy",
            egress=Egress(models=routes(server), max_cost_usd=0.05),
            timeout=60,
        )
        asked = len(server.requests)

    assert result.killed_reason == "cost-limit", result
    assert not result.ok
    assert asked == 3
    usage = result.model_usage
    assert usage is not None and usage.cut_off and usage.cost_usd == pytest.approx(0.054)
    assert "asked 10" not in result.stdout


# --- Counting tokens from the bytes of a response ------------------------------------------------

ANTHROPIC_SSE = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","usage":'
    b'{"input_tokens":1200,"cache_read_input_tokens":300,"output_tokens":1}}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":'
    b'{"output_tokens":57}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)
OPENAI_CHAT_SSE = (
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":80,"completion_tokens":9}}\n\n'
    b"data: [DONE]\n\n"
)
OPENAI_RESPONSES_SSE = (
    b"event: response.created\n"
    b'data: {"type":"response.created","response":{"id":"r","usage":null}}\n\n'
    b"event: response.completed\n"
    b'data: {"type":"response.completed","response":{"id":"r","usage":'
    b'{"input_tokens":640,"output_tokens":33,"total_tokens":673}}}\n\n'
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [(ANTHROPIC_SSE, (1500, 57)), (OPENAI_CHAT_SSE, (80, 9)), (OPENAI_RESPONSES_SSE, (640, 33))],
)
@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_usage_is_read_from_streamed_events_however_they_are_cut(
    body: bytes, expected: tuple[int, int], chunk: int
) -> None:
    meter = UsageMeter("text/event-stream; charset=utf-8")
    for start in range(0, len(body), chunk):
        meter.feed(body[start : start + chunk])
    meter.finish()

    assert (meter.input_tokens, meter.output_tokens) == expected


def test_usage_is_read_from_a_json_body_and_garbage_counts_nothing() -> None:
    meter = UsageMeter("application/json")
    meter.feed(b'{"usage": {"prompt_tokens": 12, ')
    meter.feed(b'"completion_tokens": 3}}')
    meter.finish()
    broken = UsageMeter("application/json")
    broken.feed(b"<html>bad gateway</html>")
    broken.finish()

    assert (meter.input_tokens, meter.output_tokens) == (12, 3)
    assert (broken.input_tokens, broken.output_tokens) == (0, 0)


# Streams from each API through the endpoint and prints how many SSE events came back.
STREAM_ALL = r"""
import json, os, urllib.request
def stream(url, headers, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=20) as response:
        return sum(1 for line in response if line.startswith(b"data:"))
a = {"x-api-key": os.environ["ANTHROPIC_API_KEY"]}
o = {"authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}
say = [{"role": "user", "content": "hi"}]
print(stream(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", a,
             {"model": "m", "max_tokens": 9, "messages": say, "stream": True}),
      stream(os.environ["OPENAI_BASE_URL"] + "/chat/completions", o,
             {"model": "m", "messages": say, "stream": True,
              "stream_options": {"include_usage": True}}),
      stream(os.environ["OPENAI_BASE_URL"] + "/responses", o,
             {"model": "m", "input": "hi", "stream": True}))
"""


def test_streamed_answers_are_passed_through_and_counted(workspace: Path) -> None:
    script = [
        Reply(text="streamed anthropic", input_tokens=1000, output_tokens=100),
        Reply(text="streamed chat", input_tokens=200, output_tokens=20),
        Reply(text="streamed responses", input_tokens=30, output_tokens=3),
    ]
    with FakeModelServer(script) as server:
        result = run(
            [PY, "-c", STREAM_ALL],
            workdir=workspace,
            network="proxy",
            egress=Egress(models=routes(server)),
            timeout=60,
        )
        keys = [
            r.headers.get("x-api-key") or r.headers.get("authorization") for r in server.requests
        ]

    assert result.ok, result
    assert all(int(n) > 2 for n in result.stdout.split()), result.stdout  # several events each
    assert keys == [ANTHROPIC_KEY, f"Bearer {OPENAI_KEY}", f"Bearer {OPENAI_KEY}"]
    usage = result.model_usage
    assert usage is not None
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (3, 1230, 123)
    # 1000 * 3 + 100 * 15 (Anthropic) + 230 * 2.5 + 23 * 10 (OpenAI), per million
    assert usage.cost_usd == pytest.approx(0.005305)


def test_the_official_sdks_work_against_the_endpoint_streaming_or_not() -> None:
    # The SDKs over the run's Unix socket (what the relay does inside the sandbox), so that the
    # endpoint's answers (close-delimited, re-sent headers) are read by the real clients.
    script = [
        Reply(text="plain anthropic", input_tokens=10, output_tokens=2),
        Reply(text="streamed anthropic", input_tokens=20, output_tokens=4),
        Reply(text="plain openai", input_tokens=30, output_tokens=6),
        Reply(text="streamed openai", input_tokens=40, output_tokens=8),
    ]
    with FakeModelServer(script) as server, egress_session(Egress(models=routes(server))) as s:
        # (The SDKs ship their own fork of httpx, httpx2.)
        transport = httpx2.HTTPTransport(uds=str(s.socket_path))
        env = s.env()
        anthropic = Anthropic(
            base_url=env["ANTHROPIC_BASE_URL"],
            api_key=env["ANTHROPIC_API_KEY"],
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )
        openai = OpenAI(
            base_url=env["OPENAI_BASE_URL"],
            api_key=env["OPENAI_API_KEY"],
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )
        say = [{"role": "user", "content": "hi"}]
        plain = anthropic.messages.create(model="m", max_tokens=9, messages=say)  # type: ignore[arg-type]
        with anthropic.messages.stream(model="m", max_tokens=9, messages=say) as stream:  # type: ignore[arg-type]
            streamed = stream.get_final_message()
        chat = openai.chat.completions.create(model="m", messages=say)  # type: ignore[arg-type]
        chunks = openai.chat.completions.create(
            model="m",
            messages=say,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Read once the session closed, as a run does: the SDK stops at the stream's end marker,
    # maybe before the proxy finished its side of the last answer.
    usage = s.usage()

    assert plain.content[0].text == "plain anthropic"  # type: ignore[union-attr]
    assert streamed.content[0].text == "streamed anthropic"  # type: ignore[union-attr]
    assert chat.choices[0].message.content == "plain openai"
    assert streamed_text == "streamed openai"
    assert (usage.requests, usage.input_tokens, usage.output_tokens) == (4, 100, 20)


@pytest.mark.parametrize("cut", [1, 3, 7, 20, 1000])
def test_the_key_is_redacted_from_answers_however_the_chunks_cut_it(cut: int) -> None:
    key = ANTHROPIC_KEY.encode()
    body = b'{"error": "bad key ' + key + b'", "again": "' + key + b'"} sk-ant-api03-RE'
    redactor = Redactor(key)

    out = b"".join(redactor.feed(body[i : i + cut]) for i in range(0, len(body), cut))
    out += redactor.finish()

    assert out == body.replace(key, b"[redacted]")
    assert key not in out


def test_an_upstream_that_echoes_the_key_shows_the_sandbox_only_a_redaction(
    workspace: Path,
) -> None:
    code = (
        "import os, urllib.request, urllib.error\n"
        "request = urllib.request.Request(os.environ['ANTHROPIC_BASE_URL'] + '/v1/messages',\n"
        "    data=b'{}', method='POST', headers={'x-api-key': os.environ['ANTHROPIC_API_KEY']})\n"
        "try:\n"
        "    urllib.request.urlopen(request, timeout=10)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code, exc.read().decode())\n"
    )
    with FakeModelServer([Fail(401, message=f"invalid x-api-key {ANTHROPIC_KEY}")]) as server:
        result = run(
            [PY, "-c", code],
            workdir=workspace,
            network="proxy",
            egress=Egress(models=routes(server)),
            timeout=60,
        )

    assert result.stdout.startswith("401 "), result
    assert "invalid x-api-key [redacted]" in result.stdout
    assert ANTHROPIC_KEY not in result.stdout + result.stderr
