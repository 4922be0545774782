"""The host side of `proxy` network mode: an egress proxy and a model-API credential endpoint.

A sandbox in `proxy` mode has its own network namespace with nothing but loopback. A relay inside
(`relay.py`) listens on the sandbox's 127.0.0.1:EGRESS_PORT and hands each connection, through a
Unix socket bind-mounted into the sandbox, to a per-run server here, in the worker. That server
speaks three things on one socket:

- `CONNECT host:port` (HTTPS through `HTTPS_PROXY`) and absolute-URI requests
  (`GET http://host/...`, plain HTTP through `HTTP_PROXY`): allowed only for `host:port` pairs on
  the run's allow list, and only to public addresses. The proxy resolves the name itself and
  refuses it if any address is loopback, private, link-local (cloud metadata), multicast or
  reserved, whatever the allow list says; it then connects to the addresses it checked. Only
  names an administrator listed in `internal_hosts` may resolve to internal addresses.
- `POST /anthropic/...`, `POST /openai/...` (the model APIs, at `ANTHROPIC_BASE_URL` and
  `OPENAI_BASE_URL` inside): the request must carry the run's dummy token; the endpoint replaces it
  with the real key, forwards to the real base URL and streams the answer back, counting tokens and
  cost from the response (JSON or server-sent events). Past `max_cost_usd` it answers 429 and
  stops the run.

Every connection, allowed or refused, is one entry of the run's network log. One event loop
thread per worker process serves every run's socket; it is a daemon thread, so it dies with the
worker, and the sandbox dies with the worker too (bwrap's --die-with-parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from marlin.sandbox import addresses
from marlin.sandbox.addresses import Resolver, address_problem, bare_host, literal_address

logger = logging.getLogger(__name__)

# Where the relay listens inside the sandbox, and where the host's socket is mounted.
EGRESS_PORT = 3128
SOCKET_DIR_IN_SANDBOX = "/run/marlin-egress"
SOCKET_NAME = "egress.sock"
# sun_path holds 108 bytes on Linux, the terminating NUL included.
MAX_SOCKET_PATH_BYTES = 107
RELAY_IN_SANDBOX = "/run/marlin-relay.py"
RELAY_SOURCE = Path(__file__).with_name("relay.py")
# Local hosts the proxy-aware clients inside must reach directly (the credential endpoint).
NO_PROXY = "127.0.0.1,localhost,::1"

MAX_HEAD_BYTES = 64 * 1024
COPY_CHUNK = 256 * 1024
HEAD_TIMEOUT = 30.0
MAX_MODEL_BODY = 32 * 1024 * 1024
# A flood of connections is refused, logged and counted; the log keeps this many entries.
MAX_LOG_ENTRIES = 2000
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
ModelKind = Literal["anthropic", "openai"]
MODEL_KINDS: tuple[ModelKind, ...] = ("anthropic", "openai")


# What `pip install`, `uv pip install` and `npm ci` need from each registry a project may list.
PACKAGE_REGISTRIES: dict[str, tuple[str, ...]] = {
    "pypi": ("pypi.org:443", "files.pythonhosted.org:443"),
    "npm": ("registry.npmjs.org:443",),
}
DEFAULT_REGISTRIES = ("pypi", "npm")


def registry_allow_list(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The allow list for registries named in PACKAGE_REGISTRIES or given as host:port."""
    allow: list[str] = []
    for name in names:
        for entry in PACKAGE_REGISTRIES.get(name, (name,)):
            parse_allow_entry(entry)
            if entry not in allow:
                allow.append(entry)
    return tuple(allow)


class EgressError(Exception):
    """The egress proxy could not start or stopped; the message says why."""


@dataclass(frozen=True)
class ModelRoute:
    """A model API the sandbox may call through the credential endpoint."""

    kind: ModelKind  # also the path prefix inside: http://127.0.0.1:3128/<kind>/...
    base_url: str  # the real one, e.g. https://api.anthropic.com or https://api.openai.com/v1
    api_key: str | None = field(default=None, repr=False)
    input_price_per_mtok: float = 0.0
    output_price_per_mtok: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model route kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"model base_url must be an http(s) URL, got {self.base_url!r}")

    @property
    def inside_path(self) -> str:
        """The base URL's path as the sandbox sees it: /openai/v1 for https://api.openai.com/v1."""
        return f"/{self.kind}{urlsplit(self.base_url).path.rstrip('/')}"


@dataclass(frozen=True)
class Egress:
    """What a run in `proxy` mode may reach."""

    allow: tuple[str, ...] = ()  # "host:port" or "*.domain:port"
    models: tuple[ModelRoute, ...] = ()
    max_cost_usd: float | None = None
    # Names an administrator lets resolve to internal addresses (an internal package mirror).
    internal_hosts: tuple[str, ...] = ()
    resolve: Resolver | None = field(default=None, compare=False, repr=False)
    max_connections: int = 64  # open at once; more are refused
    connect_timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.allow, str):
            raise ValueError("allow must be a list of 'host:port' entries, not one string")
        for entry in self.allow:
            parse_allow_entry(entry)
        kinds = [route.kind for route in self.models]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"at most one model route per kind, got {kinds}")
        if self.max_cost_usd is not None and not self.max_cost_usd > 0:
            raise ValueError(f"max_cost_usd must be positive, got {self.max_cost_usd!r}")
        if self.max_connections <= 0:
            raise ValueError("max_connections must be positive")


def parse_allow_entry(entry: str) -> tuple[str, int]:
    """`'pypi.org:443'` -> ('pypi.org', 443); raise ValueError saying what is wrong."""
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"allow-list entry {entry!r} is empty; write host:port")
    host, sep, port_text = entry.strip().lower().rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(
            f"allow-list entry {entry!r} must be host:port with a port from 1 to 65535, "
            "e.g. pypi.org:443"
        )
    name = bare_host(host)
    wildcard = name.startswith("*.")
    label = name[2:] if wildcard else name
    if not label or any(c in label for c in "*/@ \t") or label.startswith(("-", ".")):
        raise ValueError(f"allow-list entry {entry!r} has an invalid host")
    return name, int(port_text)


def allow_matches(allow: tuple[str, ...], host: str, port: int) -> bool:
    host = bare_host(host.lower().rstrip("."))
    for entry in allow:
        name, allowed_port = parse_allow_entry(entry)
        if allowed_port != port:
            continue
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


class Refused(Exception):
    """The proxy will not connect there; the message is the log's reason."""


def decide(egress: Egress, host: str, port: int) -> list[str]:
    """The addresses to connect to for `host:port`, or raise Refused saying why not.

    Blocking (it may resolve a name): the proxy calls it in a thread.
    """
    host = bare_host(host.lower().rstrip("."))
    if not allow_matches(egress.allow, host, port):
        raise Refused(f"{host}:{port} is not on the run's allow list")
    internal_ok = host in {bare_host(h.lower()) for h in egress.internal_hosts}
    try:
        literal = literal_address(host)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if literal is not None:
        problem = address_problem(literal)
        if problem and not internal_ok:
            raise Refused(f"{host} is {problem}")
        return [str(literal)]
    resolve = egress.resolve or addresses.resolve_host  # looked up now, so tests can swap it
    try:
        found = resolve(host)
    except (OSError, UnicodeError):
        found = []
    if not found:
        raise Refused(f"{host} could not be resolved")
    for text in found:
        try:
            address = literal_address(text)
        except ValueError:
            address = None
        problem = address_problem(address) if address is not None else "not an address"
        if problem and not internal_ok:
            # The kind only: which internal address a name has is not the agent's to learn.
            raise Refused(f"{host} resolves to {problem}")
    return found


@dataclass(frozen=True)
class Connection:
    """One entry of a run's network log."""

    kind: str  # "connect" (HTTPS tunnel), "http" (plain HTTP) or "model" (credential endpoint)
    host: str
    port: int
    allowed: bool
    reason: str  # why it was refused, or what happened ("200", "upstream closed")
    bytes_up: int
    bytes_down: int
    at: float  # unix time it started
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelUsage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cut_off: bool = False  # the run was stopped at max_cost_usd

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class UsageMeter:
    """Tokens of one model response, read from its JSON body or its server-sent events.

    Anthropic puts input tokens in `message_start` and cumulative output tokens in
    `message_delta`; OpenAI chat streams put usage in the last chunk, the Responses API in
    `response.completed`. The largest value seen of each is the response's.
    """

    def __init__(self, content_type: str) -> None:
        self.streaming = "text/event-stream" in content_type
        self.buffer = bytearray()
        self.input_tokens = 0
        self.output_tokens = 0

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        if self.streaming:
            *lines, rest = bytes(self.buffer).split(b"\n")
            self.buffer = bytearray(rest)
            for line in lines:
                self._line(line)
        elif len(self.buffer) > MAX_MODEL_BODY:
            self.buffer.clear()  # too big to be a model reply worth parsing

    def finish(self) -> None:
        if self.streaming:
            self._line(bytes(self.buffer))
        else:
            with contextlib.suppress(ValueError):
                self._see(json.loads(bytes(self.buffer) or b"null"))
        self.buffer.clear()

    def _line(self, line: bytes) -> None:
        line = line.strip()
        if line.startswith(b"data:"):
            with contextlib.suppress(ValueError):
                self._see(json.loads(line[5:]))

    def _see(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        for holder in (data, data.get("message"), data.get("response")):
            usage = holder.get("usage") if isinstance(holder, dict) else None
            if not isinstance(usage, dict):
                continue
            inputs = _number(usage, "input_tokens", "prompt_tokens") + _number(
                usage, "cache_creation_input_tokens", "cache_read_input_tokens"
            )
            outputs = _number(usage, "output_tokens", "completion_tokens")
            self.input_tokens = max(self.input_tokens, inputs)
            self.output_tokens = max(self.output_tokens, outputs)


def _number(usage: dict[str, Any], *names: str) -> int:
    total = 0
    for name in names:
        value = usage.get(name)
        if isinstance(value, int) and value > 0:
            total += value
    return total


class Redactor:
    """Replaces the real key in a stream of chunks by `[redacted]`, also when a chunk boundary
    cuts it: a chunk's tail that could be the start of the key is held back until the next chunk
    (in practice never: model answers do not end a chunk with a key's first bytes)."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.key:
            return chunk
        data = (self.held + chunk).replace(self.key, b"[redacted]")
        hold = next(
            (
                n
                for n in range(min(len(self.key) - 1, len(data)), 0, -1)
                if data.endswith(self.key[:n])
            ),
            0,
        )
        self.held = data[len(data) - hold :] if hold else b""
        return data[: len(data) - hold]

    def finish(self) -> bytes:
        held, self.held = self.held, b""
        return held


class Session:
    """One run's proxy: its socket, allow list, token, log and usage. Made by `egress_session`."""

    def __init__(self, egress: Egress, directory: Path) -> None:
        self.egress = egress
        self.directory = directory
        self.socket_path = directory / SOCKET_NAME
        # Worthless outside this run: the endpoint accepts it only on this run's socket.
        self.token = f"marlin-run-{secrets.token_urlsafe(24)}"
        self.log: list[Connection] = []
        self.dropped = 0  # log entries past MAX_LOG_ENTRIES
        self.requests = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost_usd = 0.0
        self.cut_off = False
        self.failure: str | None = None  # set when the proxy stopped serving during the run
        self.active = 0
        self.stop_read, self.stop_write = os.pipe()
        self.server: asyncio.AbstractServer | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    def env(self, port: int = EGRESS_PORT) -> dict[str, str]:
        """The variables the command needs to use the proxy and the model endpoint."""
        base = f"http://127.0.0.1:{port}"
        env = {name: base for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
        env |= {
            "NO_PROXY": NO_PROXY,
            "no_proxy": NO_PROXY,
            # Node's fetch (undici) reads the proxy variables only when told to (Node >= 24).
            "NODE_USE_ENV_PROXY": "1",
            "MARLIN_EGRESS_URL": base,
            "MARLIN_MODEL_TOKEN": self.token,
        }
        for route in self.egress.models:
            url = base + route.inside_path
            if route.kind == "anthropic":
                env |= {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": self.token}
            else:
                env |= {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": self.token}
        return env

    def usage(self) -> ModelUsage:
        return ModelUsage(
            requests=self.requests,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=round(self.cost_usd, 6),
            cut_off=self.cut_off,
        )

    def entries(self) -> tuple[Connection, ...]:
        return tuple(self.log)

    def record(self, entry: Connection) -> None:
        if len(self.log) < MAX_LOG_ENTRIES:
            self.log.append(entry)
        else:
            self.dropped += 1

    def stop_run(self, reason: str) -> None:
        """Tell the supervisor to stop the command now (it reads `reason` from the pipe)."""
        with contextlib.suppress(OSError):
            os.write(self.stop_write, reason.encode()[:200])


# --- The event loop thread ----------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """The worker's egress loop, started on first use (a daemon thread: it dies with the worker)."""
    global _loop, _thread
    with _loop_lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            if _loop is None:
                try:
                    sweep_stale_sessions()
                except OSError as exc:
                    logger.warning("cannot sweep old egress sessions: %s", exc)
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="marlin-egress", daemon=True)
            thread.start()
            _loop, _thread = loop, thread
        return _loop


def _call(coroutine: Any, timeout: float = 15.0) -> Any:
    loop = event_loop()
    try:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)
    except TimeoutError:
        raise EgressError(f"the egress proxy did not answer within {timeout:g} s") from None


@contextlib.contextmanager
def egress_session(egress: Egress, parent: Path | None = None) -> Iterator[Session]:
    """Serve one run's socket for the duration of the block; always closed afterwards."""
    # The worker's pid in the name lets a later worker remove what a killed one left behind.
    directory = Path(tempfile.mkdtemp(prefix=f"marlin-egress-{os.getpid()}-", dir=parent))
    if len(os.fsencode(directory / SOCKET_NAME)) > MAX_SOCKET_PATH_BYTES:
        shutil.rmtree(directory, ignore_errors=True)
        raise EgressError(
            f"cannot start the egress proxy: its socket path under {directory.parent} is longer "
            f"than a Unix socket allows ({MAX_SOCKET_PATH_BYTES} bytes): set TMPDIR to a "
            "shorter directory for the worker"
        )
    # The sandbox user must be able to reach the socket (its uid maps to the worker's anyway).
    directory.chmod(0o755)
    session = Session(egress, directory)
    try:
        try:
            _call(_start(session))
        except OSError as exc:
            raise EgressError(f"cannot start the egress proxy: {exc}") from exc
        yield session
    finally:
        try:
            _call(_stop(session))
        except Exception as exc:  # noqa: BLE001 - tearing down must not hide how the run ended
            # (e.g. the loop that served this session stopped, and a new one cannot await its
            # tasks): the socket directory is removed below all the same.
            logger.warning("egress proxy for %s did not stop cleanly: %r", directory, exc)
        for fd in (session.stop_read, session.stop_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(directory, ignore_errors=True)


def sweep_stale_sessions(parent: Path | None = None, *, older_than_seconds: float = 60.0) -> int:
    """Remove session directories (a socket, nothing else) of worker processes that are gone;
    called once when a process starts its egress loop. Returns how many were removed."""
    root = Path(parent or tempfile.gettempdir())
    removed = 0
    cutoff = time.time() - older_than_seconds
    for directory in root.glob("marlin-egress-*-*"):
        pid_text = directory.name.split("-")[2]
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # its worker is alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        try:
            if directory.stat().st_mtime > cutoff:
                continue
        except OSError:
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed += 1
    return removed


def check_serving(session: Session) -> str | None:
    """Why the run's proxy is no longer serving, or None if it is."""
    if session.failure:
        return session.failure
    if _thread is None or not _thread.is_alive():
        return "the egress proxy's thread stopped"
    if session.server is None or not session.server.is_serving():
        return "the egress proxy stopped serving"
    return None


async def _start(session: Session) -> None:
    session.server = await asyncio.start_unix_server(
        lambda r, w: _track(session, r, w), path=str(session.socket_path), limit=MAX_HEAD_BYTES
    )
    session.socket_path.chmod(0o666)


async def _stop(session: Session) -> None:
    if session.server is not None:
        session.server.close()
    for handler in list(session.handlers):
        handler.cancel()
    if session.handlers:
        await asyncio.wait(session.handlers, timeout=5)


async def _track(session: Session, reader: asyncio.StreamReader, writer: Any) -> None:
    task = asyncio.current_task()
    assert task is not None
    session.handlers.add(task)
    try:
        await _handle(session, reader, writer)
    finally:
        session.handlers.discard(task)


# --- One connection from the sandbox -------------------------------------------------------------


@dataclass
class _Entry:
    kind: str
    host: str = ""
    port: int = 0
    allowed: bool = False
    reason: str = ""
    bytes_up: int = 0
    bytes_down: int = 0
    at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)

    def done(self) -> Connection:
        return Connection(
            kind=self.kind,
            host=self.host,
            port=self.port,
            allowed=self.allowed,
            reason=self.reason[:300],
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            at=self.at,
            seconds=round(time.monotonic() - self.started, 3),
        )


async def _handle(
    session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    entry = _Entry(kind="connect")
    try:
        if session.active >= session.egress.max_connections:
            entry.reason = f"refused: more than {session.egress.max_connections} open connections"
            await _answer(writer, 503, entry.reason)
            return
        session.active += 1
        try:
            await _serve_one(session, reader, writer, entry)
        finally:
            session.active -= 1
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
        entry.reason = entry.reason or f"closed: {type(exc).__name__}"
    except asyncio.LimitOverrunError:
        entry.reason = "refused: request head too large"
        with contextlib.suppress(ConnectionError):
            await _answer(writer, 431, entry.reason)
    except asyncio.CancelledError:
        entry.reason = entry.reason or "closed: the run ended"
        raise
    except Exception as exc:  # noqa: BLE001 - one connection's bug must not stop the proxy
        logger.exception("egress proxy: connection failed")
        entry.reason = f"error: {type(exc).__name__}"
    finally:
        session.record(entry.done())
        writer.close()


async def _serve_one(
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    entry: _Entry,
) -> None:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    request_line, headers = _parse_head(head)
    method, target, _ = (request_line.split(" ") + ["", ""])[:3]
    if method == "CONNECT":
        host, port = _split_host_port(target, default=443)
        entry.host, entry.port = host, port
        upstream = await _open(session, host, port, entry)
        if upstream is None:
            await _answer(writer, 403, entry.reason)
            return
        up_reader, up_writer = upstream
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await _pipe_both(reader, writer, up_reader, up_writer, entry)
    elif target.lower().startswith("http://"):
        entry.kind = "http"
        await _plain_http(session, reader, writer, entry, method, target, headers)
    elif target.startswith("/"):
        entry.kind = "model"
        await _model(session, reader, writer, entry, method, target, headers)
    else:
        entry.reason = f"refused: {method or 'empty'} request the proxy does not serve"
        await _answer(writer, 400, entry.reason)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _split_host_port(text: str, *, default: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    try:
        port = int(port_text) if port_text else default
    except ValueError:
        port = 0
    return host.lower(), port


async def _open(
    session: Session, host: str, port: int, entry: _Entry
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """Connect to an allowed, public `host:port`, or fill in the entry's refusal and give None."""
    loop = asyncio.get_running_loop()
    try:
        found = await asyncio.wait_for(
            loop.run_in_executor(None, decide, session.egress, host, port), 15
        )
    except Refused as exc:
        entry.reason = f"refused: {exc}"
        return None
    except TimeoutError:
        entry.reason = f"refused: resolving {host} took too long"
        return None
    problem = ""
    for address in found:
        try:
            opened = await asyncio.wait_for(
                asyncio.open_connection(address, port), session.egress.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            problem = f"cannot connect: {type(exc).__name__}"
            continue
        entry.allowed = True
        return opened
    entry.reason = problem or "cannot connect"
    return None


async def _pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    entry: _Entry,
) -> None:
    async def copy(source: asyncio.StreamReader, target: asyncio.StreamWriter, up: bool) -> None:
        try:
            while chunk := await source.read(COPY_CHUNK):
                target.write(chunk)
                await target.drain()
                if up:
                    entry.bytes_up += len(chunk)
                else:
                    entry.bytes_down += len(chunk)
            if target.can_write_eof():
                target.write_eof()
        except (ConnectionError, OSError):
            target.close()

    try:
        await asyncio.gather(copy(reader, up_writer, True), copy(up_reader, writer, False))
    finally:
        up_writer.close()


async def _plain_http(
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    entry: _Entry,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
) -> None:
    parts = urlsplit(target)
    host, port = _split_host_port(parts.netloc.rpartition("@")[2], default=80)
    entry.host, entry.port = host, port
    upstream = await _open(session, host, port, entry)
    if upstream is None:
        await _answer(writer, 403, entry.reason)
        return
    up_reader, up_writer = upstream
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
    # One request per connection: the next one on a kept-alive socket could name another host.
    lines = [f"{method} {path} HTTP/1.1", *(f"{n}: {v}" for n, v in kept), "Connection: close"]
    if not any(n.lower() == "host" for n, _ in kept):
        lines.insert(1, f"Host: {parts.netloc}")
    request_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    up_writer.write(request_head)
    entry.bytes_up += len(request_head)
    await _pipe_both(reader, writer, up_reader, up_writer, entry)


async def _model(
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    entry: _Entry,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
) -> None:
    route = next(
        (
            r
            for r in session.egress.models
            if target == r.inside_path or target.startswith(f"/{r.kind}/")
        ),
        None,
    )
    if route is None:
        entry.reason = "refused: no model API is configured at this path"
        await _answer(writer, 404, entry.reason)
        return
    upstream_url = _upstream_url(route, target)
    real = urlsplit(route.base_url)
    entry.host = real.hostname or ""
    entry.port = real.port or (443 if real.scheme == "https" else 80)
    lowered = {n.lower(): v for n, v in headers}
    presented = lowered.get("x-api-key") or lowered.get("authorization", "").removeprefix("Bearer ")
    if not secrets.compare_digest(presented.encode(), session.token.encode()):
        entry.reason = "refused: the request does not carry this run's token"
        await _answer(writer, 401, entry.reason)
        return
    if session.cut_off:
        entry.reason = "refused: the run's cost limit is reached"
        await _answer(writer, 429, entry.reason)
        return
    body = await _read_body(reader, lowered)
    entry.bytes_up = len(body)
    forwarded = {
        n: v
        for n, v in headers
        if n.lower() not in _HOP_BY_HOP
        and n.lower() not in ("host", "content-length", "x-api-key", "authorization")
        and n.lower() != "accept-encoding"
    }
    forwarded["accept-encoding"] = "identity"  # so the usage can be read from the bytes
    if route.api_key:
        if route.kind == "anthropic":
            forwarded["x-api-key"] = route.api_key
        else:
            forwarded["authorization"] = f"Bearer {route.api_key}"
    client = _model_client()
    request = client.build_request(method, upstream_url, headers=forwarded, content=body)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        entry.reason = f"upstream failed: {type(exc).__name__}"
        await _answer(writer, 502, entry.reason)
        return
    entry.allowed = True
    meter = UsageMeter(response.headers.get("content-type", ""))
    try:
        lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        for name, value in response.headers.multi_items():
            if name.lower() not in _HOP_BY_HOP | {"content-length", "content-encoding"}:
                lines.append(f"{name}: {value}")
        lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        redactor = Redactor(route.api_key.encode() if route.api_key else b"")
        async for chunk in response.aiter_bytes():
            meter.feed(chunk)
            entry.bytes_down += len(chunk)
            writer.write(redactor.feed(chunk))
            await writer.drain()
        writer.write(redactor.finish())
        await writer.drain()
        entry.reason = str(response.status_code)
    finally:
        # Counted before the last await: a client that stops reading at the stream's end marker
        # lets its run end, and the session's stop cancels this handler; an await first would
        # lose the answer's tokens and cost.
        meter.finish()
        _count(session, route, meter)
        await response.aclose()


_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None


def _model_client() -> httpx.AsyncClient:
    """One HTTP client for the loop, made on first use (building its TLS context takes tens of
    milliseconds, which a run without model APIs should not pay); its pool is shared by runs,
    which is harmless: keys travel in each request's headers, never in the pool."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop:  # a new loop after the old one stopped
        _client_loop = loop
        _client = httpx.AsyncClient(
            timeout=httpx.Timeout(600.0, connect=10.0), follow_redirects=False, trust_env=False
        )
    return _client


def _upstream_url(route: ModelRoute, target: str) -> str:
    real = urlsplit(route.base_url)
    rest = target[len(f"/{route.kind}") :]
    return f"{real.scheme}://{real.netloc}{rest}"


def _count(session: Session, route: ModelRoute, meter: UsageMeter) -> None:
    session.requests += 1
    session.input_tokens += meter.input_tokens
    session.output_tokens += meter.output_tokens
    session.cost_usd += (
        meter.input_tokens * route.input_price_per_mtok
        + meter.output_tokens * route.output_price_per_mtok
    ) / 1_000_000
    limit = session.egress.max_cost_usd
    if limit is not None and session.cost_usd >= limit and not session.cut_off:
        session.cut_off = True
        session.stop_run("cost-limit")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(body)
            if len(body) + size > MAX_MODEL_BODY:
                raise ConnectionError("model request body too large")
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or 0)
    if length > MAX_MODEL_BODY:
        raise ConnectionError("model request body too large")
    return await reader.readexactly(length) if length else b""


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = json.dumps({"error": {"type": "marlin_egress", "message": message}}).encode()
    reasons = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        429: "Too Many Requests",
        431: "Request Header Fields Too Large",
        502: "Bad Gateway",
        503: "Service Unavailable",
    }
    writer.write(
        f"HTTP/1.1 {status} {reasons.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()
