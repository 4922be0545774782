"""A real HTTP server that speaks just enough OpenAI and Anthropic to drive agents in tests
and demos.

It answers ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), plain
JSON, no streaming, from a *script*: a list of entries consumed one per request, whichever
endpoint asks. The same entry is rendered in the wire format of the endpoint that asked, so one
script drives either provider::

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


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    at: float


class FakeModelServer:
    def __init__(self, script: Iterable[ScriptItem] = ()) -> None:
        self.script: list[ScriptItem] = list(script)
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a hanging handler must not block shutdown
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-model-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

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
            self.requests.append(RecordedRequest(path, headers, body, time.time()))
            item = self.script.pop(0) if self.script else None
        return item(body) if callable(item) else item

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path not in ("/v1/chat/completions", "/v1/messages"):
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
            elif anthropic:
                self._send(200, _anthropic_reply(server, entry, body))
            else:
                self._send(200, _openai_reply(server, entry, body))

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
