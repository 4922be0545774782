"""The git commands the catalog runs on its bare mirrors. Plain Python, no Django.

Rules (the same as marlin.sandbox.gitutil): an argument list and never a shell; no prompts;
only the https and ssh transports (file only for repositories an administrator allowed); `--`
before every URL; hooks and fsmonitor off; git's location variables dropped from the
environment; a timeout that kills git and its helpers; failures raise GitError carrying the
end of git's stderr. Callers validate URLs with marlin.catalog.validation first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STDERR_TAIL = 2000
MAX_REFS = 1000
_SAFETY_CONFIG = (
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
)
_LOCATION_VARS = frozenset(
    {
        "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
        "GIT_CEILING_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
    }
)


class GitError(Exception):
    """A git command failed or timed out; the message ends with git's own stderr."""


@dataclass(frozen=True)
class Ref:
    kind: str  # "branch" or "tag"
    name: str
    sha: str


def run_git(args: Sequence[str], *, timeout: float, allow_local: bool = False) -> str:
    """Run git with the safety configuration; return stdout or raise GitError."""
    argv = ["git"]
    for item in _SAFETY_CONFIG + (("protocol.file.allow=always",) if allow_local else ()):
        argv += ["-c", item]
    argv += list(args)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _LOCATION_VARS and not key.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
    }
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    # A new session lets the timeout kill git's helpers (ssh, git-remote-https) too.
    process = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise GitError(f"git timed out after {timeout:g} s and was stopped") from None
    except BaseException:
        _kill(process)
        raise
    if process.returncode != 0:
        raise GitError(f"git exited with status {process.returncode}: {tail(stderr) or 'no output'}")
    return stdout.decode("utf-8", errors="replace")


def clone_mirror(url: str, dest: Path, *, allow_local: bool, timeout: float) -> None:
    """Make `dest` a bare mirror of `url`. The clone goes to a temporary folder beside `dest`
    and is renamed into place, so a crash never leaves a half mirror at `dest`."""
    _refuse_option(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".cloning", dir=dest.parent))
    try:
        run_git(
            ["clone", "--mirror", "--quiet", "--", url, str(staging / "repo.git")],
            timeout=timeout,
            allow_local=allow_local,
        )
        if dest.exists():
            shutil.rmtree(dest)  # only ever a mirror that lost its HEAD, i.e. not usable
        (staging / "repo.git").rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch_mirror(url: str, dest: Path, *, allow_local: bool, timeout: float) -> None:
    """Update mirror `dest` from `url` (the validated URL, not the one stored in the mirror's
    config), pruning refs that were deleted upstream."""
    _refuse_option(url)
    run_git(
        ["--git-dir", str(dest), "fetch", "--prune", "--quiet", "--", url, "+refs/*:refs/*"],
        timeout=timeout,
        allow_local=allow_local,
    )


def is_mirror(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def list_refs(mirror: Path, *, timeout: float = 30, limit: int = MAX_REFS) -> list[Ref]:
    """Branches and tags of a mirror (read-only: for-each-ref runs no hooks or filters)."""
    out = run_git(
        [
            "--git-dir", str(mirror), "for-each-ref", f"--count={limit}",
            "--format=%(objectname) %(refname)", "refs/heads", "refs/tags",
        ],
        timeout=timeout,
    )
    refs: list[Ref] = []
    for line in out.splitlines():
        sha, _, refname = line.partition(" ")
        if refname.startswith("refs/heads/"):
            refs.append(Ref("branch", refname[len("refs/heads/") :], sha))
        elif refname.startswith("refs/tags/"):
            refs.append(Ref("tag", refname[len("refs/tags/") :], sha))
    return refs


def tail(stderr: bytes | str) -> str:
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else stderr
    text = text.strip()
    return text if len(text) <= STDERR_TAIL else "…" + text[-STDERR_TAIL:]


def _refuse_option(url: str) -> None:
    # Belt and braces: `--` already stops option parsing, and validation rejects these too.
    if not url or url.startswith("-") or "::" in url.split("/", 1)[0]:
        raise GitError(f"refusing to give git the URL {url[:80]!r}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
