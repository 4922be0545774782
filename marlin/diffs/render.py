"""Render parsed diffs (marlin.diffs.parse) as HTML for the comparison page.

Plain Python, no Django: every function returns an HTML string that a template marks safe.
Everything taken from a repository or an agent (paths, code, section headers) is escaped here,
also when Pygments fails, so callers must not escape again and must not build HTML around it
from untrusted text themselves. Styles live in ``marlin/static/marlin/diff.css``.

Public API
----------
``render_file(file, *, mode="split", anchor_prefix="d", context_expand=True, file_index=None,
max_lines=DEFAULT_MAX_LINES, force=False) -> str``
    One ``<details class="diff-file">`` (open, collapsible; its ``<summary>`` is the sticky file
    header) holding a ``<table class="diff hl">``. ``mode`` is ``"split"`` (old and new side by
    side, removals paired with additions) or ``"unified"`` (one column). Binary files, generated
    files and files with more than ``max_lines`` rows render :func:`render_file_summary` instead;
    pass ``force=True`` (or ``max_lines=None``) when the page loads them on request.
``render_file_summary(file, *, reason, anchor_prefix="d", file_index=None) -> str``
    The placeholder: ``reason`` is ``"binary"``, ``"generated"``, ``"large"`` or ``"deferred"``.
    Except for binary files it carries ``<button class="diff-load" data-file-index=...>``.
``render_patch(files, *, mode="split", anchor_prefix="d", context_expand=True,
first_screen_lines=FIRST_SCREEN_LINES, max_lines=DEFAULT_MAX_LINES) -> str``
    The whole diff with the first-screen strategy: files are rendered in full until about
    ``first_screen_lines`` rows are on the page, the rest as ``"deferred"`` placeholders.
``render_context_lines(text_lines, start, end, *, language, anchor_prefix, file_index,
mode="unified", new_start=None) -> str``
    ``<tr>`` rows for base-file lines ``start..end`` (1-based, inclusive, clamped to the file) as
    context, to insert before a hunk row. ``new_start`` is the new-side number of line ``start``
    (defaults to ``start``; for the gap above a hunk it is ``hunk.new_start - (hunk.old_start -
    start)``).
``highlight_lines(lines, language) -> list[str]``: one escaped HTML fragment per input line.
``pygments_css(scope=".hl") -> str``: the token colours, scoped, as they are in diff.css.

Anchors and data attributes
---------------------------
Every line-number cell is ``<td class="ln" id="{anchor_prefix}-{file_index}-{L|R}{line}"
data-side="old|new" data-line="{line}">`` (L = old side, R = new side); the number is drawn by
CSS from ``data-line`` so copying code copies no numbers. Ids are the same in both modes, so a
comment anchored to ``(file_index, side, line)`` survives a mode switch; give each rendered
candidate its own ``anchor_prefix`` (``"a"``, ``"b"``) when both are on one page. Hunk rows are
``<tr class="hunk" data-file-index data-old-start data-old-len data-new-start data-new-len>``; with
``context_expand`` a ``<button class="diff-expand" data-file-index data-from data-to
data-new-from>`` asks for the hidden base lines above the hunk (``data-to`` is empty after the
last hunk: up to the end of the file).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterable
from functools import lru_cache
from html import escape
from typing import Any, Literal

from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from marlin.diffs.parse import FileDiff, Hunk, Line

Mode = Literal["split", "unified"]
SummaryReason = Literal["binary", "generated", "large", "deferred"]

DEFAULT_MAX_LINES = 2000
# Rows drawn on the page before the rest waits for its turn (lazy loads as it scrolls near).
# About fifteen screens: the browser lays out and paints every row it is sent before it shows
# the first file, so rows nobody has scrolled to yet only delay it (issue 14: 600 -> 300 took
# the 20,000-line comparison from two A | B files on the page to one).
FIRST_SCREEN_LINES = 300
# Regex lexers can take seconds on one minified line; such sides are shown plain.
MAX_HIGHLIGHT_LINE_CHARS = 2000
# Some lexers are quadratic on some inputs (the ASCII-armor lexer takes seconds on a CA bundle):
# past this budget a side is shown plain rather than holding the page.
HIGHLIGHT_BUDGET_S = 0.05
HIGHLIGHT_BUDGET_PER_LINE_S = 0.0005
HIGHLIGHT_BUDGET_MAX_S = 0.5

_ANCHOR_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_FORMATTER = HtmlFormatter(nowrap=True)
_SUMMARY_TEXT: dict[SummaryReason, str] = {
    "binary": "Binary file changed; no text to show.",
    "generated": "Generated file, hidden by default.",
    "large": "Large diff, not loaded.",
    "deferred": "Not loaded yet.",
}
_UNIFIED_CLASS = {"context": "ctx", "add": "add", "remove": "del", "no-newline": "nonl"}


def render_file(
    file: FileDiff,
    *,
    mode: Mode = "split",
    anchor_prefix: str = "d",
    context_expand: bool = True,
    file_index: int | None = None,
    max_lines: int | None = DEFAULT_MAX_LINES,
    force: bool = False,
) -> str:
    """Render one file's diff as HTML (see module docstring)."""
    _check_mode(mode)
    _check_prefix(anchor_prefix)
    index = file.index if file_index is None else file_index
    if file.is_binary:
        return render_file_summary(
            file, reason="binary", anchor_prefix=anchor_prefix, file_index=index
        )
    if not force and file.is_generated:
        return render_file_summary(
            file, reason="generated", anchor_prefix=anchor_prefix, file_index=index
        )
    if not force and max_lines is not None and file.line_count > max_lines:
        return render_file_summary(
            file, reason="large", anchor_prefix=anchor_prefix, file_index=index
        )
    if not file.hunks:
        body = f'<p class="diff-note">{escape(_no_content_note(file))}</p>'
    else:
        body = _table(file, mode, anchor_prefix, index, context_expand)
    return _wrap(file, index, anchor_prefix, body, is_open=True)


def render_file_summary(
    file: FileDiff,
    *,
    reason: SummaryReason,
    anchor_prefix: str = "d",
    file_index: int | None = None,
) -> str:
    """Render the placeholder for a file whose lines are not shown (see module docstring)."""
    _check_prefix(anchor_prefix)
    if reason not in _SUMMARY_TEXT:
        raise ValueError(f"reason must be one of {sorted(_SUMMARY_TEXT)}, got {reason!r}")
    index = file.index if file_index is None else file_index
    parts = [f'<p class="diff-note">{escape(_SUMMARY_TEXT[reason])}']
    if reason != "binary":
        parts.append(f" {file.line_count} lines (+{file.added} &minus;{file.removed}).")
    parts.append("</p>")
    if reason != "binary":
        parts.append(
            f'<button type="button" class="diff-load" data-file-index="{index}" '
            f'data-reason="{reason}">Load diff</button>'
        )
    body = f'<div class="diff-placeholder" data-reason="{reason}">{"".join(parts)}</div>'
    return _wrap(file, index, anchor_prefix, body, is_open=reason != "generated")


def render_patch(
    files: Iterable[FileDiff],
    *,
    mode: Mode = "split",
    anchor_prefix: str = "d",
    context_expand: bool = True,
    first_screen_lines: int = FIRST_SCREEN_LINES,
    max_lines: int | None = DEFAULT_MAX_LINES,
) -> str:
    """Render a whole diff, fully up to ``first_screen_lines`` rows, then as placeholders."""
    out: list[str] = []
    shown = 0
    for f in files:
        if shown >= first_screen_lines and not f.is_binary and not f.is_generated:
            out.append(render_file_summary(f, reason="deferred", anchor_prefix=anchor_prefix))
            continue
        out.append(
            render_file(
                f,
                mode=mode,
                anchor_prefix=anchor_prefix,
                context_expand=context_expand,
                max_lines=max_lines,
            )
        )
        if not f.is_binary and not f.is_generated:
            shown += f.line_count
    return "\n".join(out)


def render_context_lines(
    text_lines: list[str],
    start: int,
    end: int,
    *,
    language: str | None,
    anchor_prefix: str,
    file_index: int,
    mode: Mode = "unified",
    new_start: int | None = None,
) -> str:
    """Render base-file lines ``start..end`` as context rows (see module docstring)."""
    _check_mode(mode)
    _check_prefix(anchor_prefix)
    if start < 1 or end < start:
        raise ValueError(f"need 1 <= start <= end, got start={start} end={end}")
    end = min(end, len(text_lines))
    if start > end:
        return ""
    texts = [line.rstrip("\r\n") for line in text_lines[start - 1 : end]]
    shift = (start if new_start is None else new_start) - start
    rows = []
    for offset, code in enumerate(highlight_lines(texts, language)):
        old_no = start + offset
        line = Line("context", old_no, old_no + shift, "")
        if mode == "unified":
            rows.append(_unified_row(line, code, anchor_prefix, file_index, extra=" expanded"))
        else:
            rows.append(_split_row(line, code, line, code, anchor_prefix, file_index, " expanded"))
    return "".join(rows)


def highlight_lines(lines: list[str], language: str | None) -> list[str]:
    """Highlight ``lines`` as one text so multi-line tokens (docstrings) colour every line.

    Falls back to plain escaping when there is no lexer, a line is very long, the lexer raises,
    its output does not split back into as many lines (Pygments treats a lone ``\\r`` as a
    line break, for instance), or lexing runs past its time budget.
    """
    if not lines:
        return []
    lexer = _lexer(language) if language else None
    if lexer is None or any(len(line) > MAX_HIGHLIGHT_LINE_CHARS for line in lines):
        return [escape(line, quote=False) for line in lines]
    deadline = time.perf_counter() + min(
        HIGHLIGHT_BUDGET_S + HIGHLIGHT_BUDGET_PER_LINE_S * len(lines), HIGHLIGHT_BUDGET_MAX_S
    )
    try:
        tokens = _tokens_before(lexer, "\n".join(lines) + "\n", deadline)
        if tokens is None:
            return [escape(line, quote=False) for line in lines]
        buffer = io.StringIO()
        _FORMATTER.format(tokens, buffer)
    except Exception:  # a broken lexer must not break the page; the text still shows, escaped
        return [escape(line, quote=False) for line in lines]
    out = buffer.getvalue().split("\n")
    if out and out[-1] == "":
        out.pop()
    if len(out) != len(lines):
        return [escape(line, quote=False) for line in lines]
    return out


def pygments_css(scope: str = ".hl") -> str:
    """The Pygments ``default`` style's token rules under ``scope`` (no global rules)."""
    formatter = HtmlFormatter(style="default")
    # types-Pygments leaves get_token_style_defs unannotated; it returns a list of CSS rules.
    # types-Pygments leaves get_token_style_defs unannotated.
    rules: list[str] = formatter.get_token_style_defs(scope)  # type: ignore[no-untyped-call]
    return "\n".join(rules) + "\n"


def _tokens_before(lexer: Lexer, text: str, deadline: float) -> list[tuple[Any, str]] | None:
    """Lex ``text``, or give up (``None``) once ``deadline`` passes."""
    tokens = []
    for count, token in enumerate(lexer.get_tokens(text)):
        tokens.append(token)
        if count & 255 == 0 and time.perf_counter() > deadline:
            return None
    return tokens


@lru_cache(maxsize=256)
def _lexer(language: str) -> Lexer | None:
    try:
        # stripnl would drop leading/trailing blank lines and shift every line after them.
        return get_lexer_by_name(language, stripnl=False, ensurenl=True, tabsize=0)
    except ClassNotFound:
        return None


def _check_mode(mode: str) -> None:
    if mode not in ("split", "unified"):
        raise ValueError(f"mode must be 'split' or 'unified', got {mode!r}")


def _check_prefix(prefix: str) -> None:
    if not _ANCHOR_PREFIX.match(prefix):
        raise ValueError(
            f"anchor_prefix must be a letter followed by up to 31 letters, digits, '-' or '_', "
            f"got {prefix!r}"
        )


def _no_content_note(file: FileDiff) -> str:
    if file.status == "renamed":
        return f"File renamed without changes ({file.similarity or 100}% similar)."
    if file.old_mode != file.new_mode and file.old_mode and file.new_mode:
        return f"File mode changed from {file.old_mode} to {file.new_mode}."
    if file.status == "added":
        return "Empty file added."
    if file.status == "deleted":
        return "Empty file deleted."
    return "No line changes."


def _wrap(file: FileDiff, index: int, prefix: str, body: str, *, is_open: bool) -> str:
    path = escape(file.path)
    if file.old_path and file.old_path != file.path:
        shown = f'<span class="diff-old-path">{escape(file.old_path)}</span> &rarr; {path}'
    else:
        shown = path
    mode_change = ""
    if file.old_mode and file.new_mode and file.old_mode != file.new_mode:
        mode_change = (
            f'<span class="diff-mode">{escape(file.old_mode)} &rarr; {escape(file.new_mode)}</span>'
        )
    flags = '<span class="diff-flag">generated</span>' if file.is_generated else ""
    return (
        f'<details class="diff-file" id="{prefix}-{index}" data-file-index="{index}" '
        f'data-path="{path}" data-status="{file.status}"{" open" if is_open else ""}>'
        f'<summary class="diff-file-header">'
        f'<span class="diff-status diff-status-{file.status}">{file.status}</span>'
        f'<span class="diff-path" title="{path}">{shown}</span>{mode_change}{flags}'
        f'<span class="diff-stat"><span class="diff-added">+{file.added}</span>'
        f'<span class="diff-removed">&minus;{file.removed}</span></span></summary>'
        f'<div class="diff-body">{body}</div></details>'
    )


def _table(file: FileDiff, mode: Mode, prefix: str, index: int, expand: bool) -> str:
    expand = expand and file.status not in ("added", "deleted")
    lang = f' data-language="{escape(file.language)}"' if file.language else ""
    if mode == "split":
        cols = '<col class="ln"><col class="lc"><col class="ln"><col class="lc">'
    else:
        cols = '<col class="ln"><col class="ln"><col class="lc">'
    out = [f'<table class="diff hl diff-{mode}"{lang}><colgroup>{cols}</colgroup><tbody>']
    prev_old_end = prev_new_end = 0
    for hunk in file.hunks:
        out.append(_hunk_row(hunk, mode, index, expand, prev_old_end, prev_new_end))
        old_html, new_html = _highlight_hunk(hunk, file.language)
        if mode == "split":
            out.extend(_split_rows(hunk.lines, old_html, new_html, prefix, index))
        else:
            out.extend(_unified_rows(hunk.lines, old_html, new_html, prefix, index))
        prev_old_end = hunk.old_start + hunk.old_len - (1 if hunk.old_len else 0)
        prev_new_end = hunk.new_start + hunk.new_len - (1 if hunk.new_len else 0)
    # After a "no newline" marker the file has ended: there is nothing below to show.
    at_end = any(ln.kind == "no-newline" for ln in file.hunks[-1].lines)
    if expand and not at_end:
        out.append(_tail_row(mode, index, prev_old_end, prev_new_end))
    out.append("</tbody></table>")
    return "".join(out)


def _highlight_hunk(hunk: Hunk, language: str | None) -> tuple[list[str], list[str]]:
    old = [ln.text for ln in hunk.lines if ln.kind in ("context", "remove")]
    new = [ln.text for ln in hunk.lines if ln.kind in ("context", "add")]
    return highlight_lines(old, language), highlight_lines(new, language)


def _hunk_row(
    hunk: Hunk, mode: Mode, index: int, expand: bool, prev_old: int, prev_new: int
) -> str:
    header = f"@@ -{hunk.old_start},{hunk.old_len} +{hunk.new_start},{hunk.new_len} @@"
    if hunk.section_header:
        header += " " + hunk.section_header
    button = ""
    gap_from, gap_to = prev_old + 1, hunk.old_start - 1
    if expand and gap_to >= gap_from:
        button = _expand_button(index, gap_from, gap_to, prev_new + 1, "above")
    # Split tables have four columns (number, code, number, code), unified three.
    gutter, text = ("1", "3") if mode == "split" else ("2", "1")
    return (
        f'<tr class="hunk" data-file-index="{index}" data-old-start="{hunk.old_start}" '
        f'data-old-len="{hunk.old_len}" data-new-start="{hunk.new_start}" '
        f'data-new-len="{hunk.new_len}"><td class="hunk-gutter" colspan="{gutter}">{button}</td>'
        f'<td class="hunk-text" colspan="{text}">{escape(header, quote=False)}</td></tr>'
    )


def _tail_row(mode: Mode, index: int, old_end: int, new_end: int) -> str:
    button = _expand_button(index, old_end + 1, None, new_end + 1, "below")
    span = "4" if mode == "split" else "3"
    return (
        f'<tr class="hunk hunk-tail" data-file-index="{index}" data-old-start="{old_end + 1}" '
        f'data-new-start="{new_end + 1}">'
        f'<td class="hunk-gutter" colspan="{span}">{button}</td></tr>'
    )


def _expand_button(index: int, start: int, end: int | None, new_start: int, where: str) -> str:
    label = f"Show lines {start}-{end}" if end is not None else f"Show lines from {start}"
    return (
        f'<button type="button" class="diff-expand diff-expand-{where}" data-file-index="{index}" '
        f'data-from="{start}" data-to="{"" if end is None else end}" data-new-from="{new_start}" '
        f'title="{label}" aria-label="{label}"></button>'
    )


def _ln(prefix: str, index: int, side: str, number: int | None, cls: str = "") -> str:
    if number is None:
        return f'<td class="ln{cls}"></td>'
    letter = "L" if side == "old" else "R"
    return (
        f'<td class="ln{cls}" id="{prefix}-{index}-{letter}{number}" data-side="{side}" '
        f'data-line="{number}"></td>'
    )


def _unified_rows(
    lines: list[Line], old_html: list[str], new_html: list[str], prefix: str, index: int
) -> list[str]:
    rows = []
    o = n = 0
    for line in lines:
        if line.kind == "no-newline":
            rows.append(_note_row(line.text, 3))
            continue
        if line.kind == "remove":
            code = old_html[o]
            o += 1
        else:
            code = new_html[n]
            n += 1
            if line.kind == "context":
                o += 1
        rows.append(_unified_row(line, code, prefix, index))
    return rows


def _unified_row(line: Line, code: str, prefix: str, index: int, extra: str = "") -> str:
    return (
        f'<tr class="{_UNIFIED_CLASS[line.kind]}{extra}">{_ln(prefix, index, "old", line.old_no)}'
        f'{_ln(prefix, index, "new", line.new_no)}<td class="lc">{code}</td></tr>'
    )


def _note_row(text: str, span: int) -> str:
    return f'<tr class="nonl"><td class="lc" colspan="{span}">{escape(text, quote=False)}</td></tr>'


def _split_rows(
    lines: list[Line], old_html: list[str], new_html: list[str], prefix: str, index: int
) -> list[str]:
    rows: list[str] = []
    removes: list[tuple[Line, str]] = []
    adds: list[tuple[Line, str]] = []
    o = n = 0

    def flush() -> None:
        for i in range(max(len(removes), len(adds))):
            old = removes[i] if i < len(removes) else (None, "")
            new = adds[i] if i < len(adds) else (None, "")
            rows.append(_split_row(old[0], old[1], new[0], new[1], prefix, index))
        removes.clear()
        adds.clear()

    for line in lines:
        if line.kind == "remove":
            if adds:  # a removal after additions starts a new block
                flush()
            removes.append((line, old_html[o]))
            o += 1
        elif line.kind == "add":
            adds.append((line, new_html[n]))
            n += 1
        elif line.kind == "context":
            flush()
            rows.append(_split_row(line, old_html[o], line, new_html[n], prefix, index))
            o += 1
            n += 1
        else:
            flush()
            rows.append(_note_row(line.text, 4))
    flush()
    return rows


def _split_row(
    old: Line | None,
    old_code: str,
    new: Line | None,
    new_code: str,
    prefix: str,
    index: int,
    extra: str = "",
) -> str:
    old_cls = "empty" if old is None else _UNIFIED_CLASS[old.kind]
    new_cls = "empty" if new is None else _UNIFIED_CLASS[new.kind]
    return (
        f'<tr class="split{extra}">'
        f"{_ln(prefix, index, 'old', old.old_no if old else None, ' ' + old_cls)}"
        f'<td class="lc {old_cls}">{old_code}</td>'
        f"{_ln(prefix, index, 'new', new.new_no if new else None, ' ' + new_cls)}"
        f'<td class="lc {new_cls}">{new_code}</td></tr>'
    )
