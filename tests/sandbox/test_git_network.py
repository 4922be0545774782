"""git's network operations (clone_mirror, fetch_mirror) against servers on loopback: they go
to the addresses the catalog checked, and a stop signal kills git with its helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.sandbox.gitutil import GitError, clone_mirror
from tests.catalog.servers import SilentServer, processes_naming_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    # 127.0.0.2: loopback, but not what "localhost" resolves to (127.0.0.1 and ::1).
    server = SilentServer(host="127.0.0.2")
    yield server
    server.stop()


def test_https_connects_to_the_checked_addresses_and_not_to_what_dns_says(
    silent_server: SilentServer, tmp_path: Path
) -> None:
    url = f"https://localhost:{silent_server.port}/owner/repo"
    with pytest.raises(GitError, match="timed out after 2 s"):
        clone_mirror(url, tmp_path / "m.git", allow_local=False, timeout=2, addresses=["127.0.0.2"])
    # Only the pinned address could have reached this server: localhost is 127.0.0.1 and ::1.
    assert silent_server.accepted.is_set()


def test_sigterm_kills_git_and_its_helpers_then_does_what_the_process_did_before(
    silent_server: SilentServer, tmp_path: Path
) -> None:
    # A process shaped like a worker: SIGTERM means "finish the job at hand, then stop"
    # (django-tasks-db's graceful stop). git-remote-https, in git's own session, used to keep
    # that job (and the process) waiting on a server that never answers.
    script = textwrap.dedent(
        f"""
        import signal, sys
        from pathlib import Path
        from marlin.sandbox.gitutil import GitError, clone_mirror

        def graceful(signum, frame):
            print("graceful stop requested", flush=True)

        signal.signal(signal.SIGTERM, graceful)
        try:
            clone_mirror(
                "https://127.0.0.2:{silent_server.port}/owner/repo",
                Path({str(tmp_path / "m.git")!r}),
                allow_local=False,
                timeout=120,
            )
        except GitError as exc:
            print(f"GitError: {{exc}}", flush=True)
            sys.exit(0)
        sys.exit(3)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert silent_server.accepted.wait(timeout=30), "git never connected"
        assert processes_naming_port(silent_server.port), "git's helpers should be running now"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert time.monotonic() - started < 10
    assert process.returncode == 0, output
    assert "graceful stop requested" in output  # the process's own handler still ran
    assert "GitError: git clone was stopped: this process received SIGTERM" in output
    assert silent_server.hung_up.wait(timeout=5), "git-remote-https still holds the connection"
    deadline = time.monotonic() + 5
    while processes_naming_port(silent_server.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_naming_port(silent_server.port) == []
    assert not (tmp_path / "m.git").exists()
