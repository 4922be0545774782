"""The egress proxy dies with the worker: kill -9 a process that is running a sandbox in proxy
mode, and nothing answers on the run's socket any more, the sandbox's processes are gone, and
the next worker removes the socket's directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from marlin.sandbox.egress import Egress, EgressError, egress_session, sweep_stale_sessions

WORKER = r"""
import sys
from pathlib import Path
from marlin.sandbox import run
from marlin.sandbox.egress import Egress
run(["sleep", sys.argv[2]], workdir=Path(sys.argv[1]), network="proxy",
    egress=Egress(allow=("pypi.org:443",)), timeout=120)
"""


def ask(socket_path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(socket_path))
        client.sendall(b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n")
        return client.recv(100)


def running(token: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if token.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_the_proxy_and_the_sandbox_die_with_the_worker(tmp_path: Path) -> None:
    workdir = tmp_path / "workspace"
    workdir.mkdir()
    # Short, under /tmp: pytest's own tmp_path under xdist is too long for a Unix socket's path.
    scratch = Path(tempfile.mkdtemp(prefix="egress-death-", dir="/tmp"))
    token = f"99.{uuid.uuid4().int % 10**9}"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(workdir), token],
        env={**os.environ, "TMPDIR": str(scratch)},
        cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 60
        sockets: list[Path] = []
        while time.monotonic() < deadline and not (sockets and running(token)):
            sockets = list(scratch.glob("marlin-egress-*/egress.sock"))
            time.sleep(0.1)
        assert sockets and running(token), "the worker never started its sandbox"
        [socket_path] = sockets
        assert ask(socket_path).startswith(b"HTTP/1.1 403")  # the proxy serves the run

        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)

        with pytest.raises(OSError):  # refused: nothing listens on the socket any more
            ask(socket_path)
        deadline = time.monotonic() + 10
        while running(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running(token) == []
        # What the dead worker left on disk goes at the next worker's start (here: the sweep).
        assert sweep_stale_sessions(scratch, older_than_seconds=0) == 1
        assert not socket_path.parent.exists()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_socket_directory_too_long_for_a_unix_socket_is_refused_with_what_to_do(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    with pytest.raises(EgressError, match="set TMPDIR to a shorter directory"):
        with egress_session(Egress(), parent=deep):
            pass
    assert list(deep.iterdir()) == []  # nothing left behind
