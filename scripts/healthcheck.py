"""The container's health probe (the Dockerfile's HEALTHCHECK and compose.yaml's healthchecks).

    python healthcheck.py [PATH]    GET http://127.0.0.1:PORT/PATH (default /healthz); PORT is
                                    MARLIN_LISTEN's, else 8000
    python healthcheck.py --sandbox start an empty bubblewrap sandbox, as a worker's first
                                    check does: fails when the container lacks what bwrap needs

Exits 0 when healthy, else 1 with the reason on one line of stderr (`docker inspect` shows it).
The HTTP probe sends `Host: localhost`, so MARLIN_ALLOWED_HOSTS must list localhost
(docs/deploy.md).
"""

from __future__ import annotations

import http.client
import os
import sys

from marlin.sandbox import SandboxUnavailable
from marlin.sandbox.bwrap import check_bwrap_works, find_bwrap

TIMEOUT_SECONDS = 4.0


def listen_port(listen: str) -> int:
    """The port of MARLIN_LISTEN's ADDR:PORT, PORT or [V6]:PORT (8000 when it names none)."""
    _, sep, tail = listen.rpartition(":")
    if sep and tail.isdigit():
        return int(tail)
    return int(listen) if listen.isdigit() else 8000


def probe_http(path: str) -> str | None:
    """None when the app answers 200 on `path`, else what went wrong."""
    port = listen_port(os.environ.get("MARLIN_LISTEN", ""))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request("GET", path, headers={"Host": "localhost"})
        response = connection.getresponse()
        if response.status != 200:
            return f"GET {path} on port {port} answered {response.status} {response.reason}"
    except OSError as exc:
        return f"GET {path} on port {port} failed: {exc}"
    finally:
        connection.close()
    return None


def probe_sandbox() -> str | None:
    """None when bwrap can make a sandbox here, else bwrap's error and the fix Marlin suggests."""
    try:
        check_bwrap_works(find_bwrap())
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def main(argv: list[str]) -> int:
    target = argv[0] if argv else "/healthz"
    problem = probe_sandbox() if target == "--sandbox" else probe_http(target)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
