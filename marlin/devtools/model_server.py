"""A real HTTP server that speaks just enough OpenAI and Anthropic to drive agents in tests
and demos (`marlin demo` starts one for its two live agents: marlin/demo/model_script.py).

It answers ``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI) and
``POST /v1/messages`` (Anthropic) from a *script*: a list of entries consumed one per request,
whichever endpoint asks. The same entry is rendered in the wire format of the endpoint that asked,
so one script drives either provider; a request with ``"stream": true`` gets the answer as
server-sent events the way each API streams it (Anthropic's message_start/content_block_delta/
message_delta events, Chat Completions chunks ending in ``data: [DONE]`` with a usage chunk when
``stream_options.include_usage`` asks for it, the Responses API's ``response.*`` events ending in
``response.completed``), sent with chunked transfer encoding::

    script = [
        Reply(tool_calls=[Call("view_file", {"path": "app.py"})]),
        Fail(429, retry_after=0.1),            # a rate limit with Retry-After
        Reply(tool_calls=[Call("bash", '{"command": ')]),  # arguments that are not valid JSON
        Hang(5),                               # sleeps past the client's timeout
        Reply(text="done", tool_calls=[Call("finish", {"summary": "fixed"})]),
    ]
    with FakeModelServer(script) as server:
        OpenAI(base_url=server.openai_base_url, api_key="k")      # ...
        Anthropic(base_url=server.anthropic_base_url, api_key="k")  # ...
        server.requests[-1].body["messages"]   # every request is recorded, headers included

An entry may also be a function of the request body returning an entry (for servers that must
react to what they are sent). When the script runs out the server answers 500 with a message
saying so, so a test that asks more than it scripted fails loudly.

Real command-line agents also send requests that are not turns of the conversation (a title for
the session, a quick classification with a small model). ``side`` is a function of the request
(path and body) that answers those with an entry without consuming the script, or returns None
to let the script answer. Every request is recorded either way, GETs included (answered 404
unless the path is ``/v1/models``).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any] | str  # a str is sent verbatim: use it for malformed JSON
    id: str | None = None  # generated when None
    # Responses API only: a freeform ("custom") tool call whose input is the str `arguments`,
    # e.g. Codex's apply_patch; other APIs send it as a function call.
    custom: bool = False


@dataclass(frozen=True)
class Reply:
    text: str | None = None
    tool_calls: list[Call] = field(default_factory=list)
    input_tokens: int = 100
    output_tokens: int = 20


@dataclass(frozen=True)
class Fail:
    status: int
    retry_after: float | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    seconds: float  # sleeps this long, then answers 500 to whoever is still listening


Entry = Reply | Fail | Hang
ScriptItem = Entry | Callable[[dict[str, Any]], Entry]
SideAnswer = Callable[[str, dict[str, Any]], Entry | None]
ENDPOINTS = ("/v1/chat/completions", "/v1/messages", "/v1/responses")


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    at: float


class FakeModelServer:
    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        side: SideAnswer | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        keep_requests: bool = True,
    ) -> None:
        """Listen on ``host:port`` (port 0: any free port). ``keep_requests=False`` records
        nothing (a long-running demo server would otherwise keep every request in memory)."""
        self.script: list[ScriptItem] = list(script)
        self.side = side
        self.requests: list[RecordedRequest] = []
        self.keep_requests = keep_requests
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._host = host
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True  # a hanging handler must not block shutdown
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-model-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._httpd.server_port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url  # the Anthropic SDK appends /v1/messages itself

    def add(self, *items: ScriptItem) -> None:
        with self._lock:
            self.script.extend(items)

    def start(self) -> FakeModelServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever on a server that never started
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Entry | None:
        with self._lock:
            if self.keep_requests:
                self.requests.append(RecordedRequest(path, headers, body, time.time()))
            answer = self.side(path, body) if self.side is not None else None
            if answer is not None:
                return answer
            item = self.script.pop(0) if self.script else None
        return item(body) if callable(item) else item

    def _record(self, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            if self.keep_requests:
                self.requests.append(RecordedRequest(path, headers, {}, time.time()))

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            server._record(path, {name.lower(): value for name, value in self.headers.items()})
            if path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": "fake-model"}]})
            else:
                self._send(404, {"error": {"message": f"no such endpoint {path}"}})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path not in ENDPOINTS:
                self._send(404, {"error": {"message": f"no such endpoint {path}"}})
                return
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            entry = server._next(path, headers, body)
            anthropic = path == "/v1/messages"
            if entry is None:
                self._error(anthropic, 500, "the fake model server's script is exhausted")
            elif isinstance(entry, Hang):
                time.sleep(entry.seconds)
                self._error(anthropic, 500, "hung on purpose")
            elif isinstance(entry, Fail):
                extra = (
                    {} if entry.retry_after is None else {"Retry-After": f"{entry.retry_after:g}"}
                )
                self._error(anthropic, entry.status, entry.message, extra)
            elif body.get("stream"):
                self._stream(_events(server, path, entry, body))
            elif anthropic:
                self._send(200, _anthropic_reply(server, entry, body))
            elif path == "/v1/responses":
                self._send(200, _responses_reply(server, entry, body))
            else:
                self._send(200, _openai_reply(server, entry, body))

        def _stream(self, events: list[str]) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in events:
                    data = event.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _error(
            self, anthropic: bool, status: int, message: str, headers: dict[str, str] | None = None
        ) -> None:
            if anthropic:
                payload: dict[str, Any] = {
                    "type": "error",
                    "error": {"type": "api_error", "message": message},
                }
            else:
                payload = {"error": {"message": message, "type": "server_error", "code": status}}
            self._send(status, payload, headers or {})

        def _send(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a Hang past its timeout)

    return Handler


def _openai_reply(server: FakeModelServer, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id or server._new_id("call_"),
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(call.arguments),
                },
            }
            for call in reply.tool_calls
        ]
    return {
        "id": server._new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }


def _anthropic_reply(server: FakeModelServer, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for call in reply.tool_calls:
        # Anthropic always sends an object; a str script argument is passed through so tests can
        # see how the client copes with a server that breaks that promise.
        content.append(
            {
                "type": "tool_use",
                "id": call.id or server._new_id("toolu_"),
                "name": call.name,
                "input": call.arguments,
            }
        )
    return {
        "id": server._new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "fake"),
        "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _arguments(call: Call) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _responses_output(server: FakeModelServer, reply: Reply) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if reply.text:
        output.append(
            {
                "type": "message",
                "id": server._new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for call in reply.tool_calls:
        item: dict[str, Any] = {
            "id": server._new_id("fc_"),
            "call_id": call.id or server._new_id("call_"),
            "name": call.name,
            "status": "completed",
        }
        if call.custom:
            item |= {"type": "custom_tool_call", "input": _arguments(call)}
        else:
            item |= {"type": "function_call", "arguments": _arguments(call)}
        output.append(item)
    return output


def _responses_reply(
    server: FakeModelServer, reply: Reply, body: dict[str, Any], output: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "id": server._new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model", "fake"),
        "output": _responses_output(server, reply) if output is None else output,
        "usage": {
            "input_tokens": reply.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }


def _halves(text: str) -> list[str]:
    """A text in two deltas, so clients must put the pieces together."""
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    name = event if event is not None else data.get("type")
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def _events(server: FakeModelServer, path: str, reply: Reply, body: dict[str, Any]) -> list[str]:
    if path == "/v1/messages":
        return _anthropic_events(server, reply, body)
    if path == "/v1/responses":
        return _responses_events(server, reply, body)
    return _chat_events(server, reply, body)


def _anthropic_events(server: FakeModelServer, reply: Reply, body: dict[str, Any]) -> list[str]:
    message = _anthropic_reply(server, reply, body)
    start = dict(message, content=[], stop_reason=None)
    start["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 1}
    events = [_sse({"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            events.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }
                )
            )
            deltas = [{"type": "text_delta", "text": piece} for piece in _halves(block["text"])]
        else:
            events.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": dict(block, input={}),
                    }
                )
            )
            raw = block["input"] if isinstance(block["input"], str) else json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _halves(raw)]
        events += [
            _sse({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
        ]
        events.append(_sse({"type": "content_block_stop", "index": index}))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            }
        )
    )
    events.append(_sse({"type": "message_stop"}))
    return events


def _chat_events(server: FakeModelServer, reply: Reply, body: dict[str, Any]) -> list[str]:
    completion = _openai_reply(server, reply, body)
    head = {key: completion[key] for key in ("id", "created", "model")}
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps(dict(head, choices=[choice]))}\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in _halves(reply.text or "")]
    for index, call in enumerate(completion["choices"][0]["message"].get("tool_calls", [])):
        function = call["function"]
        events.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": function["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in _halves(function["arguments"])
        ]
    events.append(chunk({}, completion["choices"][0]["finish_reason"]))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = dict(head, choices=[], usage=completion["usage"])
        events.append(f"data: {json.dumps(usage)}\n\n")
    events.append("data: [DONE]\n\n")
    return events


def _responses_events(server: FakeModelServer, reply: Reply, body: dict[str, Any]) -> list[str]:
    output = _responses_output(server, reply)
    final = _responses_reply(server, reply, body, output)
    sequence = itertools.count()

    def event(data: dict[str, Any]) -> str:
        return _sse(dict(data, sequence_number=next(sequence)))

    started = dict(final, status="in_progress", output=[], usage=None)
    events = [
        event({"type": "response.created", "response": started}),
        event({"type": "response.in_progress", "response": started}),
    ]
    for index, item in enumerate(output):
        at = {"output_index": index, "item_id": item["id"]}
        if item["type"] == "message":
            text = item["content"][0]["text"]
            added = dict(item, status="in_progress", content=[])
            events.append(
                event({"type": "response.output_item.added", "output_index": index, "item": added})
            )
            part = {"type": "output_text", "text": "", "annotations": []}
            events.append(
                event(
                    {"type": "response.content_part.added", **at, "content_index": 0, "part": part}
                )
            )
            events += [
                event(
                    {"type": "response.output_text.delta", **at, "content_index": 0, "delta": piece}
                )
                for piece in _halves(text)
            ]
            events.append(
                event({"type": "response.output_text.done", **at, "content_index": 0, "text": text})
            )
            events.append(
                event(
                    {
                        "type": "response.content_part.done",
                        **at,
                        "content_index": 0,
                        "part": dict(part, text=text),
                    }
                )
            )
        elif item["type"] == "function_call":
            added = dict(item, status="in_progress", arguments="")
            events.append(
                event({"type": "response.output_item.added", "output_index": index, "item": added})
            )
            events += [
                event({"type": "response.function_call_arguments.delta", **at, "delta": piece})
                for piece in _halves(item["arguments"])
            ]
            events.append(
                event(
                    {
                        "type": "response.function_call_arguments.done",
                        **at,
                        "arguments": item["arguments"],
                    }
                )
            )
        else:
            added = dict(item, status="in_progress", input="")
            events.append(
                event({"type": "response.output_item.added", "output_index": index, "item": added})
            )
            events += [
                event({"type": "response.custom_tool_call_input.delta", **at, "delta": piece})
                for piece in _halves(item["input"])
            ]
            events.append(
                event(
                    {"type": "response.custom_tool_call_input.done", **at, "input": item["input"]}
                )
            )
        events.append(
            event({"type": "response.output_item.done", "output_index": index, "item": item})
        )
    events.append(event({"type": "response.completed", "response": final}))
    return events
