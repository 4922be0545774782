"""Render the A | B view: per file, A's change next to B's, aligned by base line
(marlin.diffs.pair). Plain Python, no Django; every piece of repository or agent text is
escaped here, as in marlin.diffs.render, whose table styles and anchors it shares.

Public API
----------
``render_pair(pair, *, max_lines=DEFAULT_MAX_LINES, force=False) -> str``
    One ``<details class="diff-file ab-file" id="ab-{pair.index}">`` with a
    ``<table class="diff hl diff-ab">`` of four columns: A's line number and code, B's line
    number and code. Each region of the base both sides touched starts with a hunk row naming
    each side's hunks; files one side left alone say so in the other side's column. Line-number
    cells carry the same ids as the per-side views with the prefixes ``xa`` and ``xb`` and each
    side's own file index (``xa-3-R12``), so line comments find their line in both views.
    Pairs over ``max_lines`` rows (both sides' unified rows) render a placeholder with a
    ``diff-load`` button unless ``force``.
``render_pairs(pairs, *, first_screen_lines=FIRST_SCREEN_LINES, max_lines=DEFAULT_MAX_LINES)``
    All pairs, fully up to about ``first_screen_lines`` rows, then ``deferred`` placeholders that
    the page loads as they scroll into view (``/compare/<id>/pair/<index>/``).
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from marlin.diffs import render
from marlin.diffs.pair import FilePair, Region, Slot, regions
from marlin.diffs.parse import FileDiff, Hunk, Line

PREFIXES = ("xa", "xb")
LETTERS = ("A", "B")
_TOUCHED_TEXT = {"both": "A and B", "A": "only A", "B": "only B"}
_CLASS = {"context": "ctx", "add": "add", "remove": "del"}


def render_pair(
    pair: FilePair, *, max_lines: int | None = render.DEFAULT_MAX_LINES, force: bool = False
) -> str:
    """Render one file pair (see module docstring)."""
    files = pair.files
    if all(f.is_binary for f in files):
        return _wrap(pair, _placeholder(pair, "binary"), is_open=True)
    if not force and all(f.is_generated for f in files):
        return _wrap(pair, _placeholder(pair, "generated"), is_open=False)
    if not force and max_lines is not None and pair.line_count > max_lines:
        return _wrap(pair, _placeholder(pair, "large"), is_open=True)
    return _wrap(pair, _table(pair), is_open=True)


def render_pairs(
    pairs: Iterable[FilePair],
    *,
    first_screen_lines: int = render.FIRST_SCREEN_LINES,
    max_lines: int | None = render.DEFAULT_MAX_LINES,
) -> str:
    """Render every pair, the first screen in full and the rest as placeholders."""
    out = []
    shown = 0
    for pair in pairs:
        if shown >= first_screen_lines:
            out.append(_wrap(pair, _placeholder(pair, "deferred"), is_open=True))
            continue
        out.append(render_pair(pair, max_lines=max_lines))
        shown += pair.line_count
    return "\n".join(out)


def _placeholder(pair: FilePair, reason: render.SummaryReason) -> str:
    note = escape(render._SUMMARY_TEXT[reason])
    parts = [f'<p class="diff-note">{note}']
    if reason != "binary":
        parts.append(f" {pair.line_count} lines.")
    parts.append("</p>")
    if reason != "binary":
        parts.append(
            f'<button type="button" class="diff-load" data-file-index="{pair.index}" '
            f'data-reason="{reason}">Load diff</button>'
        )
    return f'<div class="diff-placeholder" data-reason="{reason}">{"".join(parts)}</div>'


def _wrap(pair: FilePair, body: str, *, is_open: bool) -> str:
    path = escape(pair.path)
    stats = []
    for letter, file in zip(LETTERS, (pair.a, pair.b), strict=True):
        if file is None:
            stats.append(f'<span class="ab-stat ab-none">{letter}: untouched</span>')
            continue
        status = "" if file.status == "modified" else f" {escape(file.status)}"
        stats.append(
            f'<span class="ab-stat">{letter}{status}: <span class="diff-added">+{file.added}</span>'
            f'<span class="diff-removed">&minus;{file.removed}</span></span>'
        )
    indexes = "".join(
        f' data-{letter.lower()}-index="{file.index}"'
        for letter, file in zip(LETTERS, (pair.a, pair.b), strict=True)
        if file is not None
    )
    return (
        f'<details class="diff-file ab-file" id="ab-{pair.index}" data-file-index="{pair.index}" '
        f'data-path="{path}" data-touched="{pair.touched}"{indexes}{" open" if is_open else ""}>'
        f'<summary class="diff-file-header">'
        f'<span class="ab-touched ab-touched-{pair.touched}">{_TOUCHED_TEXT[pair.touched]}</span>'
        f'<span class="diff-path" title="{path}">{path}</span>'
        f'<span class="diff-stat">{"".join(stats)}</span></summary>'
        f'<div class="diff-body">{body}</div></details>'
    )


def _table(pair: FilePair) -> str:
    highlighted = [_highlights(f) for f in (pair.a, pair.b)]
    indexes = [f.index if f is not None else 0 for f in (pair.a, pair.b)]
    out = [
        '<table class="diff hl diff-ab"><colgroup><col class="ln"><col class="lc">'
        '<col class="ln"><col class="lc"></colgroup><tbody>'
    ]
    for region in regions(pair):
        out.append(_region_row(pair, region))
        for row in region.rows:
            out.append('<tr class="ab">')
            for side, slot in enumerate(row):
                out.append(_cell(slot, side, indexes[side], highlighted))
            out.append("</tr>")
    if not any(f.hunks for f in pair.files):
        out.append(f'<tr class="ab"><td class="lc" colspan="4">{_no_lines(pair)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _no_lines(pair: FilePair) -> str:
    return escape(
        "; ".join(f"{letter}: {render._no_content_note(f)}" for letter, f in _sides(pair))
    )


def _sides(pair: FilePair) -> list[tuple[str, FileDiff]]:
    return [(letter, f) for letter, f in zip(LETTERS, (pair.a, pair.b), strict=True) if f]


def _region_row(pair: FilePair, region: Region) -> str:
    cells = []
    for letter, file, hunks in (("A", pair.a, region.a_hunks), ("B", pair.b, region.b_hunks)):
        if file is None:
            text = f"{letter} did not touch this file."
        elif not hunks:
            text = f"{letter} left these lines as they were."
        else:
            text = " ".join(_hunk_header(h) for h in hunks)
        cells.append(f'<td class="hunk-text" colspan="2">{escape(text, quote=False)}</td>')
    return (
        f'<tr class="hunk" data-old-start="{region.old_start}" data-old-end="{region.old_end}">'
        f"{''.join(cells)}</tr>"
    )


def _hunk_header(hunk: Hunk) -> str:
    header = f"@@ -{hunk.old_start},{hunk.old_len} +{hunk.new_start},{hunk.new_len} @@"
    return f"{header} {hunk.section_header}" if hunk.section_header else header


LineKey = tuple[str, int | None, int | None]


def _highlights(file: FileDiff | None) -> dict[LineKey, str]:
    """Highlighted HTML of every line of a side's file, hunk by hunk as the other views do."""
    out: dict[LineKey, str] = {}
    if file is None:
        return out
    for hunk in file.hunks:
        old = [ln for ln in hunk.lines if ln.kind in ("context", "remove")]
        new = [ln for ln in hunk.lines if ln.kind == "add"]
        old_html = render.highlight_lines([ln.text for ln in old], file.language)
        new_html = render.highlight_lines([ln.text for ln in new], file.language)
        for line, html in zip(old + new, old_html + new_html, strict=True):
            out[_key(line)] = html
            if line.kind != "add":
                out[("base", line.old_no, None)] = html  # for the other side's fillers
    return out


def _key(line: Line) -> LineKey:
    return (line.kind, line.old_no, line.new_no)


def _cell(slot: Slot | None, side: int, index: int, highlighted: list[dict[LineKey, str]]) -> str:
    if slot is None:
        return '<td class="ln empty"></td><td class="lc empty"></td>'
    line = slot.line
    if slot.filler:
        # The unchanged base line, text as the other side has it; no anchor (not in this diff).
        code = highlighted[1 - side].get(("base", line.old_no, None))
        if code is None:
            code = escape(line.text, quote=False)
        return (
            f'<td class="ln ctx filler" data-line="{line.new_no}"></td>'
            f'<td class="lc ctx filler">{code}</td>'
        )
    cls = _CLASS[line.kind]
    code = highlighted[side].get(_key(line), escape(line.text, quote=False))
    if line.kind == "remove":
        number = render._ln(PREFIXES[side], index, "old", line.old_no, f" {cls}")
    else:
        number = render._ln(PREFIXES[side], index, "new", line.new_no, f" {cls}")
    return f'{number}<td class="lc {cls}">{code}</td>'
