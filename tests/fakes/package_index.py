"""A real HTTP server that is just enough of a Python package index (PEP 503 "simple" pages) for
`pip install` to find and install a package, so setup builds can be tested through the egress
proxy without the internet.

    with FakePackageIndex({"tinypkg": "VALUE = 42\\n"}) as index:
        index.url          # http://127.0.0.1:PORT/simple/
        index.requests     # paths asked, in order

Each package is one pure-Python wheel, `<name>-1.0-py3-none-any.whl`, holding `<name>/__init__.py`
with the given source, built in memory when the server starts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "1.0"


def build_wheel(name: str, source: str) -> tuple[str, bytes]:
    """A minimal valid wheel (METADATA, WHEEL, RECORD with hashes) for package `name`."""
    dist = f"{name}-{VERSION}.dist-info"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {VERSION}\n".encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: marlin-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return f"{name}-{VERSION}-py3-none-any.whl", buffer.getvalue()


class FakePackageIndex:
    def __init__(self, packages: dict[str, str]) -> None:
        self.wheels = {name: build_wheel(name, source) for name, source in packages.items()}
        self.requests: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple/"

    def __enter__(self) -> FakePackageIndex:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(index: FakePackageIndex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            index.requests.append(self.path)
            parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
            if parts[:1] == ["simple"] and len(parts) == 2 and parts[1] in index.wheels:
                filename, data = index.wheels[parts[1]]
                digest = hashlib.sha256(data).hexdigest()
                body = (
                    f'<!DOCTYPE html><html><body><a href="/files/{filename}#sha256={digest}">'
                    f"{filename}</a></body></html>"
                ).encode()
                self._send(200, "text/html", body)
            elif parts[:1] == ["files"] and len(parts) == 2:
                found = [w for w in index.wheels.values() if w[0] == parts[1]]
                if found:
                    self._send(200, "application/octet-stream", found[0][1])
                else:
                    self._send(404, "text/plain", b"no such file")
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
