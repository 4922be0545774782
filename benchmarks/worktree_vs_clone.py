"""How long it takes to get a working copy of a task's commit: a worktree from the bare mirror
(what Marlin does) against a `git clone` of that mirror (what one would do otherwise).

Builds a repository with 5,000 commits over 2,000 files with `git fast-import`, mirrors it, then
times, several runs each, median reported:
  - create_workspace (git worktree add --detach from the mirror, plus Marlin's marker file)
  - git clone of the mirror (local: objects hard-linked, the cheapest clone there is)
  - git clone --no-local of the mirror (objects packed and copied, as from a server)
and removal of each.

    .venv/bin/python benchmarks/worktree_vs_clone.py [--commits 5000] [--files 2000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from marlin.sandbox.workspace import create_workspace, remove_workspace  # noqa: E402

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def build_repository(path: Path, commits: int, files: int) -> None:
    """A repository whose history has `commits` commits: the first adds `files` files of a few
    KiB of Python-looking text, each later one edits three of them."""
    rng = random.Random(42)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=GIT_ENV)
    contents = {f"src/pkg{i % 40}/module_{i}.py": _text(rng, i) for i in range(files)}
    stream = bytearray()
    when = 1_700_000_000
    for n in range(commits):
        changed = contents if n == 0 else dict.fromkeys(rng.sample(sorted(contents), 3))
        stream += b"commit refs/heads/main\n"
        stream += f"committer Bench <bench@example.org> {when + n * 60} +0000\n".encode()
        message = f"change {n}\n".encode()
        stream += f"data {len(message)}\n".encode() + message
        # Without a `from` line fast-import continues the branch from its current tip.
        for name in changed:
            if n:
                contents[name] += f"\n# edit {n}\nVALUE_{n} = {rng.randrange(10**6)}\n"
            data = contents[name].encode()
            stream += f"M 100644 inline {name}\n".encode()
            stream += f"data {len(data)}\n".encode() + data + b"\n"
        stream += b"\n"
    subprocess.run(
        ["git", "fast-import", "--quiet"], cwd=path, input=bytes(stream), check=True, env=GIT_ENV
    )
    subprocess.run(["git", "gc", "--quiet"], cwd=path, check=True, env=GIT_ENV)


def _text(rng: random.Random, i: int) -> str:
    lines = [f'"""Module {i}."""', ""]
    for j in range(rng.randrange(40, 120)):
        lines.append(f"def function_{j}(value):\n    return value * {rng.randrange(1000)}\n")
    return "\n".join(lines)


Method = tuple[Callable[[], Path], Callable[[Path], None]]


def timed(methods: dict[str, Method], runs: int) -> dict[str, tuple[float, float, float]]:
    """Per method: median create and remove seconds, and the new disk one copy takes (MiB).
    Runs are interleaved across methods so that load from other processes hits all alike."""
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in methods}
    disk: dict[str, float] = {}
    for _ in range(runs):
        for name, (create, remove) in methods.items():
            started = time.perf_counter()
            path = create()
            times[name][0].append(time.perf_counter() - started)
            disk[name] = new_disk_mib(path)
            started = time.perf_counter()
            remove(path)
            times[name][1].append(time.perf_counter() - started)
    return {
        name: (statistics.median(c), statistics.median(r), disk[name])
        for name, (c, r) in times.items()
    }


def new_disk_mib(path: Path) -> float:
    # Files hard-linked with the mirror (a local clone's objects) take no new space.
    total = 0
    for item in path.rglob("*"):
        info = item.lstat()
        if item.is_file() and not item.is_symlink() and info.st_nlink == 1:
            total += info.st_blocks * 512
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="marlin-bench-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        build_repository(base / "src", args.commits, args.files)
        built = time.perf_counter() - started
        mirror = base / "mirror.git"
        subprocess.run(
            ["git", "clone", "-q", "--mirror", str(base / "src"), str(mirror)],
            check=True,
            env=GIT_ENV,
        )
        head = subprocess.run(
            ["git", "--git-dir", str(mirror), "rev-parse", "main"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        pack_mib = (
            sum(p.stat().st_size for p in (mirror / "objects").rglob("*") if p.is_file()) / 2**20
        )
        counter = iter(range(10**6))

        def clone(*flags: str) -> Callable[[], Path]:
            def make() -> Path:
                dest = base / f"clone-{next(counter)}"
                subprocess.run(
                    ["git", "clone", "-q", *flags, str(mirror), str(dest)], check=True, env=GIT_ENV
                )
                return dest

            return make

        results = timed(
            {
                "worktree from mirror (create_workspace)": (
                    lambda: create_workspace(mirror, head, base / "workspaces"),
                    remove_workspace,
                ),
                "git clone (local, hard links)": (clone(), shutil.rmtree),
                "git clone --no-local (copies packs)": (clone("--no-local"), shutil.rmtree),
            },
            args.runs,
        )

    worktree = results["worktree from mirror (create_workspace)"][0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}, git {_git_version()}, Python {platform.python_version()}"
    )
    print(
        f"repository: {args.commits} commits, {args.files} files at head, "
        f"mirror objects {pack_mib:.1f} MiB (built with fast-import in {built:.1f} s)"
    )
    print(f"median of {args.runs} runs each, interleaved\n")
    print(f"{'method':42} {'create':>9} {'remove':>9} {'new disk':>10} {'create vs worktree':>19}")
    for name, (create, remove, disk) in results.items():
        print(
            f"{name:42} {create * 1000:7.0f}ms {remove * 1000:7.0f}ms {disk:6.1f} MiB "
            f"{create / worktree:18.2f}x"
        )


def _git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]


if __name__ == "__main__":
    main()
