"""Reading the catalog's bare mirrors. Plain Python, no Django.

Cloning and fetching live in marlin.sandbox.gitutil (argument lists, restricted transports,
no prompts, `--` before URLs, timeouts); this module only adds the read-only queries the
catalog pages need, through the same `run_git`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from marlin.sandbox.gitutil import run_git

MAX_REFS = 1000


@dataclass(frozen=True)
class Ref:
    kind: str  # "branch" or "tag"
    name: str
    sha: str


def is_mirror(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def list_refs(mirror: Path, *, timeout: float = 30, limit: int = MAX_REFS) -> list[Ref]:
    """Branches and tags of a mirror. for-each-ref runs no hooks or filters; `isolated` keeps
    the host user's git configuration out of it."""
    out = run_git(
        [
            "--git-dir",
            str(mirror),
            "for-each-ref",
            f"--count={limit}",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
        ],
        timeout=timeout,
        isolated=True,
    ).decode("utf-8", errors="replace")
    refs: list[Ref] = []
    for line in out.splitlines():
        sha, _, refname = line.partition(" ")
        if refname.startswith("refs/heads/"):
            refs.append(Ref("branch", refname[len("refs/heads/") :], sha))
        elif refname.startswith("refs/tags/"):
            refs.append(Ref("tag", refname[len("refs/tags/") :], sha))
    return refs
