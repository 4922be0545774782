"""Pair two candidates' diffs of the same base commit for the A | B view.

Plain Python, no Django. Both candidates changed the same base, so their hunks can be lined up
by *base* line: where A and B touched the same region of a file, A's lines sit next to B's
lines for the same base lines, and what each side inserted after a base line sits next to what
the other side inserted there.

Public API
----------
``pair_files(a_files, b_files) -> list[FilePair]``
    One pair per file either side touched, matched by the file's base path (a rename is matched
    by the path it had), in path order; ``pair.touched`` is ``"A"``, ``"B"`` or ``"both"``.
``regions(pair) -> list[Region]``
    The pair's changes grouped into regions of the base: hunks of A and B whose base ranges
    overlap (or touch) form one region. Each region holds aligned rows ``(a_slot, b_slot)``; a
    slot is ``None`` where that side has no line there (the other side inserted something).
    A base line that one side changed and the other left alone appears on the other side as a
    *filler* slot: the unchanged line, numbered as it is in that side's file.
``pair_tree(pairs) -> list[TreeNode]``
    The sidebar tree of the pairs, each file node's ``touched`` saying A, B or both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from marlin.diffs.parse import FileDiff, Hunk, Line, TreeNode, file_tree

Touched = Literal["A", "B", "both"]
# (base line, 0) is the base line itself (context or removed); (base line, n) the n-th line a
# side inserted after it.
Key = tuple[int, int]


@dataclass(frozen=True, slots=True)
class FilePair:
    index: int
    path: str
    a: FileDiff | None
    b: FileDiff | None

    @property
    def touched(self) -> Touched:
        if self.a is not None and self.b is not None:
            return "both"
        return "A" if self.a is not None else "B"

    @property
    def line_count(self) -> int:
        """Rows the pair can take at most: both sides' unified rows."""
        return sum(f.line_count for f in (self.a, self.b) if f is not None)

    @property
    def files(self) -> list[FileDiff]:
        return [f for f in (self.a, self.b) if f is not None]


@dataclass(frozen=True, slots=True)
class Slot:
    line: Line
    filler: bool = False


Row = tuple[Slot | None, Slot | None]


@dataclass(frozen=True, slots=True)
class Region:
    old_start: int
    old_end: int
    a_hunks: list[Hunk]
    b_hunks: list[Hunk]
    rows: list[Row]


def base_path(file: FileDiff) -> str:
    return file.old_path or file.path


def pair_files(a_files: list[FileDiff], b_files: list[FileDiff]) -> list[FilePair]:
    """Pair files by base path (see module docstring)."""
    by_path: dict[str, list[FileDiff | None]] = {}
    for side, files in enumerate((a_files, b_files)):
        for f in files:
            by_path.setdefault(base_path(f), [None, None])[side] = f
    pairs = []
    shown = sorted(by_path.items(), key=lambda item: _shown_path(item[1]).lower())
    for index, (_, (a, b)) in enumerate(shown):
        pairs.append(FilePair(index=index, path=_shown_path([a, b]), a=a, b=b))
    return pairs


def _shown_path(files: list[FileDiff | None]) -> str:
    return next(f.path for f in reversed(files) if f is not None)


def _span(hunk: Hunk) -> tuple[int, int]:
    """The base lines a hunk covers; a pure insertion covers the line it follows."""
    if hunk.old_len:
        return hunk.old_start, hunk.old_start + hunk.old_len - 1
    return hunk.old_start, hunk.old_start


def _keyed(hunks: list[Hunk]) -> dict[Key, Line]:
    out: dict[Key, Line] = {}
    for hunk in hunks:
        anchor = hunk.old_start - 1 if hunk.old_len else hunk.old_start
        seq = 0
        for line in hunk.lines:
            if line.kind in ("context", "remove") and line.old_no is not None:
                anchor, seq = line.old_no, 0
                out[(anchor, 0)] = line
            elif line.kind == "add":
                seq += 1
                out[(anchor, seq)] = line
    return out


def _shift_before(hunks: list[Hunk], base_line: int) -> int:
    """How far a side's own line numbers run ahead of the base's at an untouched base line."""
    return sum(h.new_len - h.old_len for h in hunks if _span(h)[1] < base_line)


def regions(pair: FilePair) -> list[Region]:
    """Group and align the pair's hunks by base line (see module docstring)."""
    tagged = [(0, h) for h in (pair.a.hunks if pair.a else [])]
    tagged += [(1, h) for h in (pair.b.hunks if pair.b else [])]
    tagged.sort(key=lambda t: _span(t[1]))
    groups: list[tuple[int, int, list[Hunk], list[Hunk]]] = []
    for side, hunk in tagged:
        start, end = _span(hunk)
        if groups and start <= groups[-1][1] + 1:
            g_start, g_end, a_hunks, b_hunks = groups[-1]
            groups[-1] = (g_start, max(g_end, end), a_hunks, b_hunks)
        else:
            groups.append((start, end, [], []))
        (groups[-1][2] if side == 0 else groups[-1][3]).append(hunk)
    all_hunks = (pair.a.hunks if pair.a else None, pair.b.hunks if pair.b else None)
    return [
        Region(start, end, a_hunks, b_hunks, _align(a_hunks, b_hunks, all_hunks))
        for start, end, a_hunks, b_hunks in groups
    ]


def _align(
    a_hunks: list[Hunk],
    b_hunks: list[Hunk],
    all_hunks: tuple[list[Hunk] | None, list[Hunk] | None],
) -> list[Row]:
    """Rows of a region; ``all_hunks`` per side is None when that side left the file alone."""
    keyed = (_keyed(a_hunks), _keyed(b_hunks))
    rows: list[Row] = []
    for key in sorted(keyed[0].keys() | keyed[1].keys()):
        slots: list[Slot | None] = []
        for side in (0, 1):
            line = keyed[side].get(key)
            if line is not None:
                slots.append(Slot(line))
                continue
            other, own = keyed[1 - side].get(key), all_hunks[side]
            if key[1] == 0 and other is not None and own is not None:
                # A base line only the other side touched: unchanged here, shown for context.
                number = key[0] + _shift_before(own, key[0])
                slots.append(Slot(Line("context", key[0], number, other.text), filler=True))
            else:
                slots.append(None)
        rows.append((slots[0], slots[1]))
    return rows


def pair_tree(pairs: list[FilePair]) -> list[TreeNode]:
    """The file tree of ``pairs`` (see module docstring)."""
    stand_ins = [
        dataclasses.replace(
            pair.files[-1],
            index=pair.index,
            path=pair.path,
            added=sum(f.added for f in pair.files),
            removed=sum(f.removed for f in pair.files),
        )
        for pair in pairs
    ]
    touched = {pair.index: pair.touched for pair in pairs}
    tree = file_tree(stand_ins)
    _mark(tree, touched)
    return tree


def _mark(nodes: list[TreeNode], touched: dict[int, Touched]) -> None:
    for node in nodes:
        if node.file_index is not None:
            node.touched = touched[node.file_index]
        _mark(node.children, touched)
