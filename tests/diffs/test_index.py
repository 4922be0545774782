"""A patch's file index (marlin.diffs.index): metadata and sections that parse alone to exactly
the files the whole patch parses to."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from marlin.diffs.index import index_patch, parse_section, stub_files
from marlin.diffs.parse import parse_patch

PREDICTIONS = Path("/work/shared/realdata/swebench_lite/predictions")

GIT = (
    "diff --git a/src/app.py b/src/app.py\n"
    "index 1111111..2222222 100644\n"
    "--- a/src/app.py\n"
    "+++ b/src/app.py\n"
    "@@ -1,4 +1,4 @@ def main():\n"
    " import os\n"
    "--- a removed line that looks like a header\n"
    "+++ an added line that looks like a header\n"
    " x = 1\n"
    "-y = 'é'\n"
    "+y = 'ü'\n"
    "\\ No newline at end of file\n"
    'diff --git "a/docs/caf\\303\\251.md" "b/docs/caf\\303\\251.md"\n'
    "new file mode 100644\n"
    "--- /dev/null\n"
    '+++ "b/docs/caf\\303\\251.md"\n'
    "@@ -0,0 +1,2 @@\n"
    "+# Café\n"
    "+\n"
    "diff --git a/old/name.py b/new/name.py\n"
    "similarity index 90%\n"
    "rename from old/name.py\n"
    "rename to new/name.py\n"
    "diff --git a/logo.png b/logo.png\n"
    "index 3333333..4444444 100644\n"
    "Binary files a/logo.png and b/logo.png differ\n"
    "diff --git a/run.sh b/run.sh\n"
    "old mode 100644\n"
    "new mode 100755\n"
    "diff --git a/package-lock.json b/package-lock.json\n"
    "--- a/package-lock.json\n"
    "+++ b/package-lock.json\n"
    "@@ -1 +1 @@\n"
    '-{"a": 1}\n'
    '+{"a": 2}\n'
)
PLAIN = (
    "--- a/one.txt\n+++ b/one.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    "--- a/two.txt\n+++ b/two.txt\n@@ -1 +1 @@\n--- x\n+--- y\n"
)


def assert_index_matches(text: str) -> dict:
    index = index_patch(text)
    json.dumps(index)  # stored as JSON
    files = parse_patch(text)
    assert index["sections"] and not index["error"] and index["length"] == len(text)
    assert [dataclasses.replace(f, hunks=[], indexed_rows=f.line_count) for f in files] == (
        stub_files(index)
    )
    encoded = text.encode("utf-8")
    for entry, file in zip(index["files"], files, strict=True):
        section = text[entry["start"] : entry["end"]]
        assert parse_section(section, entry) == file
        assert encoded[entry["byte_start"] : entry["byte_end"]].decode("utf-8") == section
    return index


@pytest.mark.parametrize(
    "text",
    [GIT, PLAIN, "\n\n" + GIT, GIT.replace("\n", "\r\n"), GIT.rstrip("\n")],
    ids=["git", "plain", "leading-blank-lines", "crlf", "no-final-newline"],
)
def test_each_files_section_parses_alone_to_the_file_the_whole_patch_gives(text: str) -> None:
    index = assert_index_matches(text)
    assert len(index["files"]) == (2 if text is PLAIN else 6)


def test_stubs_carry_what_trees_and_placeholders_need_without_hunks() -> None:
    stubs = stub_files(index_patch(GIT))
    assert [f.path for f in stubs][:2] == ["src/app.py", "docs/café.md"]
    assert [f.status for f in stubs] == [
        "modified",
        "added",
        "renamed",
        "binary",
        "modified",
        "modified",
    ]
    assert stubs[0].added == 2 and stubs[0].removed == 2 and stubs[0].line_count == 8
    assert stubs[5].is_generated and all(not f.hunks for f in stubs)


def test_a_patch_that_does_not_parse_keeps_its_error_and_no_files() -> None:
    index = index_patch("this is not a diff\n")
    assert index["files"] == [] and not index["sections"]
    assert "no file header found" in index["error"]
    empty = index_patch("")
    assert empty["files"] == [] and not empty["error"]


def test_sections_are_left_out_when_a_section_would_not_parse_as_in_the_whole_patch() -> None:
    # Only some lines end in CRLF, so the whole patch keeps the CRs; the second file's section
    # alone is all CRLF and would be normalised. The index keeps the metadata, no sections.
    first = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+b\n"
    second = (
        "diff --git a/b.txt b/b.txt\r\n--- a/b.txt\r\n+++ b/b.txt\r\n@@ -1 +1 @@\r\n-c\r\n+d\r\n"
    )
    index = index_patch(first + second)
    assert not index["sections"] and "start" not in index["files"][0]
    assert [f["path"] for f in index["files"]] == [f.path for f in parse_patch(first + second)]


@pytest.mark.skipif(not PREDICTIONS.is_dir(), reason="shared real data is absent")
@pytest.mark.slow
def test_real_agent_predictions_index_with_sections() -> None:
    patches = []
    for path in sorted(PREDICTIONS.iterdir()):
        text = path.read_text(encoding="utf-8")
        try:
            records = json.loads(text)
        except ValueError:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        patches += [r.get("model_patch") or "" for r in records]
    indexed = 0
    for patch in patches[:300]:
        if patch.strip():
            assert_index_matches(patch)
            indexed += 1
    assert indexed > 200
