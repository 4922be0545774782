"""The sandbox contract: what a caller passes in, what comes back, and which backend runs it.

A failing command is a result (`ExecResult`); only infrastructure failure raises. Backends are
plain functions named in `BACKENDS` and imported on first use, so that importing this module
never touches the host.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

WORKSPACE_PATH = "/workspace"
TOOLS_PATH = "/opt/marlin-tools"
# /env is where a task's own environment (a venv built by its setup command) is mounted, so its
# tools shadow ours; ours shadow the distribution's.
SANDBOX_PATH = f"/env/bin:{TOOLS_PATH}/bin:/usr/local/bin:/usr/bin:/bin"

BACKEND_ENV_VAR = "MARLIN_SANDBOX_BACKEND"
DEFAULT_BACKEND = "bwrap"
BACKENDS: dict[str, str] = {
    "bwrap": "marlin.sandbox.bwrap.run",
    "local": "marlin.sandbox.local.run",
}


class SandboxError(Exception):
    """The sandbox could not run the command (bad arguments, broken host): not the command's
    fault."""


class SandboxUnavailable(SandboxError):
    """The selected backend cannot start on this host; the message says why and how to fix it."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    max_processes: int = 256
    max_output_bytes: int = 1_000_000
    max_file_size_mb: int = 512
    cpu_seconds: int | None = None
    # /tmp inside the sandbox is a tmpfs, i.e. host memory that RLIMIT_AS does not count.
    tmp_size_mb: int = 512

    def __post_init__(self) -> None:
        for name in (
            "memory_mb",
            "max_processes",
            "max_output_bytes",
            "max_file_size_mb",
            "tmp_size_mb",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")
        if self.cpu_seconds is not None and (
            not isinstance(self.cpu_seconds, int) or self.cpu_seconds <= 0
        ):
            raise ValueError(
                f"Limits.cpu_seconds must be a positive integer or None, got {self.cpu_seconds!r}"
            )

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    killed_reason: str | None
    truncated: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.killed_reason is None


class Backend(Protocol):
    def __call__(
        self,
        cmd: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str],
        stdin: bytes | None,
        timeout: float,
        limits: Limits,
        network: bool,
        mounts: Sequence[Mount],
    ) -> ExecResult: ...


def run(
    cmd: Sequence[str],
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    timeout: float = 600.0,
    limits: Limits | None = None,
    network: bool = False,
    mounts: Sequence[Mount] = (),
    backend: str | None = None,
) -> ExecResult:
    """Run `cmd` with `workdir` as its working directory (at WORKSPACE_PATH under bwrap)."""
    cmd = _check_cmd(cmd)
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise SandboxError(f"workdir {workdir} is not a directory; create it before running")
    if not timeout > 0:
        raise SandboxError(f"timeout must be positive seconds, got {timeout!r}")
    for mount in mounts:
        _check_mount(mount)
    function = load_backend(backend)
    return function(
        cmd,
        workdir=workdir.resolve(),
        env=_check_env(env or {}),
        stdin=stdin.encode() if isinstance(stdin, str) else stdin,
        timeout=float(timeout),
        limits=limits or Limits(),
        network=network,
        mounts=tuple(mounts),
    )


def load_backend(name: str | None = None) -> Backend:
    """The backend function for `name`, else $MARLIN_SANDBOX_BACKEND, else bwrap."""
    name = name or os.environ.get(BACKEND_ENV_VAR) or DEFAULT_BACKEND
    try:
        dotted = BACKENDS[name]
    except KeyError:
        choices = ", ".join(sorted(BACKENDS))
        raise SandboxError(
            f"unknown sandbox backend {name!r} (from the backend argument or "
            f"{BACKEND_ENV_VAR}); choose one of: {choices}"
        ) from None
    module_name, _, attribute = dotted.rpartition(".")
    function: Backend = getattr(importlib.import_module(module_name), attribute)
    return function


def _check_cmd(cmd: Sequence[str]) -> list[str]:
    if isinstance(cmd, str | bytes):
        raise SandboxError(
            f"cmd must be a list of arguments, not a string: use ['sh', '-c', {cmd!r}] "
            "if you need a shell"
        )
    argv = list(cmd)
    if not argv:
        raise SandboxError("cmd is empty; pass at least the program to run")
    for arg in argv:
        if not isinstance(arg, str):
            raise SandboxError(f"every argument in cmd must be a str, got {arg!r}")
        if "\0" in arg:
            raise SandboxError(f"argument {arg!r} contains a NUL byte")
    return argv


def _check_env(env: Mapping[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise SandboxError(f"invalid environment variable name {key!r}")
        if not isinstance(value, str) or "\0" in value:
            raise SandboxError(f"environment variable {key} must be a str without NUL bytes")
    return dict(env)


def _check_mount(mount: Mount) -> None:
    source = Path(mount.source)
    if not source.exists():
        raise SandboxError(f"mount source {source} does not exist")
    target = mount.target
    if not target.startswith("/") or "\0" in target or ".." in target.split("/"):
        raise SandboxError(f"mount target {target!r} must be an absolute path without '..'")
    hidden = ("", "/proc", "/dev", "/tmp", WORKSPACE_PATH)  # noqa: S108 (paths in the sandbox)
    if target.rstrip("/") in hidden or target.startswith(("/proc/", "/dev/")):
        raise SandboxError(f"mount target {target!r} would hide part of the sandbox; pick another")
