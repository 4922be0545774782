"""Network modes of the sandbox: `none` and `proxy` reach nothing on the host, whatever the allow
list says; the egress proxy lets allow-listed public names through and logs every connection.

Traffic goes only to loopback. Refusals of private, link-local and metadata addresses are tested
at the proxy's decision (`decide`) with a table resolver, never by connecting to them.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.sandbox import SandboxError, run
from marlin.sandbox.egress import Egress, Refused, decide, parse_allow_entry
from tests.fakes.package_index import FakeNpmRegistry

PY = "/usr/bin/python3"
SERVICES = {"PostgreSQL": 5432, "Redis": 6379}

# Inside the sandbox: try each port directly on 127.0.0.1, then (when a proxy is set) through
# the proxy by CONNECT and by plain HTTP, by address and by name. Prints one JSON object.
PROBE = r"""
import json, os, socket, sys
ports = [int(p) for p in sys.argv[1:]]
out = {}
for port in ports:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=3).close()
        out[f"direct {port}"] = "connected"
    except OSError as exc:
        out[f"direct {port}"] = type(exc).__name__
proxy = os.environ.get("HTTPS_PROXY")
if proxy:
    host, _, port_text = proxy.rpartition("/")[2].partition(":")
    for port in ports:
        for name in ("127.0.0.1", "localhost"):
            for verb, target in (("CONNECT", f"{name}:{port}"), ("GET", f"http://{name}:{port}/")):
                request = f"{verb} {target} HTTP/1.1"
                s = socket.create_connection((host, int(port_text)), timeout=10)
                s.sendall(f"{request}\r\nHost: {name}:{port}\r\n\r\n".encode())
                out[request] = s.recv(200).split(b"\r\n")[0].decode()
                s.close()
print(json.dumps(out))
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = f"hello from {self.headers['Host']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def local_server() -> Iterator[int]:
    """A plain HTTP server on the host's loopback (a package mirror, or the web app's port)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def host_reaches(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


def probe(workspace: Path, ports: list[int], **kwargs: object) -> dict[str, str]:
    result = run([PY, "-c", PROBE, *map(str, ports)], workdir=workspace, timeout=60, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, result
    return json.loads(result.stdout)


@pytest.mark.django_db(transaction=True)
def test_none_mode_reaches_no_host_service(workspace: Path, live_server) -> None:
    web_port = int(live_server.url.rsplit(":", 1)[1])
    ports = [*SERVICES.values(), web_port]
    assert all(host_reaches(p) for p in ports), "PostgreSQL, Redis and the web app must listen"

    seen = probe(workspace, ports)

    assert seen == {f"direct {p}": "ConnectionRefusedError" for p in ports}


@pytest.mark.django_db(transaction=True)
def test_proxy_mode_reaches_no_host_service_even_when_allow_listed(
    workspace: Path, live_server
) -> None:
    web_port = int(live_server.url.rsplit(":", 1)[1])
    ports = [*SERVICES.values(), web_port]
    assert all(host_reaches(p) for p in ports), "PostgreSQL, Redis and the web app must listen"
    allow = tuple(f"{name}:{p}" for p in ports for name in ("127.0.0.1", "localhost"))

    result = run(
        [PY, "-c", PROBE, *map(str, ports)],
        workdir=workspace,
        network="proxy",
        egress=Egress(allow=allow, resolve=lambda host: {"localhost": ["127.0.0.1"]}[host]),
        timeout=60,
    )

    seen = json.loads(result.stdout)
    for port in ports:
        assert seen.pop(f"direct {port}") == "ConnectionRefusedError"
    assert seen and all(status.startswith("HTTP/1.1 403") for status in seen.values()), seen
    refused = [entry for entry in result.network_log if not entry.allowed]
    assert len(refused) == len(seen) == len(result.network_log)
    reasons = {entry.reason for entry in refused}
    assert reasons == {
        "refused: 127.0.0.1 is a loopback address",
        "refused: localhost resolves to a loopback address",
    }


def test_an_allow_listed_local_server_works_through_the_proxy(
    workspace: Path, local_server: int
) -> None:
    # The administrator named the mirror as internal (MARLIN_EGRESS_INTERNAL_HOSTS); without
    # that, its loopback address is refused (next test).
    egress = Egress(
        allow=(f"mirror.test:{local_server}",),
        internal_hosts=("mirror.test",),
        resolve=lambda host: {"mirror.test": ["127.0.0.1"]}[host],
    )
    code = (
        "import urllib.request\n"
        f"print(urllib.request.urlopen('http://mirror.test:{local_server}/simple/', "
        "timeout=10).read().decode())\n"
    )

    result = run([PY, "-c", code], workdir=workspace, network="proxy", egress=egress, timeout=60)

    assert result.ok, result
    assert result.stdout.strip() == f"hello from mirror.test:{local_server}"
    [entry] = result.network_log
    assert (entry.kind, entry.host, entry.port, entry.allowed) == (
        "http",
        "mirror.test",
        local_server,
        True,
    )
    assert entry.bytes_down > len(result.stdout) and entry.bytes_up > 0


def test_the_same_server_is_refused_without_the_administrators_word(
    workspace: Path, local_server: int
) -> None:
    egress = Egress(
        allow=(f"mirror.test:{local_server}",),
        resolve=lambda host: {"mirror.test": ["127.0.0.1"]}[host],
    )
    code = (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    urllib.request.urlopen('http://mirror.test:{local_server}/', timeout=10)\n"
        "except urllib.error.HTTPError as exc:\n"
        "    print(exc.code, exc.read().decode())\n"
    )

    result = run([PY, "-c", code], workdir=workspace, network="proxy", egress=egress, timeout=60)

    assert result.stdout.startswith("403 "), result
    assert "mirror.test resolves to a loopback address" in result.stdout
    [entry] = result.network_log
    assert not entry.allowed and entry.reason == (
        "refused: mirror.test resolves to a loopback address"
    )


# --- The decision, with a table resolver: nothing is connected to ------------------------------

TABLE = {
    "pypi.org": ["151.101.0.223"],
    "metadata.google.internal": ["169.254.169.254"],
    "intranet.example": ["10.1.2.3"],
    "sneaky.example": ["151.101.0.223", "192.168.1.10"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "v6.example": ["2606:4700::6810:84e5"],
    "ula.example": ["fd00::1"],
}


def table(host: str) -> list[str]:
    if host not in TABLE:
        raise OSError(f"{host}: name or service not known")
    return TABLE[host]


@pytest.mark.parametrize(
    ("host", "port", "reason"),
    [
        ("metadata.google.internal", 80, "resolves to a link-local address"),
        ("169.254.169.254", 80, "is a link-local address"),
        ("intranet.example", 443, "resolves to a private address"),
        ("sneaky.example", 443, "resolves to a private address"),
        ("mapped.example", 443, "resolves to a link-local address"),
        ("ula.example", 443, "resolves to a private address"),
        ("0x7f000001", 443, "is a loopback address"),
        ("[::1]", 443, "is a loopback address"),
        ("10.0.0.1", 443, "is a private address"),
        ("pypi.org", 80, "pypi.org:80 is not on the run's allow list"),
        ("evil.example", 443, "evil.example:443 is not on the run's allow list"),
        ("gone.example", 443, "gone.example could not be resolved"),
    ],
)
def test_the_proxy_refuses_internal_and_unlisted_destinations(
    host: str, port: int, reason: str
) -> None:
    allow = tuple(
        f"{h}:{p}"
        for h in [*TABLE, "169.254.169.254", "0x7f000001", "[::1]", "10.0.0.1", "gone.example"]
        for p in (80, 443)
    )
    allow = tuple(a for a in allow if a != "pypi.org:80")
    egress = Egress(allow=allow, resolve=table)

    with pytest.raises(Refused) as refused:
        decide(egress, host, port)

    assert reason in str(refused.value)


def test_the_proxy_lets_public_allow_listed_names_through_pinned_to_what_it_checked() -> None:
    egress = Egress(allow=("pypi.org:443", "*.example:443"), resolve=table)

    assert decide(egress, "pypi.org", 443) == ["151.101.0.223"]
    assert decide(egress, "PyPI.org.", 443) == ["151.101.0.223"]
    assert decide(egress, "v6.example", 443) == ["2606:4700::6810:84e5"]
    with pytest.raises(Refused, match="not on the run's allow list"):
        decide(egress, "example", 443)  # *.example matches names below it, not itself


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("pypi.org", "must be host:port"),
        ("pypi.org:0", "must be host:port"),
        ("pypi.org:99999", "must be host:port"),
        (":443", "must be host:port"),
        ("*:443", "invalid host"),
        ("a/b:443", "invalid host"),
        ("", "is empty"),
    ],
)
def test_a_bad_allow_list_entry_is_refused_with_what_to_write(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_allow_entry(entry)
    with pytest.raises(ValueError, match=problem):
        Egress(allow=(entry,))


def test_the_network_argument_takes_a_mode_not_a_boolean(workspace: Path) -> None:
    with pytest.raises(SandboxError, match="network must be one of 'none', 'proxy', 'host'"):
        run(["true"], workdir=workspace, network=True)  # type: ignore[arg-type]
    with pytest.raises(SandboxError, match="egress settings need network='proxy'"):
        run(["true"], workdir=workspace, egress=Egress(allow=("pypi.org:443",)))


# --- Bad input and faults -------------------------------------------------------------------------

FLOOD = r"""
import socket, sys, time
count = int(sys.argv[1])
held, answers = [], {}
for _ in range(count):
    try:
        s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
    except OSError as exc:
        answers[type(exc).__name__] = answers.get(type(exc).__name__, 0) + 1
        continue
    held.append(s)  # says nothing: an open, idle connection
time.sleep(1)
for s in held:
    s.setblocking(False)
    try:
        first = s.recv(64).split(b"\r\n")[0].decode() or "closed"
    except BlockingIOError:
        first = "still open"
    except OSError as exc:
        first = type(exc).__name__
    answers[first] = answers.get(first, 0) + 1
print(answers)
"""


def test_a_flood_of_connections_is_refused_past_the_limit_and_logged(workspace: Path) -> None:
    egress = Egress(allow=("pypi.org:443",), max_connections=16)

    result = run(
        [PY, "-c", FLOOD, "300"], workdir=workspace, network="proxy", egress=egress, timeout=60
    )

    assert result.ok, result
    answers = eval(result.stdout)  # noqa: S307 - a dict literal our own probe printed
    assert answers == {"still open": 16, "HTTP/1.1 503 Service Unavailable": 284}, answers
    refused = [e for e in result.network_log if not e.allowed]
    assert len(result.network_log) == 300
    assert sum("more than 16 open connections" in e.reason for e in refused) == 284
    # The idle ones were closed when the run ended, and say so.
    assert sum(e.reason.startswith("closed") for e in refused) == 16


def test_the_log_keeps_a_bounded_number_of_entries_and_counts_the_rest(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from marlin.sandbox import egress as egress_module

    monkeypatch.setattr(egress_module, "MAX_LOG_ENTRIES", 50)
    code = (
        "import socket\n"
        "for i in range(120):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
        "    s.sendall(b'CONNECT evil.example:443 HTTP/1.1\\r\\n\\r\\n')\n"
        "    assert s.recv(100).startswith(b'HTTP/1.1 403')\n"
        "    s.close()\n"
        "print('done')\n"
    )

    result = run(
        [PY, "-c", code],
        workdir=workspace,
        network="proxy",
        egress=Egress(allow=("pypi.org:443",)),
        timeout=60,
    )

    assert result.stdout.strip() == "done", result
    assert len(result.network_log) == 50 and result.network_log_dropped == 70
    assert {e.reason for e in result.network_log} == {
        "refused: evil.example:443 is not on the run's allow list"
    }


def test_garbage_and_oversized_requests_get_an_answer_not_a_stuck_proxy(workspace: Path) -> None:
    code = (
        "import socket\n"
        "def ask(data):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
        "    s.sendall(data)\n"
        "    print(s.recv(200).split(b'\\r\\n')[0].decode() or 'closed')\n"
        "ask(b'HELLO\\r\\n\\r\\n')\n"
        "ask(b'GET / HTTP/1.1\\r\\nX: ' + b'a' * 100000 + b'\\r\\n\\r\\n')\n"
        "ask(b'CONNECT pypi.org:notaport HTTP/1.1\\r\\n\\r\\n')\n"
    )

    result = run(
        [PY, "-c", code],
        workdir=workspace,
        network="proxy",
        egress=Egress(allow=("pypi.org:443",)),
        timeout=60,
    )

    assert result.stdout.splitlines() == [
        "HTTP/1.1 400 Bad Request",
        "HTTP/1.1 431 Request Header Fields Too Large",
        "HTTP/1.1 403 Forbidden",
    ], result


def test_npm_installs_from_an_allow_listed_registry_through_the_proxy(workspace: Path) -> None:
    with FakeNpmRegistry({"tinypkg": "module.exports = 42;\n"}, host="npm.test") as registry:
        egress = Egress(
            allow=(f"npm.test:{registry.port}",),
            internal_hosts=("npm.test",),
            resolve=lambda host: {"npm.test": ["127.0.0.1"]}[host],
        )
        script = (
            "mkdir -p /tmp/app && cd /tmp/app && "
            f"npm install --no-audit --no-fund --registry {registry.url} tinypkg && "
            'node -e \'console.log("value", require("/tmp/app/node_modules/tinypkg"))\''
        )

        result = run(
            ["sh", "-c", script], workdir=workspace, network="proxy", egress=egress, timeout=120
        )
        asked = list(registry.requests)

    assert result.ok, result
    assert "value 42" in result.stdout
    assert "/tinypkg/-/tinypkg-1.0.0.tgz" in asked
    assert {(e.host, e.allowed) for e in result.network_log} == {("npm.test", True)}
