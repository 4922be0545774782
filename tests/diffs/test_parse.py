"""Tests for marlin.diffs.parse: real predictions, real `git diff` output, and the odd cases."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marlin.diffs.parse import (
    DiffParseError,
    FileDiff,
    TreeNode,
    file_tree,
    language_for_path,
    parse_patch,
    patch_stats,
)

PREDICTIONS = Path("/work/shared/realdata/swebench_lite/predictions")
HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")

SIMPLE = """diff --git a/pkg/mod.py b/pkg/mod.py
index 1111111..2222222 100644
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -10,3 +10,4 @@ class Thing:
     def a(self):
-        return 1
+        return 2
+        # unreachable
     x = 1
"""


def _load_predictions() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(PREDICTIONS.glob("*.json")):
        rows.extend(json.loads(path.read_text()))
    for path in sorted(PREDICTIONS.glob("*.jsonl")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows


def _independent_count(text: str) -> tuple[int, int]:
    """Count +/- lines by walking hunk headers only, sharing no code with the parser."""
    added = removed = 0
    old_left = new_left = 0
    for line in text.replace("\r\n", "\n").split("\n"):
        if old_left > 0 or new_left > 0:
            if line.startswith("+"):
                added += 1
                new_left -= 1
            elif line.startswith("-"):
                removed += 1
                old_left -= 1
            elif line.startswith("\\"):
                pass
            else:
                old_left -= 1
                new_left -= 1
            continue
        match = HUNK.match(line)
        if match:
            old_left = int(match.group(1) or 1)
            new_left = int(match.group(2) or 1)
    return added, removed


def test_it_parses_every_real_swebench_prediction_and_counts_like_an_independent_walk() -> None:
    if not PREDICTIONS.is_dir():
        pytest.skip(f"real predictions not present at {PREDICTIONS} (see realdata/README.md)")
    rows = _load_predictions()
    patches = [r["model_patch"] for r in rows if (r.get("model_patch") or "").strip()]
    assert len(patches) > 700, "expected the three prediction files of SWE-bench Lite"
    for patch in patches:
        files = parse_patch(patch)
        assert files, patch[:200]
        stats = patch_stats(patch)
        assert (stats.added, stats.removed) == _independent_count(patch)
        assert (
            stats.files
            == len(files)
            == patch.count("\ndiff --git ") + patch.startswith("diff --git ")
        )
    # Quirks the brief promised are in the data: leading newlines and an empty patch.
    assert any(p.startswith("\n") for p in patches)
    assert any(not (r.get("model_patch") or "").strip() for r in rows)


def test_it_reads_lines_with_numbers_kinds_and_section_header() -> None:
    [f] = parse_patch(SIMPLE)
    assert (f.path, f.old_path, f.status, f.language) == (
        "pkg/mod.py",
        "pkg/mod.py",
        "modified",
        "python",
    )
    assert (f.added, f.removed, f.old_mode, f.new_mode) == (2, 1, "100644", "100644")
    [h] = f.hunks
    assert (h.old_start, h.old_len, h.new_start, h.new_len) == (10, 3, 10, 4)
    assert h.section_header == "class Thing:"
    assert [(ln.kind, ln.old_no, ln.new_no) for ln in h.lines] == [
        ("context", 10, 10),
        ("remove", 11, None),
        ("add", None, 11),
        ("add", None, 12),
        ("context", 12, 13),
    ]
    assert h.lines[1].text == "        return 1"


def test_it_ignores_leading_blank_lines_and_a_missing_final_newline() -> None:
    plain = parse_patch(SIMPLE)
    assert parse_patch("\n\n" + SIMPLE) == plain
    assert parse_patch(SIMPLE.rstrip("\n")) == plain


def test_it_reads_a_patch_whose_every_line_ends_in_crlf_like_the_lf_one() -> None:
    assert parse_patch(SIMPLE.replace("\n", "\r\n")) == parse_patch(SIMPLE)


def test_it_keeps_crlf_file_content_but_drops_the_carriage_return_from_text() -> None:
    patch = "--- a/win.bat\n+++ b/win.bat\n@@ -1,2 +1,2 @@\n echo on\r\n-set A=1\r\n+set A=2\r\n"
    [f] = parse_patch(patch)
    assert [ln.text for ln in f.hunks[0].lines] == ["echo on", "set A=1", "set A=2"]
    assert (f.added, f.removed) == (1, 1)


def test_it_marks_no_newline_at_end_of_file_without_counting_it() -> None:
    patch = (
        "--- a/t.txt\n+++ b/t.txt\n@@ -1 +1 @@\n"
        "-old\n\\ No newline at end of file\n"
        "+new\n\\ No newline at end of file\n"
    )
    [f] = parse_patch(patch)
    kinds = [(ln.kind, ln.old_no, ln.new_no, ln.text) for ln in f.hunks[0].lines]
    assert kinds == [
        ("remove", 1, None, "old"),
        ("no-newline", None, None, "No newline at end of file"),
        ("add", None, 1, "new"),
        ("no-newline", None, None, "No newline at end of file"),
    ]
    assert (f.added, f.removed) == (1, 1)


def test_it_reads_both_kinds_of_binary_diff_renames_and_mode_changes() -> None:
    patch = """diff --git a/img.png b/img.png
new file mode 100644
index 0000000..1234567
Binary files /dev/null and b/img.png differ
diff --git a/logo.gif b/logo.gif
index 1234567..89abcde 100644
GIT binary patch
literal 12
zcmV+abcdefghij

literal 10
HcmV?d00001

diff --git a/old/name.py b/new/name.py
similarity index 91%
rename from old/name.py
rename to new/name.py
index 1111111..2222222 100644
--- a/old/name.py
+++ b/new/name.py
@@ -1 +1 @@
-a = 1
+a = 2
diff --git a/bin/run b/bin/run
old mode 100644
new mode 100755
"""
    png, gif, renamed, mode = parse_patch(patch)
    assert (png.status, png.is_binary, png.path, png.hunks) == ("binary", True, "img.png", [])
    assert (gif.status, gif.is_binary, gif.added, gif.removed) == ("binary", True, 0, 0)
    assert (renamed.status, renamed.path, renamed.old_path) == (
        "renamed",
        "new/name.py",
        "old/name.py",
    )
    assert (renamed.similarity, renamed.added, renamed.removed) == (91, 1, 1)
    assert (mode.status, mode.old_mode, mode.new_mode, mode.hunks) == (
        "modified",
        "100644",
        "100755",
        [],
    )
    assert [f.index for f in (png, gif, renamed, mode)] == [0, 1, 2, 3]


def test_it_returns_nothing_for_an_empty_or_blank_patch() -> None:
    assert parse_patch("") == []
    assert parse_patch("\n \n") == []
    assert patch_stats("") == patch_stats("\n") == patch_stats("  ")
    assert patch_stats("").files == 0


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("this is not a diff\nat all\n", "line 1: no file header found"),
        ("\n\nHello\n", "line 1: no file header found"),
        ("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n", "line 5: Hunk is shorter than expected"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n?? what\n", "line 5: Hunk diff line expected"),
        ("+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", "line 1: Target without source"),
    ],
)
def test_it_rejects_garbage_with_the_line_number(text: str, where: str) -> None:
    with pytest.raises(DiffParseError, match=re.escape(where)):
        parse_patch(text)


def test_it_rejects_bytes_with_a_type_error() -> None:
    with pytest.raises(TypeError, match="expects str"):
        parse_patch(SIMPLE.encode())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "generated"),
    [
        ("package-lock.json", True),
        ("frontend/yarn.lock", True),
        ("poetry.lock", True),
        ("static/app.min.js", True),
        ("api/v1/service.pb.go", True),
        ("proto/thing_pb2.py", True),
        ("dist/bundle.js", True),
        ("third/vendor/lib.c", True),
        ("src/app.js", False),
        ("docs/distance.md", False),
        ("lockfile.py", False),
    ],
)
def test_it_flags_generated_files_by_name(path: str, generated: bool) -> None:
    [f] = parse_patch(f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n")
    assert f.is_generated is generated


def test_it_flags_generated_files_by_a_header_marker_only_at_the_top() -> None:
    top = "--- /dev/null\n+++ b/gen.py\n@@ -0,0 +1,2 @@\n+# @generated by protoc\n+x = 1\n"
    middle = "--- a/m.py\n+++ b/m.py\n@@ -40,1 +40,1 @@\n-x\n+# @generated is a word we grep for\n"
    assert parse_patch(top)[0].is_generated is True
    assert parse_patch(middle)[0].is_generated is False


def test_it_guesses_the_language_from_the_file_name() -> None:
    assert language_for_path("a/b/c.py") == "python"
    assert language_for_path("Makefile") == "make"
    assert language_for_path("web/app.ts") == "typescript"
    assert language_for_path("notes.unknown-ext") is None
    assert language_for_path("README.txt") is None


def _files(*specs: tuple[str, int, int]) -> list[FileDiff]:
    return [
        FileDiff(i, path, path, "modified", False, False, a, r, [], None)
        for i, (path, a, r) in enumerate(specs)
    ]


def test_it_builds_a_sorted_tree_with_collapsed_single_child_directories() -> None:
    files = _files(
        ("src/marlin/review/diffs.py", 10, 2),
        ("src/marlin/review/views.py", 1, 1),
        ("README.md", 3, 0),
        ("src/marlin/api/z.py", 0, 4),
        ("docs/a/b/c.md", 5, 5),
    )
    tree = file_tree(files)
    assert [(n.name, n.kind) for n in tree] == [
        ("docs/a/b", "dir"),
        ("src/marlin", "dir"),
        ("README.md", "file"),
    ]
    docs, src, readme = tree
    assert (docs.path, docs.added, docs.removed) == ("docs/a/b", 5, 5)
    assert [c.name for c in docs.children] == ["c.md"]
    assert (src.added, src.removed) == (11, 7)
    assert [c.name for c in src.children] == ["api", "review"]
    review = src.children[1]
    assert review.path == "src/marlin/review"
    assert [(c.name, c.file_index, c.added) for c in review.children] == [
        ("diffs.py", 0, 10),
        ("views.py", 1, 1),
    ]
    assert readme.file_index == 2
    assert isinstance(asdict(tree[0]), dict)
    assert file_tree([]) == []
    assert isinstance(tree[0], TreeNode)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_it_agrees_with_git_numstat_on_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "src").mkdir()
    (repo / "src" / "keep.py").write_text("".join(f"line {i}\n" for i in range(40)))
    (repo / "src" / "move_me.py").write_text("".join(f"stable {i}\n" for i in range(30)))
    (repo / "gone.txt").write_text("bye\n")
    (repo / "run.sh").write_text("echo hi\n")
    (repo / "blob.bin").write_bytes(bytes(range(256)))
    (repo / "tail.txt").write_text("no newline")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")

    keep = [f"line {i}\n" for i in range(40)]
    keep[3] = "changed 3\n"
    keep.insert(20, "inserted\n")
    del keep[35]
    (repo / "src" / "keep.py").write_text("".join(keep))
    (repo / "lib").mkdir()
    _git(repo, "mv", "src/move_me.py", "lib/moved.py")
    moved = (repo / "lib" / "moved.py").read_text().replace("stable 5\n", "stable five\n")
    (repo / "lib" / "moved.py").write_text(moved)
    (repo / "gone.txt").unlink()
    (repo / "run.sh").chmod(0o755)
    (repo / "blob.bin").write_bytes(bytes(reversed(range(256))))
    (repo / "tail.txt").write_text("no newline, still\n")
    (repo / "caf\u00e9 menu.py").write_text("x = '\u00e9'\n")
    _git(repo, "add", "-A")

    for binary_flag in ([], ["--binary"]):
        patch = _git(repo, "diff", "--cached", "-M", *binary_flag)
        numstat = _git(repo, "diff", "--cached", "-M", "--numstat", "-z")
        files = {f.path: f for f in parse_patch(patch)}
        expected: dict[str, tuple[int, int] | None] = {}
        fields = numstat.split("\0")
        i = 0
        while i < len(fields) - 1:
            added, removed, path = fields[i].split("\t")
            if path == "":  # rename: old and new paths follow as separate fields
                path = fields[i + 2]
                i += 3
            else:
                i += 1
            expected[path] = None if added == "-" else (int(added), int(removed))
        assert set(files) == set(expected)
        for path, counts in expected.items():
            f = files[path]
            if counts is None:
                assert f.is_binary and f.status == "binary"
            else:
                assert (f.added, f.removed) == counts, path
        assert files["lib/moved.py"].status == "renamed"
        assert files["lib/moved.py"].old_path == "src/move_me.py"
        assert files["gone.txt"].status == "deleted"
        assert files["caf\u00e9 menu.py"].status == "added"
        assert (files["run.sh"].old_mode, files["run.sh"].new_mode) == ("100644", "100755")
        assert any(ln.kind == "no-newline" for h in files["tail.txt"].hunks for ln in h.lines)


_text_lines = st.lists(
    st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",),
            blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
        ),
        max_size=12,
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(old=_text_lines, new=_text_lines, context=st.integers(min_value=0, max_value=4))
def test_it_rebuilds_both_sides_of_any_difflib_diff(
    old: list[str], new: list[str], context: int
) -> None:
    diff = "".join(
        difflib.unified_diff(
            [s + "\n" for s in old], [s + "\n" for s in new], "a/f.txt", "b/f.txt", n=context
        )
    )
    files = parse_patch(diff)
    if old == new:
        assert files == []
        return
    [f] = files
    old_seen = {ln.old_no: ln.text for h in f.hunks for ln in h.lines if ln.old_no is not None}
    new_seen = {ln.new_no: ln.text for h in f.hunks for ln in h.lines if ln.new_no is not None}
    assert all(old[n - 1] == text for n, text in old_seen.items())
    assert all(new[n - 1] == text for n, text in new_seen.items())
    assert (f.added, f.removed) == _independent_count(diff)
    assert f.added == sum(1 for s in difflib.ndiff(old, new) if s.startswith("+ "))
