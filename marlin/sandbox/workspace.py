"""Workspaces: detached git worktrees of a bare mirror, where agents work and checks run; and
layers, copy-on-write workspaces over a shared built tree (a base), where checks run.

A base is a checkout that a setup has built in (source tree plus build outputs), with a git
directory of Marlin's beside it: HEAD at the commit, an index, the mirror's tags, the mirror's
objects read through a mount. Inside the sandbox the tree's `.git` file points at that git
directory, mounted read-only, so builds that ask git for their version (setuptools_scm) get an
answer and cannot change the mirror. A layer is an empty upper directory over the base
(overlayfs, mounted by bwrap) or, where there is no overlay, a copy of it (reflinks where the
filesystem has them). The layer's own changes are what the candidate changed; git runs inside
the sandbox, on the merged view, to apply patches there and to diff them against the commit.

A workspace is untrusted once an agent has run in it: it may have rewritten its `.git` file,
written hooks or a config of its own. So git never discovers the repository from the workspace:
every command names the worktree's git directory, recorded at creation time in a marker file
that lives beside the workspace (outside the sandbox's reach), and runs isolated from the
host's git configuration with hooks and fsmonitor off.
"""

from __future__ import annotations

import fcntl
import json
import os
import posixpath
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from marlin.sandbox.core import Limits, Mount, Overlay, backend_name, run
from marlin.sandbox.gitutil import GitError, parse_patch_headers, run_git, validate_ref

__all__ = [
    "GIT_DIR_PATH",
    "JUNK_PATTERNS",
    "PatchRejected",
    "WorkspaceError",
    "WorkspaceInfo",
    "apply_patch",
    "changed_files",
    "create_base",
    "create_layer",
    "create_workspace",
    "diff_workspace",
    "read_marker",
    "remove_workspace",
    "restore_paths",
    "sandbox_view",
    "sweep_stale_workspaces",
    "visible_file",
    "workspace",
]

MARKER_SUFFIX = ".marlin-workspace.json"
WORKSPACE_PREFIX = "ws-"
# overlayfs's scratch directory of a layer, beside it (it must be on the upper's filesystem).
OVERLAY_WORK_SUFFIX = ".ovl"
# A base: the built tree, Marlin's git directory for it, and what it was made from.
BASE_TREE = "tree"
BASE_GIT = "git"
BASE_INFO = "base.json"
# Where the sandbox sees a base's git directory (read-only) and the mirror's objects in it.
GIT_DIR_PATH = "/opt/marlin-git"
GIT_OBJECTS_PATH = f"{GIT_DIR_PATH}/objects"
LAYER_ENV_VAR = "MARLIN_WORKSPACE_LAYERS"
# Stat data differs between the host and an overlay (device, inode), so git compares only
# what survives both (mtime, size, mode): unchanged files then need no re-hash.
_BASE_GIT_CONFIG = """[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tcheckStat = minimal
\ttrustctime = false
\thooksPath = /dev/null
\tfsmonitor = false
\tuntrackedCache = false
[gc]
\tauto = 0
"""

# Build and tool output that never belongs in a candidate, whatever the repository ignores.
JUNK_PATTERNS = (
    "__pycache__/",
    "*.pyc",
    ".pytest_cache/",
    "*.egg-info/",
    "node_modules/",
    ".venv/",
    ".marlin/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".coverage",
    "build/",
    "dist/",
)


class PatchRejected(Exception):
    """A patch was refused: it is empty, malformed, escapes the workspace or does not apply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WorkspaceError(Exception):
    """A path is not a Marlin workspace, or its marker file is unreadable."""


@dataclass(frozen=True)
class WorkspaceInfo:
    path: str
    mirror: str
    gitdir: str | None
    commit: str
    host: str
    pid: int
    pid_start: int | None
    created: float
    # Layers only: the base directory (create_base) and how the layer is made, "overlay" or
    # "copy". Empty for a worktree.
    base: str | None = None
    layer: str = ""


def create_workspace(mirror: Path, commit: str, root: Path) -> Path:
    """Check out `commit` of bare `mirror` as a detached worktree in a new directory under root."""
    mirror = Path(mirror).resolve()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    commit = validate_ref(commit)
    name = f"{WORKSPACE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
    path = root / name
    info = WorkspaceInfo(
        path=str(path),
        mirror=str(mirror),
        gitdir=None,
        commit=commit,
        host=socket.gethostname(),
        pid=os.getpid(),
        pid_start=_process_start(os.getpid()),
        created=time.time(),
    )
    # The marker goes first, so a worker that dies during checkout leaves something to sweep.
    _write_marker(path, info)
    try:
        with _mirror_lock(mirror):
            run_git(
                [
                    "--git-dir",
                    str(mirror),
                    "worktree",
                    "add",
                    "--detach",
                    "--no-checkout",
                    "--quiet",
                    "--",
                    str(path),
                    f"{commit}^{{commit}}",
                ],
                isolated=True,
            )
            # Nothing has run in the worktree yet, so its `.git` file can still be believed.
            gitdir = _read_gitdir_file(path)
        # The checkout is the slow part; outside the lock, workers check out in parallel.
        run_git(
            ["--git-dir", gitdir, "--work-tree", str(path), "reset", "--hard", "--quiet"],
            cwd=path,
            isolated=True,
        )
    except BaseException:
        with suppress(OSError):
            _discard(path, mirror)
        raise
    _write_marker(path, WorkspaceInfo(**{**asdict(info), "gitdir": gitdir}))
    return path


def create_base(mirror: Path, commit: str, dest: Path) -> Path:
    """Check `commit` of bare `mirror` out into `dest/tree`, with Marlin's git directory for it
    in `dest/git` (HEAD, index, tags; objects stay in the mirror), for a setup to build in and
    layers to share. The mirror is only read. Returns the tree."""
    mirror = Path(mirror).resolve()
    dest = Path(dest).resolve()
    commit = validate_ref(commit)
    tree, gitdir = dest / BASE_TREE, dest / BASE_GIT
    tree.mkdir(parents=True)
    (gitdir / "objects").mkdir(parents=True)
    (gitdir / "refs").mkdir()
    sha = (
        run_git(
            ["--git-dir", str(mirror), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
            isolated=True,
        )
        .decode()
        .strip()
    )
    (gitdir / "HEAD").write_text(f"{sha}\n")
    (gitdir / "config").write_text(_BASE_GIT_CONFIG)
    # Tags only: `git describe` (setuptools_scm, versioneer) needs them; branches it does not.
    tags = run_git(
        [
            "--git-dir",
            str(mirror),
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/tags",
        ],
        isolated=True,
    )
    (gitdir / "packed-refs").write_bytes(tags)
    run_git(
        ["--git-dir", str(gitdir), "--work-tree", str(tree), "read-tree", "-u", "--reset", sha],
        cwd=tree,
        env={"GIT_OBJECT_DIRECTORY": str(mirror / "objects")},
        isolated=True,
    )
    (tree / ".git").write_text(f"gitdir: {GIT_DIR_PATH}\n")
    (dest / BASE_INFO).write_text(json.dumps({"mirror": str(mirror), "commit": sha}))
    return tree


def base_mounts(base: Path) -> list[Mount]:
    """What the sandbox needs to run git in a base's tree: its git directory and the mirror's
    objects, both read-only."""
    info = _read_base(Path(base))
    return [
        Mount(source=Path(base) / BASE_GIT, target=GIT_DIR_PATH),
        Mount(source=Path(info["mirror"]) / "objects", target=GIT_OBJECTS_PATH),
    ]


def create_layer(base: Path, root: Path, *, backend: str | None = None) -> Path:
    """A workspace over the built tree of `base` (create_base): an empty copy-on-write layer
    under bwrap, or a copy of the tree (reflinked where the filesystem can) otherwise, or when
    $MARLIN_WORKSPACE_LAYERS is "copy". The base is never written."""
    base = Path(base).resolve()
    found = _read_base(base)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    name = f"{WORKSPACE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"
    path = root / name
    layer = layer_kind(backend)
    _write_marker(
        path,
        WorkspaceInfo(
            path=str(path),
            mirror=found["mirror"],
            gitdir=str(base / BASE_GIT),
            commit=found["commit"],
            host=socket.gethostname(),
            pid=os.getpid(),
            pid_start=_process_start(os.getpid()),
            created=time.time(),
            base=str(base),
            layer=layer,
        ),
    )
    try:
        if layer == "overlay":
            path.mkdir()
            _overlay_work(path).mkdir()
        else:
            subprocess.run(
                ["cp", "-a", "--reflink=auto", "--", str(base / BASE_TREE), str(path)],
                check=True,
                capture_output=True,
            )
    except BaseException:
        with suppress(OSError):
            _discard(path, None)
        raise
    return path


def layer_kind(backend: str | None = None) -> str:
    """ "overlay" under bwrap, "copy" under the local backend (no mount namespace) or when
    $MARLIN_WORKSPACE_LAYERS says "copy"."""
    chosen = os.environ.get(LAYER_ENV_VAR, "").strip().lower()
    if chosen not in ("", "overlay", "copy"):
        raise WorkspaceError(f"{LAYER_ENV_VAR} is {chosen!r}; use 'overlay' or 'copy'")
    if chosen == "copy" or backend_name(backend) != "bwrap":
        return "copy"
    return "overlay"


def sandbox_view(path: Path) -> tuple[Path | Overlay, list[Mount]]:
    """What to give `marlin.sandbox.run` for a workspace: its workdir (an Overlay for an overlay
    layer) and the mounts git needs inside (a layer's base git directory and objects)."""
    path = Path(path)
    try:
        info = read_marker(path)
    except WorkspaceError:
        return path, []
    if not info.layer or not info.base:
        return path, []
    base = Path(info.base)
    mounts = base_mounts(base)
    if info.layer == "overlay":
        return Overlay(lower=base / BASE_TREE, upper=path, work=_overlay_work(path)), mounts
    return path, mounts


def visible_file(workdir: Path, relative: str) -> Path | None:
    """The host path of the regular file the sandbox sees at `relative` in the workspace: the
    layer's own copy, else (overlay layers) the base's; None when there is none, or when it is a
    link or something else. For reading small files the host decides on (a linter's config)."""
    workdir = Path(workdir)
    own = workdir / relative
    if os.path.lexists(own):
        return own if own.is_file() and not own.is_symlink() else None
    lower = _lower_tree(workdir)
    if lower is None:
        return None
    # A deleted or replaced parent in the layer hides the base's file.
    parts = Path(relative).parts
    for i in range(1, len(parts)):
        parent = workdir.joinpath(*parts[:i])
        if os.path.lexists(parent) and (not parent.is_dir() or _opaque(str(parent))):
            return None
    shown = lower / relative
    return shown if shown.is_file() and not shown.is_symlink() else None


def remove_workspace(path: Path) -> None:
    """Remove the worktree and its marker; works on a workspace an agent has mangled."""
    path = Path(path)
    try:
        info = read_marker(path)
    except WorkspaceError:
        info = None
    _discard(path, Path(info.mirror) if info and not info.layer else None)


@contextmanager
def workspace(mirror: Path, commit: str, root: Path) -> Iterator[Path]:
    """A workspace that is removed when the block ends, however it ends."""
    path = create_workspace(mirror, commit, root)
    try:
        yield path
    finally:
        remove_workspace(path)


def sweep_stale_workspaces(root: Path, *, older_than_seconds: float) -> list[Path]:
    """Remove workspaces under root whose owner process is gone or that are older than the
    threshold; return their paths. Meant for worker start-up."""
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time()
    host = socket.gethostname()
    removed: list[Path] = []
    for marker in sorted(root.glob(f"{WORKSPACE_PREFIX}*{MARKER_SUFFIX}")):
        path = root / marker.name[: -len(MARKER_SUFFIX)]
        try:
            info = read_marker(path)
        except WorkspaceError:
            info = None
        if info is None:
            stale = now - marker.stat().st_mtime > older_than_seconds
        else:
            too_old = now - info.created > older_than_seconds
            owner_gone = info.host == host and not _process_alive(info.pid, info.pid_start)
            stale = too_old or owner_gone
        if stale:
            _discard(path, Path(info.mirror) if info and not info.layer else None)
            removed.append(path)
    # A directory without a marker can only come from a crash mid-removal; age is all we have.
    for path in sorted(root.glob(f"{WORKSPACE_PREFIX}*")):
        if path.name.endswith(OVERLAY_WORK_SUFFIX):
            owner = path.with_name(path.name[: -len(OVERLAY_WORK_SUFFIX)])
            if not owner.exists() and not _marker_path(owner).exists():
                if now - path.lstat().st_mtime > older_than_seconds:
                    _rmtree(path)
            continue
        if path.is_dir() and not _marker_path(path).exists() and path not in removed:
            if now - path.lstat().st_mtime > older_than_seconds:
                _rmtree(path)
                removed.append(path)
    return removed


def read_marker(path: Path) -> WorkspaceInfo:
    marker = _marker_path(Path(path))
    try:
        data = json.loads(marker.read_text())
        return WorkspaceInfo(**data)
    except FileNotFoundError:
        raise WorkspaceError(
            f"{path} is not a Marlin workspace (no {marker.name} beside it); "
            "create it with create_workspace"
        ) from None
    except (ValueError, TypeError) as exc:
        raise WorkspaceError(f"marker file {marker} is unreadable: {exc}") from None


def apply_patch(workdir: Path, patch: str) -> None:
    """Apply a unified (git) diff to the workspace, or raise PatchRejected saying why not."""
    workdir = Path(workdir).resolve()
    if not patch.strip():
        raise PatchRejected("empty patch")
    if not patch.endswith("\n"):
        patch += "\n"
    data = patch.encode("utf-8", errors="surrogateescape")
    git_paths = _git_patch_paths(workdir, data)
    _check_patch(workdir, patch, git_paths)
    info = read_marker(workdir)
    if info.layer:
        try:
            _layer_git(
                workdir, info, "git apply --verbose --whitespace=nowarn --binary -", stdin=data
            )
        except GitError as exc:
            raise PatchRejected(f"patch does not apply: {exc}") from None
        return
    try:
        _workspace_git(
            workdir,
            ["apply", "--verbose", "--whitespace=nowarn", "--binary", "-"],
            stdin=data,
        )
    except GitError as exc:
        raise PatchRejected(f"patch does not apply: {exc}") from None


def restore_paths(workdir: Path, base_commit: str, paths: list[str]) -> None:
    """Put `paths` back as they are in base_commit (deleting those it does not have), as
    SWE-bench does with test files before applying hidden tests over a candidate that may have
    edited them. Paths get the same checks as a patch's."""
    workdir = Path(workdir).resolve()
    base_commit = validate_ref(base_commit)
    for path in paths:
        _check_path(workdir, path, changes_link=False)
    if not paths:
        return
    info = read_marker(workdir)
    if info.layer:
        _restore_in_layer(workdir, info, base_commit, paths)
        return
    listed = _workspace_git(workdir, ["ls-tree", "-z", "--name-only", base_commit, "--", *paths])
    in_base = {p for p in listed.decode("utf-8", errors="surrogateescape").split("\0") if p}
    if in_base:
        _workspace_git(
            workdir, ["restore", f"--source={base_commit}", "--worktree", "--", *sorted(in_base)]
        )
    for path in set(paths) - in_base:
        target = workdir / path
        if target.is_symlink() or target.is_file():
            target.unlink()


def diff_workspace(workdir: Path, base_commit: str) -> str:
    """The candidate: every change in the working tree against base_commit, as a git diff with
    renames detected and binary files included, leaving out build junk."""
    out = _diff_against_base(
        workdir, base_commit, ["--binary", "-M", "--src-prefix=a/", "--dst-prefix=b/"]
    )
    return out.decode("utf-8", errors="replace")


def changed_files(workdir: Path, base_commit: str) -> list[str]:
    """Paths added or modified in the working tree since base_commit (deletions left out),
    relative to the workspace, junk excluded."""
    out = _diff_against_base(workdir, base_commit, ["--name-only", "-z", "--diff-filter=d", "-M"])
    return [p for p in out.decode("utf-8", errors="surrogateescape").split("\0") if p]


def _diff_against_base(workdir: Path, base_commit: str, diff_args: list[str]) -> bytes:
    # `git add -A` goes into a throwaway index so the worktree's own index is never changed.
    workdir = Path(workdir).resolve()
    base_commit = validate_ref(base_commit)
    info = read_marker(workdir)
    if info.layer:
        return _diff_layer(workdir, info, base_commit, diff_args)
    gitdir = _require_gitdir(workdir)
    with tempfile.TemporaryDirectory(prefix="marlin-diff-") as tmp:
        index = Path(tmp) / "index"
        excludes = Path(tmp) / "exclude"
        excludes.write_text("\n".join(JUNK_PATTERNS) + "\n")
        # Starting from the worktree's own index keeps git's stat cache (no rehash of unchanged
        # files); read-tree then makes it match the base exactly, whatever happened to it.
        real_index = Path(gitdir) / "index"
        if real_index.is_file():
            shutil.copyfile(real_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        config = ["-c", f"core.excludesFile={excludes}", "-c", "core.untrackedCache=false"]
        _workspace_git(workdir, [*config, "read-tree", "-m", f"{base_commit}^{{tree}}"], env=env)
        _workspace_git(workdir, [*config, "add", "-A", "--", "."], env=env)
        return _workspace_git(
            workdir,
            [
                *config,
                "diff",
                "--cached",
                "--no-ext-diff",
                "--no-textconv",
                "--no-color",
                *diff_args,
                base_commit,
                "--",
            ],
            env=env,
        )


# Scratch space for git inside the sandbox: its index and the objects `update-index` writes
# (the base's git directory and the mirror's objects are read-only there).
_LAYER_SCRIPT_HEAD = """set -euo pipefail
scratch="${TMPDIR:-/tmp}/marlin-git-$$"
mkdir -p "$scratch/objects"
export GIT_OBJECT_DIRECTORY="$scratch/objects" GIT_INDEX_FILE="$scratch/index"
"""
# Paths the layer changed (stdin, NUL-separated) whose state differs from the commit: tracked
# ones and new files that are not ignored (the repository's .gitignore plus JUNK_PATTERNS),
# staged into a scratch index that starts as the commit's tree.
_LAYER_STAGE = """printf '%s\\n' "${@:2}" > "$scratch/exclude"
git read-tree "$1^{tree}"
xargs -0 -r git ls-files -z --cached --others --exclude-standard \\
    --exclude-from="$scratch/exclude" -- | git update-index -z --add --remove --stdin
"""
LAYER_GIT_TIMEOUT_SECONDS = 600.0


def _layer_git(
    workdir: Path,
    info: WorkspaceInfo,
    script: str,
    *,
    args: list[str] | tuple[str, ...] = (),
    stdin: bytes | None = None,
) -> bytes:
    """Run a bash script of git commands on a layer's merged view, in the sandbox (git never
    reads the candidate's files on the host); raise GitError with git's words if it fails."""
    view, mounts = sandbox_view(workdir)
    local = backend_name() == "local"  # no mounts there: the host's own paths
    env = {
        "GIT_DIR": str(info.gitdir) if local else GIT_DIR_PATH,
        "GIT_WORK_TREE": str(workdir) if local else "/workspace",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": (
            str(Path(info.mirror) / "objects") if local else GIT_OBJECTS_PATH
        ),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = run(
        ["bash", "-c", _LAYER_SCRIPT_HEAD + script, "marlin-git", *args],
        workdir=view,
        env=env,
        stdin=stdin,
        timeout=LAYER_GIT_TIMEOUT_SECONDS,
        limits=Limits(memory_mb=4096, max_output_bytes=2 * MAX_PATCH_BYTES),
        mounts=mounts,
    )
    if not result.ok:
        if result.timed_out:
            raise GitError(f"git timed out after {LAYER_GIT_TIMEOUT_SECONDS:g} s")
        raise GitError(result.stderr.strip()[-2000:] or f"git exited {result.returncode}")
    if result.truncated:
        raise GitError(f"git's output is larger than {2 * MAX_PATCH_BYTES // 2**20} MiB")
    return result.stdout.encode("utf-8", errors="surrogateescape")


def _diff_layer(
    workdir: Path, info: WorkspaceInfo, base_commit: str, diff_args: list[str]
) -> bytes:
    """The layer's changes against the commit. Only paths the layer itself changed count, so
    what the setup built into the base (generated modules, compiled extensions) is not part
    of the candidate."""
    changed = _layer_changes(workdir, info)
    if not changed:
        return b""
    script = (
        _LAYER_STAGE
        + 'git diff --cached --no-ext-diff --no-textconv --no-color "${DIFF[@]}" "$1" --\n'
    )
    quoted = " ".join(_shell_word(a) for a in diff_args)
    return _layer_git(
        workdir,
        info,
        f"DIFF=({quoted})\n" + script,
        args=[base_commit, *JUNK_PATTERNS],
        stdin=b"\0".join(p.encode("utf-8", errors="surrogateescape") for p in changed),
    )


def _restore_in_layer(
    workdir: Path, info: WorkspaceInfo, base_commit: str, paths: list[str]
) -> None:
    listed = run_git(
        ["--git-dir", str(info.gitdir), "ls-tree", "-z", "--name-only", base_commit, "--", *paths],
        env={"GIT_OBJECT_DIRECTORY": str(Path(info.mirror) / "objects")},
        isolated=True,
    )
    in_base = sorted({p for p in listed.decode("utf-8", errors="surrogateescape").split("\0") if p})
    gone = sorted(set(paths) - set(in_base))
    script = (
        "source=$1; count=$2; shift 2\n"
        'if [ "$count" -gt 0 ]; then git restore --source="$source" --worktree -- '
        '"${@:1:$count}"; fi\n'
        'shift "$count"\n'
        'if [ "$#" -gt 0 ]; then rm -f -- "$@"; fi\n'
    )
    _layer_git(workdir, info, script, args=[base_commit, str(len(in_base)), *in_base, *gone])


def _layer_changes(workdir: Path, info: WorkspaceInfo) -> list[str]:
    """Relative paths the layer changed: everything in an overlay's upper directory (files,
    links, whiteouts, opaque directories), or for a copy, what differs from the base tree by
    type, size, mode or mtime, and what it no longer has."""
    changed: list[str] = []
    if info.layer == "overlay":
        for parent, dirs, files in os.walk(workdir):
            rel = os.path.relpath(parent, workdir)
            for name in list(dirs):
                full = os.path.join(parent, name)
                if os.path.islink(full) or _opaque(full):
                    changed.append(os.path.normpath(os.path.join(rel, name)))
            changed += [os.path.normpath(os.path.join(rel, name)) for name in files]
    else:
        base_tree = Path(str(info.base)) / BASE_TREE
        seen: set[str] = set()
        for parent, dirs, files in os.walk(workdir):
            rel = os.path.relpath(parent, workdir)
            for name in files + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
                path = os.path.normpath(os.path.join(rel, name))
                seen.add(path)
                if _stat_key(workdir / path) != _stat_key(base_tree / path):
                    changed.append(path)
        for parent, _dirs, files in os.walk(base_tree):
            rel = os.path.relpath(parent, base_tree)
            for name in files:
                path = os.path.normpath(os.path.join(rel, name))
                if path not in seen and not os.path.lexists(workdir / path):
                    changed.append(path)
    return sorted(p for p in changed if p != ".git" and not p.startswith(".git/"))


def _opaque(path: str) -> bool:
    # A directory deleted and made again in the layer hides the base's: overlayfs marks it.
    for name in ("user.overlay.opaque", "trusted.overlay.opaque"):
        with suppress(OSError):
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
    return False


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_mode, info.st_size, info.st_mtime_ns)


def _shell_word(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _workspace_git(
    workdir: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    gitdir = _require_gitdir(workdir)
    return run_git(
        ["--git-dir", gitdir, "--work-tree", str(workdir), *args],
        cwd=workdir,
        env=env,
        isolated=True,
        stdin=stdin,
    )


def _require_gitdir(workdir: Path) -> str:
    info = read_marker(workdir)
    if not info.gitdir or not Path(info.gitdir).is_dir():
        raise WorkspaceError(f"workspace {workdir} has no git directory; it was not fully created")
    return info.gitdir


def _git_patch_paths(workdir: Path, data: bytes) -> list[str]:
    """The paths git itself reads from the patch (the parser `git apply` will use)."""
    try:
        out = _workspace_git(workdir, ["apply", "--numstat", "-z", "-"], stdin=data)
    except GitError as exc:
        raise PatchRejected(f"not a valid patch: {exc}") from None
    paths = []
    for field in out.decode("utf-8", errors="surrogateescape").split("\0"):
        name = field.split("\t", 2)[2] if field.count("\t") >= 2 else field
        if name:
            paths.append(name)
    return paths


MAX_PATCH_BYTES = 64 * 1024 * 1024


def _check_patch(workdir: Path, patch: str, git_paths: list[str]) -> None:
    if len(patch) > MAX_PATCH_BYTES:
        raise PatchRejected(f"patch is larger than {MAX_PATCH_BYTES // 2**20} MiB")
    paths = set(git_paths)
    link_paths: set[str] = set()
    for section in parse_patch_headers(patch):
        name = section.new_path or (section.paths[-1] if section.paths else "a file")
        if section.binary_without_content:
            raise PatchRejected(
                f"binary change to {name!r} has no content ('Binary files ... differ'); "
                "make the patch with `git diff --binary`"
            )
        paths.update(section.paths)
        if section.is_link:
            link_paths.update(section.paths)
        if section.link_target is not None:
            _check_link_target(name, section.link_target)
    for path in sorted(paths):
        _check_path(workdir, path, changes_link=path in link_paths)


def _check_path(workdir: Path, path: str, *, changes_link: bool) -> None:
    if path.startswith("/"):
        raise PatchRejected(f"patch touches absolute path {path!r}; paths must be relative")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PatchRejected(f"patch path {path!r} contains '..' and could leave the workspace")
    if any(p.lower() == ".git" for p in parts):
        raise PatchRejected(f"patch touches {path!r} inside .git; git metadata is off limits")
    lower = _lower_tree(workdir)
    for i in range(len(parts)):
        current = workdir.joinpath(*parts[: i + 1])
        if lower is not None and not os.path.lexists(current):
            current = lower.joinpath(*parts[: i + 1])  # what the overlay shows: the base's
        if current.is_symlink():
            last = i == len(parts) - 1
            if last and changes_link:
                return  # the patch changes or deletes the link itself, as a link
            where = "/".join(parts[: i + 1])
            what = "is a symlink" if last else f"goes through the symlink {where!r}"
            raise PatchRejected(
                f"patch path {path!r} {what} (-> {os.readlink(current)!r}); "
                "patches may not write through symlinks"
            )
        if not current.exists():
            return


def _lower_tree(workdir: Path) -> Path | None:
    """The base tree under an overlay layer, whose paths show through where the layer has none."""
    try:
        info = read_marker(workdir)
    except WorkspaceError:
        return None
    return Path(info.base) / BASE_TREE if info.layer == "overlay" and info.base else None


def _check_link_target(path: str, target: str) -> None:
    if target.startswith("/"):
        raise PatchRejected(f"patch makes {path!r} a symlink to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise PatchRejected(
            f"patch makes {path!r} a symlink to {target!r}, which points outside the workspace"
        )
    if any(p.lower() == ".git" for p in resolved.split("/")):
        raise PatchRejected(f"patch makes {path!r} a symlink into .git ({target!r})")


def _discard(path: Path, mirror: Path | None) -> None:
    # Deleting the directory and then pruning works even when an agent has broken the
    # worktree's `.git` file, which `git worktree remove` would refuse.
    if path.exists() or path.is_symlink():
        _rmtree(path)
    work = _overlay_work(path)
    if work.exists():
        _rmtree(work)
    if mirror is not None and mirror.is_dir():
        try:
            with _mirror_lock(mirror):
                run_git(["--git-dir", str(mirror), "worktree", "prune"], isolated=True)
        except GitError:
            pass  # prune only tidies metadata; the next prune will catch it
    _marker_path(path).unlink(missing_ok=True)


@contextmanager
def _mirror_lock(mirror: Path) -> Iterator[None]:
    """Serialise changes to a mirror's list of worktrees: git reads every worktree's metadata
    when adding or pruning one, and fails on one another process is half-way through writing."""
    with open(mirror / "marlin-worktrees.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return

    # An agent may leave read-only directories behind, and overlayfs leaves its work directory
    # at mode 000, which only root can walk (a worker running as another user, as in the
    # container image, cannot): make them writable and retry once. A directory rmtree could
    # not open is removed whole here, as rmtree has given up on it. Once per path: a second
    # failure is the real error.
    tried: set[str] = set()

    def retry(
        function: Callable[..., object],
        failed: str,
        exc_info: tuple[type[BaseException], BaseException, TracebackType],
    ) -> None:
        if failed in tried:
            raise exc_info[1]
        tried.add(failed)
        parent = os.path.dirname(failed)
        os.chmod(parent, stat.S_IRWXU)
        if os.path.isdir(failed) and not os.path.islink(failed):
            os.chmod(failed, stat.S_IRWXU)
            shutil.rmtree(failed, onerror=retry)
        else:
            function(failed)

    shutil.rmtree(path, onerror=retry)


def _overlay_work(path: Path) -> Path:
    return path.parent / f"{path.name}{OVERLAY_WORK_SUFFIX}"


def _read_base(base: Path) -> dict[str, str]:
    try:
        data = json.loads((base / BASE_INFO).read_text())
        return {"mirror": str(data["mirror"]), "commit": str(data["commit"])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkspaceError(
            f"{base} is not a built base (no readable {BASE_INFO}): {exc}"
        ) from None


def _marker_path(path: Path) -> Path:
    return path.parent / f"{path.name}{MARKER_SUFFIX}"


def _write_marker(path: Path, info: WorkspaceInfo) -> None:
    marker = _marker_path(path)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2))
    tmp.replace(marker)


def _read_gitdir_file(path: Path) -> str:
    text = (path / ".git").read_text().strip()
    if not text.startswith("gitdir: "):
        raise WorkspaceError(f"unexpected .git file in new worktree {path}: {text[:200]!r}")
    gitdir = Path(text[len("gitdir: ") :])
    return str(gitdir if gitdir.is_absolute() else (path / gitdir).resolve())


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks (Linux), to tell a reused pid from its owner."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields resume after ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _process_alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    if start is None:
        return True
    current = _process_start(pid)
    return current is None or current == start
