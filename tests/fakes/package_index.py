"""Real HTTP servers that are just enough of a Python package index (PEP 503 "simple" pages) for
`pip install`, and of the npm registry for `npm install`, to find and install a package, so setup
builds can be tested through the egress proxy without the internet.

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
import json
import tarfile
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


def build_npm_tarball(name: str, source: str) -> bytes:
    """An npm package tarball: package/package.json and package/index.js."""
    files = {
        "package/package.json": json.dumps(
            {"name": name, "version": NPM_VERSION, "main": "index.js"}
        ).encode(),
        "package/index.js": source.encode(),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


NPM_VERSION = "1.0.0"


class FakeNpmRegistry:
    """Just enough of the npm registry for `npm install NAME --registry URL`: a package document
    at /NAME naming one version and its tarball at /NAME/-/NAME-1.0.0.tgz.

        with FakeNpmRegistry({"tinypkg": "module.exports = 42;\\n"}, host="npm.test") as registry:
            registry.url   # http://npm.test:PORT/ (the host name is what the documents use)
    """

    def __init__(self, packages: dict[str, str], *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.tarballs = {name: build_npm_tarball(name, source) for name, source in packages.items()}
        self.requests: list[str] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _npm_handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def __enter__(self) -> FakeNpmRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _npm_handler_for(registry: FakeNpmRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            registry.requests.append(self.path)
            path = self.path.split("?", 1)[0].strip("/")
            if path in registry.tarballs:
                data = registry.tarballs[path]
                tarball = f"{registry.url}{path}/-/{path}-{NPM_VERSION}.tgz"
                integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
                document = {
                    "name": path,
                    "dist-tags": {"latest": NPM_VERSION},
                    "versions": {
                        NPM_VERSION: {
                            "name": path,
                            "version": NPM_VERSION,
                            "dist": {
                                "tarball": tarball,
                                "shasum": hashlib.sha1(data).hexdigest(),  # noqa: S324 (npm's)
                                "integrity": integrity,
                            },
                        }
                    },
                }
                self._send(200, "application/json", json.dumps(document).encode())
                return
            name = path.split("/-/", 1)[0]
            if path == f"{name}/-/{name}-{NPM_VERSION}.tgz" and name in registry.tarballs:
                self._send(200, "application/octet-stream", registry.tarballs[name])
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
