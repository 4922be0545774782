"""The local backend: the same limits and cleanup as bwrap, but no isolation at all.

It exists for development machines where user namespaces are unavailable. It is never chosen
automatically (not even when bwrap is missing) and it logs a warning on every run, because
a command run here can read and write everything the worker can.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from marlin.sandbox.core import SANDBOX_PATH, ExecResult, Limits, Mount, Overlay, SandboxError
from marlin.sandbox.egress import RELAY_SOURCE, Session
from marlin.sandbox.process import supervise

logger = logging.getLogger(__name__)


def run(
    cmd: Sequence[str],
    *,
    workdir: Path | Overlay,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float,
    limits: Limits,
    network: str,
    mounts: Sequence[Mount],
    egress: Session | None = None,
) -> ExecResult:
    logger.warning(
        "running %r WITHOUT a sandbox (local backend): no filesystem, network or user "
        "isolation; use it only on a machine you can throw away",
        list(cmd)[:3],
    )
    if isinstance(workdir, Overlay):
        raise SandboxError(
            "the local backend cannot mount an overlay workspace (it has no mount namespace); "
            "use bwrap, or copy the tree into a plain directory"
        )
    with tempfile.TemporaryDirectory(prefix="marlin-local-home-") as home:
        inner_env = {
            "PATH": local_path(mounts),
            "HOME": home,
            "TMPDIR": home,
            "LANG": "C.UTF-8",
            **env,
        }
        if egress is not None:
            # The same relay as under bwrap, on a free port of the host's loopback (port 0: it
            # writes the port it got into the variables). No isolation: the command could also
            # connect anywhere directly.
            inner_env |= egress.env(0)
            cmd = [
                "/usr/bin/python3",
                "-I",
                "-S",
                str(RELAY_SOURCE),
                "0",
                str(egress.socket_path),
                "--",
                *cmd,
            ]
        return supervise(
            cmd,
            env=inner_env,
            cwd=workdir,
            stdin=stdin,
            timeout=timeout,
            limits=limits,
            stop_fd=egress.stop_read if egress is not None else None,
        )


def local_path(mounts: Sequence[Mount]) -> str:
    """The sandbox PATH with every entry under a mount target pointed at the mount's source.

    That keeps `python -m pytest` finding the tools venv (mounted at TOOLS_PATH under bwrap).
    """
    entries = []
    for entry in SANDBOX_PATH.split(":"):
        for mount in mounts:
            target = mount.target.rstrip("/")
            if entry == target or entry.startswith(target + "/"):
                entry = str(Path(mount.source).resolve()) + entry[len(target) :]
                break
        if os.path.isdir(entry):
            entries.append(entry)
    return ":".join(entries)
