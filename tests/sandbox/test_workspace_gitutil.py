"""gitutil against the real git: ref rules, resolving, mirroring and the transport allow-list."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from marlin.sandbox.gitutil import (
    GitError,
    clone_mirror,
    fetch_mirror,
    parse_patch_headers,
    resolve_commit,
    run_git,
    unquote_path,
    validate_ref,
)
from tests.sandbox.test_workspace import git

REFS = [
    "main",
    "feature/login",
    "v1.2.3",
    "release-2024.01",
    "HEAD",
    "a" * 40,
    "-main",
    "--upload-pack=touch /tmp/x",
    "has space",
    "tab\there",
    "a..b",
    "a@{1}",
    "@",
    "HEAD~1",
    "HEAD^",
    "a:b",
    "what?",
    "glob*",
    "[x]",
    "back\\slash",
    "/lead",
    "trail/",
    "double//slash",
    ".hidden",
    "x/.hidden",
    "end.",
    "x.lock",
    "x.lock/y",
    "ctrl\x07",
    "",
]


@pytest.mark.parametrize("ref", REFS)
def test_validate_ref_agrees_with_git_check_ref_format(ref: str) -> None:
    if ref == "a" * 40:
        assert validate_ref(ref) == ref
        return
    git_ok = (
        ref != ""
        and subprocess.run(
            ["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True
        ).returncode
        == 0
        and not ref.startswith("-")
    )
    if git_ok:
        assert validate_ref(ref) == ref
    else:
        with pytest.raises(GitError, match="ref"):
            validate_ref(ref)


def test_validate_ref_says_what_is_wrong() -> None:
    with pytest.raises(GitError, match="must not start with '-'"):
        validate_ref("--output=/etc/passwd")
    with pytest.raises(GitError, match=r"contains '\.\.'"):
        validate_ref("main..evil")
    with pytest.raises(GitError, match="empty"):
        validate_ref("")


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    src = tmp_path / "origin"
    src.mkdir()
    (src / "f.txt").write_text("one\n")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "one")
    git(src, "tag", "-a", "v1", "-m", "release one")
    git(src, "branch", "feature")
    return src


def test_it_mirrors_a_local_repository_only_when_allowed(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mirrors" / "origin.git"
    with pytest.raises(GitError, match="transport 'file' not allowed"):
        clone_mirror(str(origin), dest, allow_local=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # the staging clone is gone too
    clone_mirror(str(origin), dest, allow_local=True)
    assert resolve_commit(dest, "main") == git(origin, "rev-parse", "main")


def test_it_refuses_transports_outside_the_allow_list(tmp_path: Path) -> None:
    proof = tmp_path / "pwned"
    with pytest.raises(GitError, match="not allowed"):
        clone_mirror(f"ext::sh -c touch% {proof}", tmp_path / "m.git", allow_local=True)
    assert not proof.exists()


def test_it_refuses_urls_that_look_like_options(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="must not start with '-'"):
        clone_mirror("--upload-pack=touch /tmp/pwned", tmp_path / "m.git", allow_local=True)
    with pytest.raises(GitError, match="empty"):
        clone_mirror("  ", tmp_path / "m.git", allow_local=True)


def test_it_resolves_branches_tags_and_shas_to_full_commits(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m.git"
    clone_mirror(str(origin), dest, allow_local=True)
    head = git(origin, "rev-parse", "HEAD")
    assert resolve_commit(dest, "main") == head
    assert resolve_commit(dest, "feature") == head
    assert resolve_commit(dest, "v1") == head  # an annotated tag peels to its commit
    assert resolve_commit(dest, head.upper()) == head
    with pytest.raises(GitError, match="'nope' is not a branch, tag or commit"):
        resolve_commit(dest, "nope")
    with pytest.raises(GitError, match="is not a branch, tag or commit"):
        resolve_commit(dest, "0" * 40)


def test_fetch_brings_new_commits_and_prunes_deleted_branches(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m.git"
    clone_mirror(str(origin), dest, allow_local=True)
    (origin / "f.txt").write_text("two\n")
    git(origin, "commit", "-qam", "two")
    git(origin, "branch", "-D", "feature")
    with pytest.raises(GitError, match="not allowed"):
        fetch_mirror(dest)
    fetch_mirror(dest, allow_local=True)
    assert resolve_commit(dest, "main") == git(origin, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="not a branch"):
        resolve_commit(dest, "feature")
    with pytest.raises(GitError, match="not a bare mirror"):
        fetch_mirror(tmp_path)


def test_it_refuses_to_clone_over_an_existing_directory(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "m.git"
    dest.mkdir()
    (dest / "precious").write_text("keep me")
    with pytest.raises(GitError, match="already exists"):
        clone_mirror(str(origin), dest, allow_local=True)
    assert (dest / "precious").read_text() == "keep me"


def test_a_hung_git_command_and_its_children_are_killed_at_the_timeout(origin: Path) -> None:
    # An alias running `sleep` (a grandchild of ours, like git-remote-https) stands in for a
    # hung network fetch.
    started = time.monotonic()
    with pytest.raises(GitError, match="git hang timed out after 0.5 s"):
        run_git(["-c", "alias.hang=!sleep 30", "hang"], cwd=origin, timeout=0.5)
    assert time.monotonic() - started < 5


def test_it_unquotes_git_c_style_paths() -> None:
    assert unquote_path('"caf\\303\\251\\ttab\\"q\\""') == 'café\ttab"q"'
    assert unquote_path("plain name") == "plain name"


def test_patch_headers_name_every_path_a_patch_touches() -> None:
    patch = (
        "diff --git a/old.py b/new.py\nsimilarity index 90%\nrename from old.py\n"
        "rename to new.py\n--- a/old.py\n+++ b/new.py\n@@ -1 +1 @@\n-a\n+b\n"
        "diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n"
        "@@ -0,0 +1 @@\n+new.py\n\\ No newline at end of file\n"
        "diff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\n"
    )
    rename, link, image = parse_patch_headers(patch)
    assert (set(rename.paths), rename.new_path, rename.is_link) == (
        {"old.py", "new.py"},
        "new.py",
        False,
    )
    assert (link.new_path, link.is_link, link.link_target) == ("link", True, "new.py")
    assert (image.paths, image.binary_without_content) == (["img.png", "img.png"], True)
