"""Misbehaving "git servers" on loopback for the outbound tests: one that accepts and never
answers, one that speaks TLS and then stalls or redirects. Each records what reached it and
whether the client hung up, and stops (closing every socket) when the test ends."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

# Every wait in these servers is bounded; a test that forgets to stop one loses a thread, not
# the run.
_POLL = 0.2
_MAX_LIFETIME = 300.0


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (git trusts it through
    GIT_SSL_CAINFO), made with the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


class LoopbackServer:
    """Listens on `host` (a loopback address); `serve(connection)` runs per connection."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(_POLL)
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.accepted = threading.Event()
        self.hung_up = threading.Event()  # the client closed its end (its process is gone)
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def url(self, path: str = "owner/repo") -> str:
        return f"https://{self.host}:{self.port}/{path}"

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.listener.close()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() - self._started < _MAX_LIFETIME

    def _accept(self) -> None:
        while self._running():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self.accepted.set()
            thread = threading.Thread(target=self._handle, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, connection: socket.socket) -> None:
        connection.settimeout(_POLL)
        try:
            self.serve(connection)
        except OSError:
            pass
        finally:
            connection.close()

    def serve(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def wait_for_hang_up(self, connection: socket.socket) -> None:
        """Read and drop what the client sends until it closes its end or the server stops."""
        while self._running():
            try:
                if not connection.recv(65536):
                    self.hung_up.set()
                    return
            except TimeoutError:
                continue
            except (ssl.SSLError, ConnectionError):
                self.hung_up.set()
                return


class SilentServer(LoopbackServer):
    """Accepts connections and never says a word (not even TLS's)."""

    def serve(self, connection: socket.socket) -> None:
        self.wait_for_hang_up(connection)


class TLSServer(LoopbackServer):
    """Speaks TLS with the given certificate, reads one HTTP request, then sends `answer` and
    either stalls (`stall=True`, the connection stays open and silent) or closes."""

    def __init__(
        self, cert: Path, key: str | Path, answer: bytes, *, stall: bool, host: str = "127.0.0.1"
    ) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.answer, self.stall = answer, stall
        super().__init__(host)

    def serve(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        tls = self.context.wrap_socket(connection, server_side=True)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            chunk = tls.recv(4096)
            if not chunk:
                return
            request += chunk
        self.requests.append(request.split(b"\r\n", 1)[0])
        tls.sendall(self.answer)
        if self.stall:
            tls.settimeout(_POLL)
            self.wait_for_hang_up(tls)
        tls.close()


class PlainServer(LoopbackServer):
    """Answers anything with a line of plain text and closes: an open port that is no git
    server (a database, a cache, an internal web page)."""

    def serve(self, connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\ninternal\r\n")


def processes_naming_port(port: int) -> list[str]:
    """Command lines of live git processes (git, git-remote-https) that name the port."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        line = raw.replace(b"\0", b" ").decode(errors="replace")
        program = Path(line.split(" ", 1)[0]).name
        if program.startswith("git") and f":{port}/" in line and state != "Z":
            found.append(line)
    return found
