"""Workspaces on real git repositories built in tmp dirs: creation, patches, diffs, cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marlin.sandbox.gitutil import GitError
from marlin.sandbox.workspace import (
    PatchRejected,
    WorkspaceError,
    apply_patch,
    changed_files,
    create_workspace,
    diff_workspace,
    read_marker,
    remove_workspace,
    restore_paths,
    sweep_stale_workspaces,
    workspace,
)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dave",
    "GIT_AUTHOR_EMAIL": "dave@example.org",
    "GIT_COMMITTER_NAME": "dave",
    "GIT_COMMITTER_EMAIL": "dave@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, str]:
    """A bare mirror of a small repository, and its head commit."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (src / "README.md").write_text("hello\n")
    (src / "old_name.txt").write_text("a file that will be renamed\n" * 5)
    (src / "doomed.txt").write_text("a file that will be deleted\n")
    (src / "build").mkdir()
    (src / "build" / "tracked.txt").write_text("tracked even though build/ is junk\n")
    (src / "logo.bin").write_bytes(bytes(range(256)))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "initial")
    git(src, "tag", "v1")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(src), str(mirror))
    return mirror, git(src, "rev-parse", "HEAD")


@pytest.fixture
def ws(mirror: tuple[Path, str], tmp_path: Path) -> Path:
    path = create_workspace(mirror[0], mirror[1], tmp_path / "workspaces")
    yield path
    remove_workspace(path)


def test_it_checks_out_the_commit_as_a_detached_worktree(
    mirror: tuple[Path, str], ws: Path
) -> None:
    assert (ws / "pkg" / "core.py").read_text().startswith("def add")
    info = read_marker(ws)
    assert info.commit == mirror[1]
    assert info.pid == os.getpid()
    assert Path(info.gitdir).is_dir()
    assert diff_workspace(ws, mirror[1]) == ""


def test_it_records_who_owns_a_workspace_beside_it_not_inside_it(ws: Path) -> None:
    markers = list(ws.parent.glob("*.marlin-workspace.json"))
    assert [m.name for m in markers] == [f"{ws.name}.marlin-workspace.json"]
    assert not list(ws.rglob("*.marlin-workspace.json"))


def test_it_gives_every_workspace_its_own_directory(mirror: tuple[Path, str], tmp_path) -> None:
    a = create_workspace(mirror[0], mirror[1], tmp_path / "w")
    b = create_workspace(mirror[0], "v1", tmp_path / "w")
    try:
        assert a != b and a.is_dir() and b.is_dir()
    finally:
        remove_workspace(a)
        remove_workspace(b)
    assert not a.exists() and not b.exists()
    assert git(mirror[0], "worktree", "list").count("\n") == 0  # only the bare repo itself


def test_it_refuses_a_commit_that_is_not_a_valid_ref(mirror: tuple[Path, str], tmp_path) -> None:
    with pytest.raises(GitError, match="must not start with '-'"):
        create_workspace(mirror[0], "--orphan", tmp_path / "w")
    with pytest.raises(GitError, match="failed"):
        create_workspace(mirror[0], "no-such-branch", tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []  # nothing half-made is left behind


def test_the_context_manager_cleans_up_after_an_exception(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    root = tmp_path / "w"
    with pytest.raises(RuntimeError, match="agent crashed"):
        with workspace(mirror[0], mirror[1], root) as path:
            (path / "scratch.txt").write_text("work in progress")
            raise RuntimeError("agent crashed")
    assert not path.exists()
    assert list(root.iterdir()) == []
    assert "scratch" not in git(mirror[0], "worktree", "list")


def test_it_removes_a_workspace_an_agent_has_mangled(mirror: tuple[Path, str], tmp_path) -> None:
    path = create_workspace(mirror[0], mirror[1], tmp_path / "w")
    (path / ".git").unlink()
    (path / ".git").mkdir()  # the agent replaced the worktree link with a repository of its own
    locked = path / "locked"
    locked.mkdir()
    (locked / "f").write_text("x")
    locked.chmod(0o500)
    remove_workspace(path)
    assert not path.exists()
    assert list((tmp_path / "w").iterdir()) == []
    assert git(mirror[0], "worktree", "list").count("\n") == 0


def test_it_sweeps_a_workspace_whose_owner_process_is_dead(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    root = tmp_path / "w"
    # A real worker process creates a workspace and exits without cleaning up.
    code = (
        "import sys; from pathlib import Path; from marlin.sandbox.workspace import "
        "create_workspace; print(create_workspace(Path(sys.argv[1]), sys.argv[2], "
        "Path(sys.argv[3])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(mirror[0]), mirror[1], str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    orphan = Path(out.stdout.strip())
    mine = create_workspace(mirror[0], mirror[1], root)
    try:
        assert orphan.is_dir()
        removed = sweep_stale_workspaces(root, older_than_seconds=3600)
        assert removed == [orphan]
        assert not orphan.exists() and mine.is_dir()
        # Past the age threshold even a live owner's workspace is swept.
        assert sweep_stale_workspaces(root, older_than_seconds=0) == [mine]
        assert list(root.iterdir()) == []
    finally:
        remove_workspace(mine)


def test_diff_includes_new_deleted_renamed_and_binary_files(
    mirror: tuple[Path, str], ws: Path
) -> None:
    (ws / "pkg" / "core.py").write_text("def add(a, b):\n    return b + a\n")
    (ws / "pkg" / "new_module.py").write_text("VALUE = 1\n")
    (ws / "doomed.txt").unlink()
    (ws / "old_name.txt").rename(ws / "new_name.txt")
    (ws / "logo.bin").write_bytes(bytes(reversed(range(256))))
    (ws / "build" / "tracked.txt").write_text("changed\n")
    diff = diff_workspace(ws, mirror[1])
    assert "+    return b + a" in diff
    assert "diff --git a/pkg/new_module.py b/pkg/new_module.py\nnew file mode 100644" in diff
    assert "diff --git a/doomed.txt b/doomed.txt\ndeleted file mode 100644" in diff
    assert "rename from old_name.txt\nrename to new_name.txt" in diff
    assert "GIT binary patch" in diff
    assert "+changed" in diff  # tracked files inside a junk folder still count


def test_diff_leaves_out_build_junk(mirror: tuple[Path, str], ws: Path) -> None:
    for junk in [
        "pkg/__pycache__/core.cpython-311.pyc",
        "stray.pyc",
        ".pytest_cache/v/x",
        "pkg.egg-info/PKG-INFO",
        "node_modules/left-pad/index.js",
        ".venv/bin/python",
        ".marlin/junit-1.xml",
        ".mypy_cache/x",
        ".ruff_cache/x",
        ".coverage",
        "build/lib/pkg.py",
        "dist/pkg.whl",
    ]:
        (ws / junk).parent.mkdir(parents=True, exist_ok=True)
        (ws / junk).write_text("junk")
    (ws / "real_change.py").write_text("x = 1\n")
    diff = diff_workspace(ws, mirror[1])
    assert diff.count("diff --git") == 1
    assert "real_change.py" in diff


def test_diff_leaves_the_worktree_index_untouched(mirror: tuple[Path, str], ws: Path) -> None:
    index = Path(read_marker(ws).gitdir) / "index"
    before = index.read_bytes()
    (ws / "brand_new.py").write_text("y = 2\n")
    diff_workspace(ws, mirror[1])
    assert index.read_bytes() == before


def test_diff_ignores_a_git_config_the_agent_planted(mirror: tuple[Path, str], ws: Path) -> None:
    # The agent replaces .git with its own repository whose config would run a program.
    (ws / ".git").unlink()
    hooks = ws / ".git"
    git(ws, "init", "-q")
    proof = ws.parent / "pwned"
    (hooks / "config").write_text(
        f'[core]\n\tfsmonitor = touch {proof}\n[filter "evil"]\n\tclean = touch {proof}\n'
    )
    (ws / ".gitattributes").write_text("* filter=evil\n")
    (ws / "pkg" / "core.py").write_text("changed = True\n")
    diff = diff_workspace(ws, mirror[1])
    assert "+changed = True" in diff
    assert not proof.exists()


def test_diff_and_patch_refuse_a_directory_that_is_not_a_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a Marlin workspace"):
        diff_workspace(tmp_path, "main")
    with pytest.raises(WorkspaceError, match="not a Marlin workspace"):
        apply_patch(tmp_path, "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n")


def test_changed_files_lists_added_and_modified_paths_only(
    mirror: tuple[Path, str], ws: Path
) -> None:
    (ws / "pkg" / "core.py").write_text("changed = 1\n")
    (ws / "pkg" / "extra.py").write_text("x = 1\n")
    (ws / "doomed.txt").unlink()
    (ws / "pkg" / "__pycache__").mkdir()
    (ws / "pkg" / "__pycache__" / "core.pyc").write_bytes(b"junk")
    assert changed_files(ws, mirror[1]) == ["pkg/core.py", "pkg/extra.py"]


def test_many_workers_can_make_and_remove_workspaces_at_once(
    mirror: tuple[Path, str], tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "w"

    def cycle(i: int) -> str:
        with workspace(mirror[0], mirror[1], root) as path:
            (path / f"mine-{i}.txt").write_text(str(i))
            return diff_workspace(path, mirror[1])

    with ThreadPoolExecutor(max_workers=6) as pool:
        diffs = list(pool.map(cycle, range(12)))
    assert [d.count("diff --git") for d in diffs] == [1] * 12
    assert all(f"mine-{i}.txt" in d for i, d in enumerate(diffs))
    assert list(root.iterdir()) == []
    assert git(mirror[0], "worktree", "list").count("\n") == 0


def test_restore_paths_resets_files_to_the_base_commit(mirror: tuple[Path, str], ws: Path) -> None:
    (ws / "pkg" / "core.py").write_text("edited by the candidate\n")
    (ws / "pkg" / "test_added.py").write_text("def test_fake(): pass\n")
    restore_paths(ws, mirror[1], ["pkg/core.py", "pkg/test_added.py", "pkg/never_existed.py"])
    assert (ws / "pkg" / "core.py").read_text().startswith("def add")
    assert not (ws / "pkg" / "test_added.py").exists()
    with pytest.raises(PatchRejected, match=r"contains '\.\.'"):
        restore_paths(ws, mirror[1], ["../outside.py"])
