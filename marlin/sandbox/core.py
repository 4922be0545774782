"""The sandbox contract: what a caller passes in, what comes back, and which backend runs it.

A failing command is a result (`ExecResult`); only infrastructure failure raises. Backends are
plain functions named in `BACKENDS` and imported on first use, so that importing this module
never touches the host.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Protocol

from marlin.sandbox.egress import (
    Connection,
    Egress,
    EgressError,
    ModelUsage,
    Session,
    check_serving,
    egress_session,
)

WORKSPACE_PATH = "/workspace"
TOOLS_PATH = "/opt/marlin-tools"
# /env is where a task's own environment (a venv built by its setup command) is mounted, so its
# tools shadow ours; ours shadow the distribution's.
SANDBOX_PATH = f"/env/bin:{TOOLS_PATH}/bin:/usr/local/bin:/usr/bin:/bin"

# none: only the sandbox's own loopback. proxy: out only through the run's egress proxy (an allow
# list of host:port, public addresses only, model APIs with the key added on the host). host: the
# host's network, loopback services included (administrators only).
NETWORK_MODES = ("none", "proxy", "host")

BACKEND_ENV_VAR = "MARLIN_SANDBOX_BACKEND"
DEFAULT_BACKEND = "bwrap"
BACKENDS: dict[str, str] = {
    "bwrap": "marlin.sandbox.bwrap.run",
    "local": "marlin.sandbox.local.run",
}


class SandboxError(Exception):
    """The sandbox could not run the command (bad arguments, broken host): not the command's
    fault."""


class EgressFailed(SandboxError):
    """The run's egress proxy stopped serving while the command ran: the run is not at fault
    and can be tried again."""


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
    # /dev/shm (POSIX shared memory), a tmpfs of its own. The run's memory cgroup, where the host
    # has one, counts these pages and SysV shared memory against memory_mb as well.
    shm_size_mb: int = 64

    def __post_init__(self) -> None:
        for name in (
            "memory_mb",
            "max_processes",
            "max_output_bytes",
            "max_file_size_mb",
            "tmp_size_mb",
            "shm_size_mb",
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
class Overlay:
    """A workspace made of layers: `lower` read-only underneath, `upper` taking every write
    (copy-on-write), `work` overlayfs's scratch directory on the same filesystem as `upper`.
    Passed as `workdir`, it is mounted at WORKSPACE_PATH; only the bwrap backend can do that."""

    lower: Path
    upper: Path
    work: Path


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    killed_reason: str | None
    truncated: bool
    # proxy mode only: every connection the command opened through the proxy, and what the
    # model APIs it called through the credential endpoint counted.
    network_log: tuple[Connection, ...] = ()
    network_log_dropped: int = 0
    model_usage: ModelUsage | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.killed_reason is None


class Backend(Protocol):
    def __call__(
        self,
        cmd: Sequence[str],
        *,
        workdir: Path | Overlay,
        env: Mapping[str, str],
        stdin: bytes | None,
        timeout: float,
        limits: Limits,
        network: str,
        mounts: Sequence[Mount],
        egress: Session | None,
    ) -> ExecResult: ...


def run(
    cmd: Sequence[str],
    *,
    workdir: Path | Overlay,
    env: Mapping[str, str] | None = None,
    stdin: str | bytes | None = None,
    timeout: float = 600.0,
    limits: Limits | None = None,
    network: str = "none",
    egress: Egress | None = None,
    mounts: Sequence[Mount] = (),
    backend: str | None = None,
) -> ExecResult:
    """Run `cmd` with `workdir` as its working directory (at WORKSPACE_PATH under bwrap); an
    Overlay workdir is mounted there as one copy-on-write tree."""
    cmd = _check_cmd(cmd)
    workdir = _check_workdir(workdir)
    if not timeout > 0:
        raise SandboxError(f"timeout must be positive seconds, got {timeout!r}")
    for mount in mounts:
        _check_mount(mount)
    _check_network(network, egress)
    function = load_backend(backend)
    checked_env = _check_env(env or {})

    def call(session: Session | None) -> ExecResult:
        return function(
            cmd,
            workdir=workdir,
            env=checked_env,
            stdin=stdin.encode() if isinstance(stdin, str) else stdin,
            timeout=float(timeout),
            limits=limits or Limits(),
            network=network,
            mounts=tuple(mounts),
            egress=session,
        )

    if network != "proxy":
        return call(None)
    try:
        with egress_session(egress or Egress()) as session:
            result = call(session)
            failure = check_serving(session)
    except EgressError as exc:
        raise SandboxError(str(exc)) from exc
    if failure:
        raise EgressFailed(f"the run's egress proxy failed: {failure}")
    # Read after the session closed: connections still open at the end are logged by then.
    return replace(
        result,
        network_log=session.entries(),
        network_log_dropped=session.dropped,
        model_usage=session.usage(),
    )


def load_backend(name: str | None = None) -> Backend:
    """The backend function for `name`, else $MARLIN_SANDBOX_BACKEND, else bwrap."""
    name = backend_name(name)
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


def backend_name(name: str | None = None) -> str:
    """The backend `run` will use for `name`: the argument, else $MARLIN_SANDBOX_BACKEND, else
    bwrap."""
    return name or os.environ.get(BACKEND_ENV_VAR) or DEFAULT_BACKEND


def _check_workdir(workdir: Path | Overlay) -> Path | Overlay:
    if isinstance(workdir, Overlay):
        for name in ("lower", "upper", "work"):
            if not Path(getattr(workdir, name)).is_dir():
                raise SandboxError(
                    f"overlay {name} directory {getattr(workdir, name)} is not a directory"
                )
        return Overlay(*(Path(p).resolve() for p in (workdir.lower, workdir.upper, workdir.work)))
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise SandboxError(f"workdir {workdir} is not a directory; create it before running")
    return workdir.resolve()


def _check_network(network: object, egress: Egress | None) -> None:
    if isinstance(network, bool) or network not in NETWORK_MODES:
        raise SandboxError(
            f"network must be one of {', '.join(repr(m) for m in NETWORK_MODES)}, got "
            f"{network!r} (the old network=True is network='proxy' with an allow list, or "
            "'host' for the host's whole network)"
        )
    if egress is not None and network != "proxy":
        raise SandboxError(f"egress settings need network='proxy', not {network!r}")


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
