"""Start one command under the limits, feed it stdin, read its output, stop it, clean up.

Both backends go through `supervise`, so the timeout, the output cap and the cleanup are written
once. The whole tree is stopped at the end: the command runs in a new session (so its process
group can be signalled) inside a per-run pids cgroup (so processes that left the group with
setsid are found too); under bwrap the pid namespace adds a third net.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from marlin.sandbox.core import ExecResult, Limits, SandboxError
from marlin.sandbox.limits import (
    memory_cgroup,
    memory_limit_hit,
    pids_cgroup,
    pids_limit_hit,
    prlimit_argv,
)

# Output past the cap is thrown away, but a command still writing this many times the cap is
# only burning time (think `yes`), so it is killed.
OUTPUT_KILL_FACTOR = 10
_READ_SIZE = 65536
_DRAIN_AFTER_EXIT = 0.5


def _join_cgroups(count: int) -> str:
    """A shell script that joins the cgroups whose procs files are its first `count` arguments
    and then becomes the command, so nothing the command starts escapes them."""
    joins = " && ".join(f'echo $$ > "${i}"' for i in range(1, count + 1))
    return f'{joins} && shift {count} && exec "$@"'


@dataclass
class _Stream:
    limit: int
    kept: bytearray = field(default_factory=bytearray)
    seen: int = 0

    def add(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.seen > self.limit

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def supervise(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stdin: bytes | None,
    timeout: float,
    limits: Limits,
    pass_fds: Sequence[int] = (),
    stop_fd: int | None = None,
) -> ExecResult:
    """Run `argv` to completion or until a limit stops it; always leaves no process behind.

    When `stop_fd` becomes readable (the egress proxy writes why, e.g. `cost-limit`), the command
    is stopped and what was written is the `killed_reason`."""
    with (
        pids_cgroup(limits) as procs_file,
        memory_cgroup(limits, shared=procs_file) as memory_procs,
    ):
        full = [*prlimit_argv(limits), *argv]
        joined = list(dict.fromkeys(str(p) for p in (procs_file, memory_procs) if p is not None))
        if joined:
            full = ["/bin/sh", "-c", _join_cgroups(len(joined)), "sh", *joined, *full]
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=dict(env),
                start_new_session=True,
                pass_fds=tuple(pass_fds),
            )
        except OSError as exc:
            raise SandboxError(f"cannot start {full[0]}: {exc}") from exc
        try:
            outcome = _communicate(proc, stdin, started + timeout, limits.max_output_bytes, stop_fd)
        finally:
            _kill_group(proc)
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        killed_reason = outcome.killed_reason
        if killed_reason is None and pids_limit_hit(procs_file):
            killed_reason = "process-limit" if proc.returncode != 0 else None
        if killed_reason is None and proc.returncode != 0 and memory_limit_hit(memory_procs):
            killed_reason = "memory-limit"
    return ExecResult(
        returncode=proc.returncode,
        stdout=outcome.stdout.text(),
        stderr=outcome.stderr.text(),
        duration=time.monotonic() - started,
        timed_out=killed_reason == "timeout",
        killed_reason=killed_reason,
        truncated=outcome.stdout.truncated or outcome.stderr.truncated,
    )


@dataclass
class _Outcome:
    stdout: _Stream
    stderr: _Stream
    killed_reason: str | None = None


def _communicate(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    deadline: float,
    max_output: int,
    stop_fd: int | None = None,
) -> _Outcome:
    assert proc.stdout is not None and proc.stderr is not None  # noqa: S101 (PIPE above)
    outcome = _Outcome(_Stream(max_output), _Stream(max_output))
    streams = {proc.stdout.fileno(): outcome.stdout, proc.stderr.fileno(): outcome.stderr}
    pending = memoryview(stdin or b"")
    exit_fd = os.pidfd_open(proc.pid)
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(exit_fd, selectors.EVENT_READ)
        if stop_fd is not None:
            selector.register(stop_fd, selectors.EVENT_READ)
        for fd in streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        try:
            while True:
                now = time.monotonic()
                if exited_at is None:
                    if now >= deadline:
                        outcome.killed_reason = "timeout"
                        return outcome
                    wait = deadline - now
                else:
                    # The command is gone; read what is left in the pipes, briefly.
                    if not any(fd in selector.get_map() for fd in streams):
                        return outcome
                    if now >= exited_at + _DRAIN_AFTER_EXIT:
                        return outcome
                    wait = exited_at + _DRAIN_AFTER_EXIT - now
                for key, _ in selector.select(timeout=wait):
                    fd = key.fd
                    if fd == exit_fd:
                        # Whatever the command left running must not hold the pipes open
                        # until the deadline.
                        selector.unregister(fd)
                        exited_at = time.monotonic()
                        _kill_group(proc)
                    elif fd == stop_fd:
                        reason = os.read(fd, 200).decode(errors="replace").strip()
                        outcome.killed_reason = reason or "stopped"
                        return outcome
                    elif fd in streams:
                        _read_into(selector, fd, streams[fd])
                        if streams[fd].seen > max_output * OUTPUT_KILL_FACTOR:
                            outcome.killed_reason = "output-limit"
                            return outcome
                    else:
                        pending = _write_some(selector, proc, pending)
        finally:
            os.close(exit_fd)
    return outcome


def _read_into(selector: selectors.BaseSelector, fd: int, stream: _Stream) -> None:
    try:
        chunk = os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return
    if chunk:
        stream.add(chunk)
    else:
        selector.unregister(fd)


def _write_some(
    selector: selectors.BaseSelector, proc: subprocess.Popen[bytes], pending: memoryview
) -> memoryview:
    assert proc.stdin is not None  # noqa: S101 (registered only when piped)
    fd = proc.stdin.fileno()
    try:
        written = os.write(fd, pending[:_READ_SIZE]) if pending else 0
    except BlockingIOError:
        return pending
    except BrokenPipeError:
        written, pending = 0, memoryview(b"")
    pending = pending[written:]
    if not pending:
        # Closing stdin is how the command learns its input is over.
        selector.unregister(fd)
        proc.stdin.close()
    return pending


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
