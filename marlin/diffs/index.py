"""A patch's file index: every file's metadata and where its section lies in the text.

Plain Python, no Django. The comparison page of a 20,000-line change shows a file tree, counts
and the first screen of files; parsing both whole patches for that was most of its time. A
patch is therefore indexed once, when its candidate is stored (or its turn diff computed), and
the page parses only the sections of the files it renders.

Public API
----------
``index_patch(text: str) -> dict``
    JSON-ready: ``{"version", "files": [...], "sections": bool, "error": str}``. Each file entry
    carries the :class:`~marlin.diffs.parse.FileDiff` fields except the hunks, ``rows`` (its
    ``line_count``), and, when ``sections`` is true, ``start``/``end`` (character offsets into
    ``text``, what SQL ``SUBSTR`` counts on SQLite and PostgreSQL) and ``byte_start``/
    ``byte_end`` (offsets into the UTF-8 encoding, for files on disk). Sections are only
    recorded after checking that parsing each section alone gives exactly the file the whole
    parse gives; a patch where that does not hold (or that does not parse: ``error``) keeps
    its metadata, or nothing, and readers parse it whole as before.
``stub_files(index) -> list[FileDiff]``
    The files without hunks (``line_count`` from the index): enough for trees, counts, pairing
    and placeholders.
``parse_section(section, entry) -> FileDiff``
    The full file from its section, numbered as in the whole patch.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from marlin.diffs.parse import DiffParseError, FileDiff, parse_patch

INDEX_VERSION = 1
_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_META = (
    "index",
    "path",
    "old_path",
    "status",
    "is_binary",
    "is_generated",
    "added",
    "removed",
    "language",
    "old_mode",
    "new_mode",
    "similarity",
)


def index_patch(text: str) -> dict[str, Any]:
    """Index ``text`` (see module docstring)."""
    try:
        files = parse_patch(text)
    except DiffParseError as exc:
        return {
            "version": INDEX_VERSION,
            "length": len(text),
            "files": [],
            "sections": False,
            "error": str(exc),
        }
    entries = [_entry(f) for f in files]
    bounds = _sections(text)
    sections = len(bounds) == len(files) and all(
        _same(text[start:end], f) for (start, end), f in zip(bounds, files, strict=True)
    )
    if sections:
        encoded = 0
        previous = 0
        for entry, (start, end) in zip(entries, bounds, strict=True):
            encoded += len(text[previous:start].encode("utf-8", "surrogatepass"))
            length = len(text[start:end].encode("utf-8", "surrogatepass"))
            entry.update(start=start, end=end, byte_start=encoded, byte_end=encoded + length)
            encoded += length
            previous = end
    return {
        "version": INDEX_VERSION,
        "length": len(text),
        "files": entries,
        "sections": sections,
        "error": "",
    }


def stub_files(index: dict[str, Any]) -> list[FileDiff]:
    """Files from the index alone, without hunks (see module docstring)."""
    return [
        FileDiff(**{key: entry[key] for key in _META}, hunks=[], indexed_rows=entry["rows"])
        for entry in index["files"]
    ]


def parse_section(section: str, entry: dict[str, Any]) -> FileDiff:
    """Parse one file's section; its index is the one it has in the whole patch."""
    files = parse_patch(section)
    if len(files) != 1:
        raise DiffParseError(f"the section of {entry['path']!r} holds {len(files)} files")
    return dataclasses.replace(files[0], index=entry["index"])


def _entry(file: FileDiff) -> dict[str, Any]:
    entry = {key: getattr(file, key) for key in _META}
    entry["rows"] = file.line_count
    return entry


def _same(section: str, file: FileDiff) -> bool:
    try:
        alone = parse_patch(section)
    except DiffParseError:
        return False
    return len(alone) == 1 and dataclasses.replace(alone[0], index=file.index) == file


def _sections(text: str) -> list[tuple[int, int]]:
    """Character ranges of the file sections: each starts at its ``diff --git`` line (or its
    ``---`` line in a plain diff) and runs to the next file's start. Hunk line counts are
    followed so that a removed line reading ``-- x`` is not taken for a header."""
    starts: list[int] = []
    offset = 0
    old_left = new_left = 0
    git_header = False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        here = offset
        offset += len(line) + 1
        body = line[:-1] if line.endswith("\r") else line
        if old_left > 0 or new_left > 0:
            kind = body[:1]
            if kind in (" ", ""):
                old_left, new_left = old_left - 1, new_left - 1
            elif kind == "-":
                old_left -= 1
            elif kind == "+":
                new_left -= 1
            elif kind != "\\":
                old_left = new_left = 0  # a short hunk: fall through to header handling
            if old_left > 0 or new_left > 0 or kind in (" ", "", "-", "+", "\\"):
                continue
        if body.startswith("diff --git "):
            starts.append(here)
            git_header = True
            continue
        if body.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            if not git_header:
                starts.append(here)
            git_header = False
            continue
        match = _HUNK_HEADER.match(body)
        if match:
            git_header = False
            old_left = int(match.group(1)) if match.group(1) is not None else 1
            new_left = int(match.group(2)) if match.group(2) is not None else 1
    end = len(text)
    return [
        (start, starts[n + 1] if n + 1 < len(starts) else end) for n, start in enumerate(starts)
    ]
