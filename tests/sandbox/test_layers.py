"""Layers: copy-on-write workspaces over a built base, in the real bwrap sandbox (overlay) and as
copies (MARLIN_WORKSPACE_LAYERS=copy). Patches land in the layer, diffs leave the base's build
outputs out, layers of one base do not see each other, and the base is never written."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from marlin.sandbox import run
from marlin.sandbox.workspace import (
    LAYER_ENV_VAR,
    PatchRejected,
    WorkspaceError,
    apply_patch,
    base_mounts,
    changed_files,
    create_base,
    create_layer,
    diff_workspace,
    read_marker,
    remove_workspace,
    restore_paths,
    sandbox_view,
    sweep_stale_workspaces,
    visible_file,
)
from tests.sandbox.test_workspace import git

pytestmark = pytest.mark.slow

PATCH = """diff --git a/pkg/core.py b/pkg/core.py
--- a/pkg/core.py
+++ b/pkg/core.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return b + a
"""


@pytest.fixture(params=["overlay", "copy"])
def layers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "copy":
        monkeypatch.setenv(LAYER_ENV_VAR, "copy")
    return str(request.param)


@pytest.fixture
def base(tmp_path: Path) -> tuple[Path, str]:
    """A base built from a small repository (tag v1.0) by a setup that asks git for the
    version, writes a generated module and an untracked, unignored build file."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (src / "tests").mkdir()
    (src / "tests" / "test_core.py").write_text("from pkg.core import add\n")
    (src / ".gitignore").write_text("pkg/_version.py\n")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "initial")
    git(src, "tag", "v1.0")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(src), str(mirror))
    commit = git(src, "rev-parse", "HEAD")
    dest = tmp_path / "env"
    tree = create_base(mirror, commit, dest)
    setup = run(
        [
            "bash",
            "-c",
            'set -e; test -z "$(git status --porcelain)"; '
            "echo \"version = '$(git describe --tags)'\" > pkg/_version.py; "
            "echo compiled > pkg/extension.so.txt",
        ],
        workdir=tree,
        mounts=base_mounts(dest),
    )
    assert setup.ok, setup.stderr
    return dest, commit


def test_a_layer_sees_the_build_and_keeps_its_own_changes(
    base: tuple[Path, str], tmp_path: Path, layers: str
) -> None:
    dest, commit = base
    path = create_layer(dest, tmp_path / "ws")
    assert read_marker(path).layer == layers
    apply_patch(path, PATCH)
    view, mounts = sandbox_view(path)
    result = run(
        [
            "bash",
            "-c",
            "cat pkg/_version.py && cat pkg/core.py && echo new > pkg/new.py && "
            "rm tests/test_core.py && echo again > pkg/extension.so.txt",
        ],
        workdir=view,
        mounts=mounts,
    )
    assert result.ok, result.stderr
    assert "version = 'v1.0'" in result.stdout  # git describe worked in the setup's sandbox
    assert "return b + a" in result.stdout

    diff = diff_workspace(path, commit)
    assert "+    return b + a" in diff
    assert "diff --git a/pkg/new.py b/pkg/new.py" in diff
    assert "deleted file mode" in diff and "tests/test_core.py" in diff
    # The setup's outputs are not the candidate's: the ignored one never, the unignored one
    # only because this layer wrote it.
    assert "_version.py" not in diff
    assert changed_files(path, commit) == ["pkg/core.py", "pkg/extension.so.txt", "pkg/new.py"]

    restore_paths(path, commit, ["tests/test_core.py", "pkg/new.py"])
    assert changed_files(path, commit) == ["pkg/core.py", "pkg/extension.so.txt"]

    tree = dest / "tree"
    assert (tree / "pkg" / "core.py").read_text().endswith("return a + b\n")  # base untouched
    assert (tree / "tests" / "test_core.py").exists()
    assert (tree / "pkg" / "extension.so.txt").read_text() == "compiled\n"
    remove_workspace(path)
    assert list((tmp_path / "ws").iterdir()) == []


def test_layers_of_one_base_do_not_see_each_other(
    base: tuple[Path, str], tmp_path: Path, layers: str
) -> None:
    dest, commit = base
    first = create_layer(dest, tmp_path / "ws")
    second = create_layer(dest, tmp_path / "ws")
    apply_patch(first, PATCH)
    assert diff_workspace(second, commit) == ""
    view, mounts = sandbox_view(second)
    seen = run(["cat", "pkg/core.py"], workdir=view, mounts=mounts)
    assert seen.stdout.endswith("return a + b\n")
    # The base's git directory and the mirror's objects are read-only inside.
    denied = run(
        ["bash", "-c", "touch /opt/marlin-git/HEAD || echo refused"], workdir=view, mounts=mounts
    )
    assert "refused" in denied.stdout
    for path in (first, second):
        remove_workspace(path)


def test_an_overlay_layer_copies_nothing_of_the_tree(base: tuple[Path, str], tmp_path) -> None:
    dest, _ = base
    path = create_layer(dest, tmp_path / "ws")
    assert list(path.iterdir()) == []  # the upper layer starts empty
    remove_workspace(path)


def test_a_patch_may_not_write_through_a_link_the_setup_left_in_the_base(
    base: tuple[Path, str], tmp_path: Path
) -> None:
    dest, _ = base
    os.symlink("/etc", dest / "tree" / "etc-link")
    path = create_layer(dest, tmp_path / "ws")
    patch = (
        "diff --git a/etc-link/passwd b/etc-link/passwd\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/etc-link/passwd\n@@ -0,0 +1 @@\n+evil\n"
    )
    with pytest.raises(PatchRejected, match="symlink"):
        apply_patch(path, patch)
    remove_workspace(path)


def test_a_layer_needs_a_built_base(tmp_path: Path) -> None:
    (tmp_path / "not-a-base").mkdir()
    with pytest.raises(WorkspaceError, match="is not a built base"):
        create_layer(tmp_path / "not-a-base", tmp_path / "ws")
    assert not (tmp_path / "ws").exists() or list((tmp_path / "ws").iterdir()) == []


def test_the_sweep_removes_a_dead_workers_layer_and_its_overlay_scratch(
    base: tuple[Path, str], tmp_path: Path
) -> None:
    dest, _ = base
    path = create_layer(dest, tmp_path / "ws")
    view, mounts = sandbox_view(path)
    assert run(["touch", "made"], workdir=view, mounts=mounts).ok
    assert sweep_stale_workspaces(tmp_path / "ws", older_than_seconds=-1) == [path]
    assert list((tmp_path / "ws").iterdir()) == []
    assert (dest / "tree" / "pkg" / "core.py").exists()  # the base stays


def test_the_setup_cannot_write_the_mirror(base: tuple[Path, str], tmp_path: Path) -> None:
    dest, _ = base
    result = run(
        ["bash", "-c", "git tag evil 2>&1; git gc 2>&1; ls /opt/marlin-git/objects | head -1"],
        workdir=dest / "tree",
        mounts=base_mounts(dest),
    )
    assert "Read-only file system" in result.stdout
    assert "evil" not in git(tmp_path / "mirror.git", "tag")


def test_concurrent_layers_share_one_base_and_keep_their_own_writes(
    base: tuple[Path, str], tmp_path: Path
) -> None:
    dest, commit = base
    paths = [create_layer(dest, tmp_path / "ws") for _ in range(4)]

    def write(index: int) -> str:
        view, mounts = sandbox_view(paths[index])
        result = run(
            [
                "bash",
                "-c",
                f"echo 'def add(a, b):  # layer {index}' > pkg/core.py; sleep 1; cat pkg/core.py",
            ],
            workdir=view,
            mounts=mounts,
        )
        assert result.ok, result.stderr
        return result.stdout

    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = list(pool.map(write, range(4)))
    assert seen == [f"def add(a, b):  # layer {i}\n" for i in range(4)]
    for index, path in enumerate(paths):
        assert f"+def add(a, b):  # layer {index}" in diff_workspace(path, commit)
        remove_workspace(path)
    assert (dest / "tree" / "pkg" / "core.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_the_host_finds_a_file_where_the_sandbox_sees_it(
    base: tuple[Path, str], tmp_path: Path
) -> None:
    dest, _ = base
    path = create_layer(dest, tmp_path / "ws")
    assert visible_file(path, "pkg/core.py") == dest / "tree" / "pkg" / "core.py"
    view, mounts = sandbox_view(path)
    changed = "rm tests/test_core.py && rm -r pkg && mkdir pkg && touch pkg/a"
    assert run(["bash", "-c", changed], workdir=view, mounts=mounts).ok
    assert visible_file(path, "pkg/a") == path / "pkg" / "a"
    assert visible_file(path, "tests/test_core.py") is None  # deleted in the layer
    assert visible_file(path, "pkg/core.py") is None  # its directory was made again, empty
    assert visible_file(path, "pkg/_version.py") is None
    assert visible_file(path, ".gitignore") == dest / "tree" / ".gitignore"
    remove_workspace(path)
