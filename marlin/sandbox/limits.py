"""Resource limits applied from the host side: rlimits through prlimit(1) and a pids cgroup.

Rlimits are set by exec'ing through `prlimit` rather than a `preexec_fn`, because a preexec_fn
can deadlock a process that has threads (a worker serving jobs has them).

RLIMIT_NPROC counts processes per host uid and the worker usually runs as root, where it is not
enforced at all, so the process limit comes from a pids cgroup made for each run. Where no pids
cgroup can be made (no cgroupfs, not root, cgroup v2 without delegation) a non-root worker falls
back to RLIMIT_NPROC, which then bounds all of that uid's processes; a root worker without
cgroups runs without a process limit and says so in the log.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from marlin.sandbox.core import Limits, SandboxUnavailable

logger = logging.getLogger(__name__)

CGROUP_ROOT_ENV_VAR = "MARLIN_SANDBOX_CGROUP_ROOT"
MEMORY_CGROUP_ROOT_ENV_VAR = "MARLIN_SANDBOX_MEMORY_CGROUP_ROOT"
_MEMORY_CANDIDATES = (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))
_CGROUP_CANDIDATES = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))
# bwrap keeps two of its own processes in the cgroup (the outer one and the namespace's init).
_BACKEND_PROCESS_ALLOWANCE = 2


def prlimit_argv(limits: Limits) -> list[str]:
    """The `prlimit ... --` prefix that applies `limits` to the command and all it starts."""
    binary = shutil.which("prlimit", path="/usr/bin:/bin")
    if binary is None:
        raise SandboxUnavailable(
            "prlimit(1) is missing, so memory and file-size limits cannot be set; "
            "install util-linux (apt-get install util-linux)"
        )
    memory = limits.memory_mb * 1024 * 1024
    file_size = limits.max_file_size_mb * 1024 * 1024
    argv = [binary, f"--as={memory}", f"--fsize={file_size}", "--core=0"]
    if limits.cpu_seconds is not None:
        argv.append(f"--cpu={limits.cpu_seconds}")
    if os.geteuid() != 0 and find_cgroup_root() is None:
        argv.append(f"--nproc={limits.max_processes}")
    return [*argv, "--"]


def find_cgroup_root() -> Path | None:
    """A writable pids cgroup directory to make per-run cgroups under, or None."""
    configured = os.environ.get(CGROUP_ROOT_ENV_VAR)
    candidates = (Path(configured),) if configured else _CGROUP_CANDIDATES
    for candidate in candidates:
        if not ((candidate / "cgroup.procs").exists() and os.access(candidate, os.W_OK)):
            continue
        # A v1 pids hierarchy has pids.current below its root; a v2 tree must hand pids down.
        v1 = (candidate / "tasks").exists() and candidate.name == "pids"
        if v1 or (candidate / "pids.max").exists() or _v2_delegates_pids(candidate):
            return candidate
    return None


def _v2_delegates_pids(path: Path) -> bool:
    try:
        return "pids" in (path / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


@contextlib.contextmanager
def pids_cgroup(limits: Limits) -> Iterator[Path | None]:
    """A fresh cgroup capped at `limits.max_processes`; every process left in it dies on exit.

    Yields the cgroup's `cgroup.procs` file (write a pid there to move it in), or None when no
    cgroup could be made.
    """
    root = find_cgroup_root()
    if root is None:
        if os.geteuid() == 0:
            logger.warning(
                "no writable pids cgroup (tried %s; set %s): running without a process limit",
                ", ".join(str(c) for c in _CGROUP_CANDIDATES),
                CGROUP_ROOT_ENV_VAR,
            )
        yield None
        return
    group = root / "marlin" / f"run-{uuid.uuid4().hex}"
    try:
        group.mkdir(parents=True)
        (group / "pids.max").write_text(f"{limits.max_processes + _BACKEND_PROCESS_ALLOWANCE}\n")
    except OSError as exc:
        _remove_cgroup(group)
        logger.warning(
            "cannot make pids cgroup %s (%s): running without a process limit", group, exc
        )
        yield None
        return
    try:
        yield group / "cgroup.procs"
    finally:
        kill_cgroup(group)
        _remove_cgroup(group)


def find_memory_cgroup_root() -> Path | None:
    """A writable memory cgroup directory to make per-run cgroups under, or None."""
    configured = os.environ.get(MEMORY_CGROUP_ROOT_ENV_VAR)
    candidates = (Path(configured),) if configured else _MEMORY_CANDIDATES
    for candidate in candidates:
        if not ((candidate / "cgroup.procs").exists() and os.access(candidate, os.W_OK)):
            continue
        v1 = (candidate / "memory.limit_in_bytes").exists()
        try:
            v2 = "memory" in (candidate / "cgroup.subtree_control").read_text().split()
        except OSError:
            v2 = False
        if v1 or v2:
            return candidate
    return None


@contextlib.contextmanager
def memory_cgroup(limits: Limits, shared: Path | None = None) -> Iterator[Path | None]:
    """A fresh memory cgroup capped at `limits.memory_mb`, swap included, for everything the run
    holds in memory: its processes, and the tmpfs pages of /tmp and /dev/shm and SysV shared
    memory, which RLIMIT_AS does not see. Yields its `cgroup.procs`, or None when none could be
    made (then only RLIMIT_AS applies, and the log says so).

    On cgroup v2 a process is in one cgroup only, so the limit goes on `shared` (the run's pids
    cgroup's procs file) when that one can take it."""
    root = find_memory_cgroup_root()
    limit = str(limits.memory_mb * 1024 * 1024)
    if shared is not None and (shared.parent / "memory.max").exists():
        try:
            (shared.parent / "memory.max").write_text(limit)
        except OSError as exc:
            logger.warning("cannot set memory.max in %s (%s)", shared.parent, exc)
        else:
            with contextlib.suppress(OSError):
                (shared.parent / "memory.swap.max").write_text("0")
            yield shared
            return
    if root is None:
        # A root worker could have made one, so it is worth a warning there; elsewhere (a
        # developer's machine) it is the expected case.
        logger.log(
            logging.WARNING if os.geteuid() == 0 else logging.DEBUG,
            "no writable memory cgroup (tried %s; set %s): /tmp, /dev/shm and shared memory "
            "are bounded by their sizes only",
            ", ".join(str(c) for c in _MEMORY_CANDIDATES),
            MEMORY_CGROUP_ROOT_ENV_VAR,
        )
        yield None
        return
    group = root / "marlin" / f"run-{uuid.uuid4().hex}"
    try:
        group.mkdir(parents=True)
        if (group / "memory.limit_in_bytes").exists():  # cgroup v1
            (group / "memory.limit_in_bytes").write_text(limit)
            with contextlib.suppress(OSError):  # memsw exists only with swap accounting on
                (group / "memory.memsw.limit_in_bytes").write_text(limit)
        else:
            (group / "memory.max").write_text(limit)
            with contextlib.suppress(OSError):
                (group / "memory.swap.max").write_text("0")
    except OSError as exc:
        _remove_cgroup(group)
        logger.warning(
            "cannot make memory cgroup %s (%s): no memory cgroup for this run", group, exc
        )
        yield None
        return
    try:
        yield group / "cgroup.procs"
    finally:
        kill_cgroup(group)
        _remove_cgroup(group)


def memory_limit_hit(procs_file: Path | None) -> bool:
    """Whether the kernel killed a process of this run for going over its memory cgroup."""
    if procs_file is None:
        return False
    group = procs_file.parent
    for name in ("memory.oom_control", "memory.events"):  # v1, v2
        try:
            lines = (group / name).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, count = line.partition(" ")
            if key == "oom_kill" and count.strip().isdigit():
                return int(count) > 0
    return False


def pids_limit_hit(procs_file: Path | None) -> bool:
    """Whether a fork failed in this run because the cgroup was full."""
    if procs_file is None:
        return False
    try:
        for line in (procs_file.parent / "pids.events").read_text().splitlines():
            name, _, count = line.partition(" ")
            if name == "max":
                return int(count) > 0
    except (OSError, ValueError):
        pass
    return False


def kill_cgroup(group: Path, deadline: float = 5.0) -> None:
    """SIGKILL every process in `group` until it is empty (a fork bomb races the first pass)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        pids = _read_pids(group / "cgroup.procs")
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        # Usually just the namespace's init finishing its exit: worth a short wait, not 10 ms.
        time.sleep(0.001)
    logger.error("processes still alive in %s after %.0f s of SIGKILL", group, deadline)


def _read_pids(procs_file: Path) -> list[int]:
    try:
        return [int(line) for line in procs_file.read_text().split()]
    except FileNotFoundError:
        return []


def _remove_cgroup(group: Path) -> None:
    # Dying processes leave the cgroup a moment after SIGKILL, so rmdir can briefly say EBUSY.
    for _ in range(200):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                logger.warning("cannot remove cgroup %s: %s", group, exc)
                return
            time.sleep(0.01)
    logger.warning("cgroup %s still busy; left in place", group)


def sweep_empty_cgroups(*, older_than_seconds: float = 60.0) -> int:
    """Remove per-run cgroups a killed worker left behind: empty ones only, and only when they are
    old enough that no worker can be between creating one and moving its sandbox into it."""
    roots = {root for root in (find_cgroup_root(), find_memory_cgroup_root()) if root}
    removed = 0
    cutoff = time.time() - older_than_seconds
    groups = [
        g for root in roots if (root / "marlin").is_dir() for g in (root / "marlin").glob("run-*")
    ]
    for group in groups:
        try:
            if group.stat().st_mtime > cutoff or _read_pids(group / "cgroup.procs"):
                continue
            group.rmdir()
            removed += 1
        except OSError:
            continue
    return removed
