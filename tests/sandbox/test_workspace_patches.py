"""apply_patch on real worktrees: good patches apply, hostile or broken ones are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from marlin.sandbox.workspace import (
    PatchRejected,
    apply_patch,
    create_workspace,
    diff_workspace,
    read_marker,
    remove_workspace,
)
from tests.sandbox.test_workspace import git

GOOD = """\
diff --git a/pkg/core.py b/pkg/core.py
--- a/pkg/core.py
+++ b/pkg/core.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a + b
+    return int(a) + int(b)
"""


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A worktree of a small repository (removed afterwards), and its base commit."""
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (src / "data.bin").write_bytes(b"\x00\x01\x02binary\x00")
    os.symlink("/etc", src / "etc_link")
    os.symlink("pkg", src / "pkg_link")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "initial")
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--mirror", str(src), str(mirror))
    base = git(src, "rev-parse", "HEAD")
    path = create_workspace(mirror, base, tmp_path / "w")
    yield path, base
    remove_workspace(path)


def new_file(path: str, content: str = "x\n") -> str:
    lines = content.splitlines()
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def test_it_applies_a_good_patch(repo: tuple[Path, str]) -> None:
    workdir, base = repo
    apply_patch(workdir, GOOD)
    assert "int(a) + int(b)" in (workdir / "pkg" / "core.py").read_text()
    assert "+    return int(a) + int(b)" in diff_workspace(workdir, base)


def test_it_applies_a_patch_without_a_final_newline(repo: tuple[Path, str]) -> None:
    apply_patch(repo[0], new_file("added.txt", "one\ntwo").rstrip("\n"))
    assert (repo[0] / "added.txt").read_text() == "one\ntwo\n"


@pytest.mark.parametrize("patch", ["", "   \n\n"])
def test_it_rejects_an_empty_patch(repo: tuple[Path, str], patch: str) -> None:
    with pytest.raises(PatchRejected, match="^empty patch$"):
        apply_patch(repo[0], patch)


def test_it_rejects_text_that_is_not_a_patch(repo: tuple[Path, str]) -> None:
    with pytest.raises(PatchRejected, match="not a valid patch"):
        apply_patch(repo[0], "I fixed the bug, trust me.\n")


def test_it_rejects_a_patch_that_does_not_apply(repo: tuple[Path, str]) -> None:
    stale = GOOD.replace("return a + b", "return a - b")
    with pytest.raises(PatchRejected, match="does not apply.*pkg/core.py"):
        apply_patch(repo[0], stale)


def test_it_rejects_patches_that_escape_the_workspace(repo: tuple[Path, str]) -> None:
    with pytest.raises(PatchRejected, match=r"'\.\./outside.txt' contains '\.\.'"):
        apply_patch(repo[0], new_file("../outside.txt"))
    with pytest.raises(PatchRejected, match=r"contains '\.\.'"):
        apply_patch(repo[0], new_file("pkg/../../outside.txt"))
    assert not (repo[0].parent / "outside.txt").exists()


def test_it_rejects_absolute_paths(repo: tuple[Path, str]) -> None:
    patch = "--- /etc/hostname\n+++ /etc/hostname\n@@ -1 +1 @@\n-a\n+b\n"
    with pytest.raises(PatchRejected, match="absolute path '/etc/hostname'"):
        apply_patch(repo[0], patch)


@pytest.mark.parametrize("path", [".git/config", "sub/.git/hooks/pre-commit", ".GIT/config"])
def test_it_rejects_patches_to_git_metadata(repo: tuple[Path, str], path: str) -> None:
    with pytest.raises(PatchRejected, match="inside .git"):
        apply_patch(repo[0], new_file(path, "[core]\n\thooksPath = /tmp\n"))


def test_it_rejects_writing_through_a_symlink_that_leaves_the_workspace(
    repo: tuple[Path, str],
) -> None:
    with pytest.raises(PatchRejected, match="goes through the symlink 'etc_link' \\(-> '/etc'\\)"):
        apply_patch(repo[0], new_file("etc_link/cron.d/evil", "* * * * * root sh\n"))


def test_it_rejects_writing_through_any_symlink(repo: tuple[Path, str]) -> None:
    patch = GOOD.replace("pkg/core.py", "pkg_link/core.py")
    with pytest.raises(PatchRejected, match="goes through the symlink 'pkg_link'"):
        apply_patch(repo[0], patch)


def test_it_rejects_a_patch_creating_a_symlink_out_of_the_workspace(
    repo: tuple[Path, str],
) -> None:
    absolute = (
        "diff --git a/shadow b/shadow\nnew file mode 120000\n--- /dev/null\n+++ b/shadow\n"
        "@@ -0,0 +1 @@\n+/etc/shadow\n\\ No newline at end of file\n"
    )
    with pytest.raises(PatchRejected, match="symlink to absolute path '/etc/shadow'"):
        apply_patch(repo[0], absolute)
    relative = (
        absolute.replace("+/etc/shadow", "+../../../etc/shadow")
        .replace("shadow b/shadow", "pkg/up b/pkg/up")
        .replace("+++ b/shadow", "+++ b/pkg/up")
    )
    with pytest.raises(PatchRejected, match="points outside the workspace"):
        apply_patch(repo[0], relative)


def test_it_allows_a_symlink_that_stays_inside(repo: tuple[Path, str]) -> None:
    patch = (
        "diff --git a/pkg/alias.py b/pkg/alias.py\nnew file mode 120000\n--- /dev/null\n"
        "+++ b/pkg/alias.py\n@@ -0,0 +1 @@\n+core.py\n\\ No newline at end of file\n"
    )
    apply_patch(repo[0], patch)
    assert os.readlink(repo[0] / "pkg" / "alias.py") == "core.py"


def test_it_applies_a_git_binary_patch(repo: tuple[Path, str]) -> None:
    workdir, base = repo
    (workdir / "data.bin").write_bytes(b"\x00\xffnew binary\x00" * 10)
    (workdir / "fresh.bin").write_bytes(bytes(range(256)))
    patch = diff_workspace(workdir, base)
    assert "GIT binary patch" in patch
    git(workdir, "--git-dir", str(_gitdir(workdir)), "checkout", "--", ".")  # back to base
    (workdir / "fresh.bin").unlink()
    apply_patch(workdir, patch)
    assert (workdir / "data.bin").read_bytes() == b"\x00\xffnew binary\x00" * 10
    assert (workdir / "fresh.bin").read_bytes() == bytes(range(256))


def test_it_rejects_a_binary_change_without_content(repo: tuple[Path, str]) -> None:
    patch = (
        "diff --git a/data.bin b/data.bin\nindex 1234567..89abcde 100644\n"
        "Binary files a/data.bin and b/data.bin differ\n"
    )
    with pytest.raises(PatchRejected, match="binary change to 'data.bin' has no content"):
        apply_patch(repo[0], patch)


def test_it_understands_quoted_file_names(repo: tuple[Path, str]) -> None:
    patch = (
        'diff --git "a/caf\\303\\251 \\"menu\\".txt" "b/caf\\303\\251 \\"menu\\".txt"\n'
        "new file mode 100644\n--- /dev/null\n"
        '+++ "b/caf\\303\\251 \\"menu\\".txt"\n@@ -0,0 +1 @@\n+espresso\n'
    )
    apply_patch(repo[0], patch)
    assert (repo[0] / 'café "menu".txt').read_text() == "espresso\n"
    evil = patch.replace("caf\\303\\251", "../caf\\303\\251")
    with pytest.raises(PatchRejected, match=r"contains '\.\.'"):
        apply_patch(repo[0], evil)


def test_a_removed_line_that_looks_like_a_header_is_not_a_path(repo: tuple[Path, str]) -> None:
    workdir = repo[0]
    (workdir / "notes.md").write_text("-- /etc/passwd\nkeep\n")
    patch = (
        "diff --git a/notes.md b/notes.md\n--- a/notes.md\n+++ b/notes.md\n"
        "@@ -1,2 +1 @@\n--- /etc/passwd\n keep\n"
    )
    apply_patch(workdir, patch)
    assert (workdir / "notes.md").read_text() == "keep\n"


def _gitdir(workdir: Path) -> Path:
    return Path(read_marker(workdir).gitdir)
