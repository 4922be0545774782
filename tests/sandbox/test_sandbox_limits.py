"""The limits hold, and every process a run started is gone when run() returns."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from marlin.sandbox import Limits, run

PY = "/usr/bin/python3"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def token() -> str:
    """A unique sleep length, so this test's processes can be found in /proc by command line."""
    return f"1000.{uuid.uuid4().int % 10**9}"


def processes_running(token: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize("backend", ["bwrap", "local"])
def test_it_kills_a_command_that_ignores_sigterm_at_the_timeout(
    workspace: Path, token: str, backend: str
) -> None:
    script = f"trap '' TERM INT HUP; sleep {token}; echo finished"
    started = time.monotonic()

    result = run(["sh", "-c", script], workdir=workspace, timeout=1, backend=backend)

    assert result.timed_out
    assert result.killed_reason == "timeout"
    assert not result.ok
    assert "finished" not in result.stdout
    assert time.monotonic() - started < 3
    assert processes_running(token) == []


@pytest.mark.parametrize("backend", ["bwrap", "local"])
def test_a_double_forked_daemon_does_not_outlive_the_run(
    workspace: Path, token: str, backend: str
) -> None:
    marker = workspace / "daemon-was-here"
    # The grandchild leaves the session and the process group, then writes after we return.
    daemon = f"sleep 1; touch {marker.name}; sleep {token}"
    script = f"setsid sh -c '{daemon}' </dev/null >/dev/null 2>&1 & echo parent-done"

    result = run(["sh", "-c", script], workdir=workspace, timeout=10, backend=backend)

    assert result.ok, result
    assert result.stdout.strip() == "parent-done"
    assert processes_running(token) == []
    time.sleep(1.5)
    assert not marker.exists()


def test_the_sandbox_caps_the_number_of_processes(workspace: Path) -> None:
    code = (
        "import os, time\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(500):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        started += 1\n"
        "except OSError as exc:\n"
        "    print(started, exc.errno)\n"
    )

    result = run([PY, "-c", code], workdir=workspace, limits=Limits(max_processes=40))

    started, errno = result.stdout.split()
    assert int(started) < 40
    assert errno == "11"  # EAGAIN: the cgroup said no


@pytest.mark.slow
def test_a_fork_bomb_is_contained_and_the_host_is_fine_afterwards(
    workspace: Path, token: str
) -> None:
    bomb = f"bomb() {{ bomb | bomb & }}; bomb; sleep {token}"

    result = run(["sh", "-c", bomb], workdir=workspace, timeout=3, limits=Limits(max_processes=64))

    assert result.timed_out or result.killed_reason == "process-limit", result
    assert "Cannot fork" in result.stderr
    assert processes_running(token) == []
    # The host can still start processes, and the sandbox still works.
    assert subprocess.run(["true"], check=False).returncode == 0
    assert run(["echo", "alive"], workdir=workspace).stdout == "alive\n"


def test_unbounded_output_is_truncated_and_the_writer_stopped(workspace: Path) -> None:
    limits = Limits(max_output_bytes=10_000)

    result = run(["yes"], workdir=workspace, timeout=30, limits=limits)

    assert result.truncated
    assert result.killed_reason == "output-limit"
    assert len(result.stdout) == 10_000
    assert result.stdout.startswith("y\ny\n")
    assert result.duration < 5


def test_output_a_little_over_the_cap_is_truncated_but_the_command_finishes(
    workspace: Path,
) -> None:
    limits = Limits(max_output_bytes=1000)
    code = "import sys; sys.stdout.write('a' * 3000); sys.stderr.write('oops'); sys.exit(4)"

    result = run([PY, "-c", code], workdir=workspace, limits=limits)

    assert result.truncated
    assert result.killed_reason is None
    assert result.returncode == 4
    assert result.stdout == "a" * 1000
    assert result.stderr == "oops"


def test_the_memory_limit_stops_a_big_allocation(workspace: Path) -> None:
    code = (
        "small = bytearray(32 * 1024 * 1024)\n"
        "print('small ok', flush=True)\n"
        "big = bytearray(1024 * 1024 * 1024)\n"
        "print('big ok')\n"
    )

    result = run([PY, "-c", code], workdir=workspace, limits=Limits(memory_mb=256))

    assert result.stdout == "small ok\n"
    assert result.returncode != 0
    assert "MemoryError" in result.stderr


def test_the_file_size_limit_stops_a_huge_write(workspace: Path) -> None:
    limits = Limits(max_file_size_mb=1)

    result = run(["sh", "-c", "head -c 50M /dev/zero > big.bin"], workdir=workspace, limits=limits)

    assert result.returncode != 0
    assert (workspace / "big.bin").stat().st_size <= 1024 * 1024


def test_the_tmp_size_limit_stops_filling_memory_through_tmp(workspace: Path) -> None:
    limits = Limits(tmp_size_mb=1, max_file_size_mb=64)

    result = run(
        ["sh", "-c", "head -c 8M /dev/zero > /tmp/fill.bin; echo $?"],
        workdir=workspace,
        limits=limits,
    )

    assert result.stdout.strip() != "0"
    assert "No space left on device" in result.stderr


def test_the_cpu_limit_stops_a_busy_loop(workspace: Path) -> None:
    result = run(
        [PY, "-c", "while True: pass"],
        workdir=workspace,
        timeout=20,
        limits=Limits(cpu_seconds=1),
    )

    assert not result.timed_out
    assert result.returncode != 0
    assert result.duration < 10


def test_limits_reject_nonsense_values() -> None:
    with pytest.raises(ValueError, match="memory_mb must be a positive integer"):
        Limits(memory_mb=0)
    with pytest.raises(ValueError, match="cpu_seconds"):
        Limits(cpu_seconds=-1)
    assert Limits().as_dict()["max_output_bytes"] == 1_000_000


class Interrupted(Exception):
    pass


def test_an_interrupted_run_still_kills_its_processes(workspace: Path, token: str) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(Interrupted):
            run(["sh", "-c", f"sleep {token} & sleep {token}"], workdir=workspace, timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    assert processes_running(token) == []


def test_concurrent_runs_from_threads_do_not_mix(workspace: Path) -> None:
    def one(index: int) -> str:
        code = f"import time; time.sleep(0.2); print({index})"
        return run([PY, "-c", code], workdir=workspace).stdout.strip()

    with ThreadPoolExecutor(max_workers=6) as pool:
        outputs = list(pool.map(one, range(12)))

    assert outputs == [str(i) for i in range(12)]
