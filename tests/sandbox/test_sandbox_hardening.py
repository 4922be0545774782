"""Holes found while building the egress proxy, each closed and shown here: memory that RLIMIT_AS
does not see (tmpfs, /dev/shm, SysV shared memory), a symlink smuggled in as a `GIT binary
patch`, and host paths in the sandbox's /proc/1/cmdline."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import zlib
from pathlib import Path

import pytest

from marlin.sandbox import Limits, run
from marlin.sandbox.egress import Egress
from marlin.sandbox.gitutil import UNREADABLE_LINK_TARGET, parse_patch_headers
from marlin.sandbox.limits import find_memory_cgroup_root
from marlin.sandbox.workspace import PatchRejected, apply_patch
from tests.sandbox.test_workspace_patches import repo  # noqa: F401 (a fixture)

PY = "/usr/bin/python3"
SMALL = Limits(memory_mb=512, tmp_size_mb=16)

# Pins three 300 MB SysV shared memory segments (filled, then detached: they stay in memory).
PIN_SYSV = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
size = 300 * 1024 * 1024
for i in range(3):
    segment = libc.shmget(0, size, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if segment < 0:
        sys.exit(f"shmget failed: errno {ctypes.get_errno()}")
    address = libc.shmat(segment, None, 0)
    ctypes.memset(address, 1, size)
    libc.shmdt(ctypes.c_void_p(address))
    print("pinned", i + 1, flush=True)
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


def test_dev_shm_is_a_small_tmpfs_of_its_own(workspace: Path) -> None:
    script = "dd if=/dev/zero of=/dev/shm/big bs=1M count=180 2>&1; du -m /dev/shm/big | cut -f1"

    result = run(["sh", "-c", script], workdir=workspace, limits=SMALL, timeout=60)

    assert "No space left on device" in result.stdout, result
    assert result.stdout.strip().splitlines()[-1] == str(Limits().shm_size_mb)


@pytest.mark.skipif(
    find_memory_cgroup_root() is None, reason="no writable memory cgroup on this host"
)
def test_sysv_shared_memory_counts_against_the_runs_memory(workspace: Path) -> None:
    result = run([PY, "-c", PIN_SYSV], workdir=workspace, limits=SMALL, timeout=60)

    assert result.killed_reason == "memory-limit", result
    assert "pinned 3" not in result.stdout
    # The same program fits when the limit allows it: the limit, not the program, stopped it.
    roomy = run(
        [PY, "-c", PIN_SYSV],
        workdir=workspace,
        limits=Limits(memory_mb=1200, tmp_size_mb=16),
        timeout=60,
    )
    assert roomy.ok and "pinned 3" in roomy.stdout, roomy


@pytest.mark.skipif(
    find_memory_cgroup_root() is None, reason="no writable memory cgroup on this host"
)
def test_tmp_counts_against_the_runs_memory(workspace: Path) -> None:
    limits = Limits(memory_mb=256, tmp_size_mb=1024)
    script = "dd if=/dev/zero of=/tmp/big bs=1M count=600 && echo wrote"

    result = run(["sh", "-c", script], workdir=workspace, limits=limits, timeout=60)

    assert result.killed_reason == "memory-limit", result
    assert "wrote" not in result.stdout


@pytest.mark.parametrize("network", ["none", "proxy"])
def test_the_sandboxs_processes_show_no_host_paths(
    workspace: Path, network: str, tmp_path: Path
) -> None:
    script = "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done"
    egress = Egress() if network == "proxy" else None

    result = run(["sh", "-c", script], workdir=workspace, network=network, egress=egress)

    assert result.ok, result
    assert result.stdout.startswith("bwrap --args "), result.stdout
    for host_path in (str(workspace), str(tmp_path), sys.prefix, str(Path.cwd()), "/tmp/marlin"):
        assert host_path not in result.stdout


def git_binary_literal(data: bytes) -> str:
    """`data` as git writes a `literal` block: zlib, then lines of at most 52 bytes in base85,
    each led by its length (A-Z for 1-26, a-z for 27-52)."""
    packed = zlib.compress(data)
    lines = []
    for start in range(0, len(packed), 52):
        chunk = packed[start : start + 52]
        size = len(chunk)
        letter = chr(ord("A") + size - 1) if size <= 26 else chr(ord("a") + size - 27)
        lines.append(letter + base64.b85encode(chunk, pad=True).decode())
    return f"literal {len(data)}\n" + "\n".join(lines) + "\n\n"


def binary_link_patch(name: str, target: str) -> str:
    blob = hashlib.sha1(b"blob %d\0%s" % (len(target), target.encode())).hexdigest()  # noqa: S324
    return (
        f"diff --git a/{name} b/{name}\nnew file mode 120000\nindex {'0' * 40}..{blob}\n"
        f"GIT binary patch\n{git_binary_literal(target.encode())}literal 0\nHcmV?d00001\n\n"
    )


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("/tmp/evil-target", "symlink to absolute path '/tmp/evil-target'"),
        ("../../../etc/passwd", "points outside the workspace"),
        ("pkg/../.git/config", "symlink into .git"),
    ],
)
def test_a_binary_patch_cannot_make_an_escaping_symlink(
    repo: tuple[Path, str],  # noqa: F811
    target: str,
    problem: str,
) -> None:
    path, _ = repo

    with pytest.raises(PatchRejected, match=problem.replace("(", r"\(")):
        apply_patch(path, binary_link_patch("blink2", target))

    assert not os.path.lexists(path / "blink2")


def test_a_binary_patch_may_make_a_symlink_that_stays_inside(
    repo: tuple[Path, str],  # noqa: F811
) -> None:
    path, _ = repo

    apply_patch(path, binary_link_patch("blink2", "pkg/core.py"))

    assert os.readlink(path / "blink2") == "pkg/core.py"


def test_a_symlink_target_that_cannot_be_decoded_is_reported_as_refusable() -> None:
    delta = (
        "diff --git a/blink2 b/blink2\nnew file mode 120000\nindex 0000000..1111111\n"
        "GIT binary patch\ndelta 14\nHcmV?d00001\n\ndelta 0\nHcmV?d00001\n\n"
    )
    garbage = binary_link_patch("blink3", "x").replace("literal 1\n", "literal 1\nZ~~~~~\n")

    for patch in (delta, garbage):
        [section] = parse_patch_headers(patch)
        assert section.is_link and section.link_target == UNREADABLE_LINK_TARGET
    [fine] = parse_patch_headers(binary_link_patch("blink4", "/abs"))
    assert fine.link_target == "/abs"
