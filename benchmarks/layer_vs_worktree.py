"""How long it takes to get a candidate's workspace once the task's environment is built: a
copy-on-write layer over the built tree (what checks use now) against a worktree checked out
from the mirror (what they used before, and what a task without a setup still gets).

Builds the repository of benchmarks/worktree_vs_clone.py (5,000 commits, 2,000 files), mirrors
it, builds one base (create_base: the checkout the setup would build in), then times, runs
interleaved, median reported:
  - create_workspace: git worktree from the mirror (the baseline)
  - create_layer, overlay: an empty upper directory; bwrap mounts it over the base
  - create_layer, copy: `cp -a --reflink=auto` of the base on the same filesystem (a full copy
    on ext4)
  - create_layer, copy on a reflink filesystem (--reflink-dir, e.g. an XFS mount): each file
    shares its blocks with the base
and, for the worktree and the overlay, "ready": create + apply a one-file patch + run `true` in
the sandbox, which is what a check does before its command.

    .venv/bin/python benchmarks/layer_vs_worktree.py [--runs 9] [--reflink-dir /mnt/xfs]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from worktree_vs_clone import GIT_ENV, build_repository, new_disk_mib  # noqa: E402

from marlin.sandbox import run  # noqa: E402
from marlin.sandbox.workspace import (  # noqa: E402
    LAYER_ENV_VAR,
    apply_patch,
    create_base,
    create_layer,
    create_workspace,
    remove_workspace,
    sandbox_view,
)

PATCH = (
    "diff --git a/src/pkg0/module_0.py b/src/pkg0/module_0.py\n"
    "--- a/src/pkg0/module_0.py\n"
    "+++ b/src/pkg0/module_0.py\n"
    "@@ -1,2 +1,2 @@\n"
    '-"""Module 0."""\n'
    '+"""Module 0, patched."""\n'
    " \n"
)


def with_layers(kind: str, make: Callable[[], Path]) -> Callable[[], Path]:
    def made() -> Path:
        previous = os.environ.get(LAYER_ENV_VAR)
        os.environ[LAYER_ENV_VAR] = kind
        try:
            return make()
        finally:
            if previous is None:
                os.environ.pop(LAYER_ENV_VAR, None)
            else:
                os.environ[LAYER_ENV_VAR] = previous

    return made


def ready(make: Callable[[], Path]) -> Callable[[], Path]:
    """Create, apply a one-file patch, run `true` inside: a check's steps before its command."""

    def made() -> Path:
        path = make()
        apply_patch(path, PATCH)
        view, mounts = sandbox_view(path)
        result = run(["true"], workdir=view, mounts=mounts)
        assert result.ok, result.stderr
        return path

    return made


def timed(methods: dict[str, Callable[[], Path]], runs: int) -> dict[str, tuple[float, float]]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    disk: dict[str, float] = {}
    for _ in range(runs):
        for name, create in methods.items():
            started = time.perf_counter()
            path = create()
            times[name].append(time.perf_counter() - started)
            disk[name] = new_disk_mib(path)
            remove_workspace(path)
    return {name: (statistics.median(t), disk[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--reflink-dir", type=Path, help="a directory on a filesystem with reflinks (XFS, btrfs)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="marlin-bench-") as tmp:
        base_dir = Path(tmp)
        build_repository(base_dir / "src", args.commits, args.files)
        mirror = base_dir / "mirror.git"
        subprocess.run(
            ["git", "clone", "-q", "--mirror", str(base_dir / "src"), str(mirror)],
            check=True,
            env=GIT_ENV,
        )
        head = subprocess.run(
            ["git", "--git-dir", str(mirror), "rev-parse", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        started = time.perf_counter()
        create_base(mirror, head, base_dir / "env")
        base_seconds = time.perf_counter() - started
        root = base_dir / "workspaces"
        methods: dict[str, Callable[[], Path]] = {
            "worktree from mirror (create_workspace)": lambda: create_workspace(mirror, head, root),
            "layer, overlay": with_layers("overlay", lambda: create_layer(base_dir / "env", root)),
            "layer, copy (same fs)": with_layers(
                "copy", lambda: create_layer(base_dir / "env", root)
            ),
        }
        reflink_tmp = None
        if args.reflink_dir:
            reflink_tmp = Path(tempfile.mkdtemp(prefix="marlin-bench-", dir=args.reflink_dir))
            create_base(mirror, head, reflink_tmp / "env")
            methods["layer, copy (reflinks)"] = with_layers(
                "copy", lambda: create_layer(reflink_tmp / "env", reflink_tmp / "workspaces")
            )
        methods["ready: worktree + patch + run"] = ready(methods[next(iter(methods))])
        methods["ready: overlay layer + patch + run"] = ready(methods["layer, overlay"])
        try:
            results = timed(methods, args.runs)
        finally:
            if reflink_tmp is not None:
                shutil.rmtree(reflink_tmp)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, git {_version(['git', '--version'])}, "
        f"Python {platform.python_version()}"
    )
    print(
        f"repository: {args.commits} commits, {args.files} files at head; "
        f"base built once in {base_seconds:.2f} s"
    )
    print(f"median of {args.runs} runs each, interleaved\n")
    print(f"{'method':40} {'create':>10} {'new disk':>10} {'speed-up vs worktree':>21}")
    pairs = {
        "ready: overlay layer + patch + run": "ready: worktree + patch + run",
    }
    for name, (seconds, disk) in results.items():
        baseline = results[pairs.get(name, "worktree from mirror (create_workspace)")][0]
        print(f"{name:40} {seconds * 1000:8.1f}ms {disk:6.1f} MiB {baseline / seconds:20.1f}x")


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
