"""Identity fingerprints: traces in a patch or transcript that tell an annotator which agent
wrote it.

Severity decides what blinding does with a finding:

* ``signature`` — a trailer (``Co-Authored-By:``), a banner ("🤖 Generated with [Claude Code]")
  or an agent's own file (CLAUDE.md, .cursorrules, .claude/...). These identify the agent on sight
  and are always scrubbed.
* ``mention`` — a model or vendor name (Claude, GPT-4o, OpenAI, Copilot, aider, ...). Names are
  also ordinary code in repositories that use those SDKs, so in a patch only *added* lines count,
  and a name used as code is not a finding: an import (``import openai``), an attribute or module
  path (``openai.OpenAI``, ``client.anthropic``) or part of an identifier (``openai_client``,
  ``AnthropicModel``). What remains — comments, strings, prose — is flagged and scrubbed.

``scrub`` keeps a patch applicable: a dropped added line shrinks its hunk header and shifts the
later hunks of that file; an agent file keeps its change under a neutral name.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confusable_homoglyphs.confusables import confusables_data

Severity = Literal["signature", "mention"]
Kind = Literal["trailer", "banner", "model", "vendor", "agent_file"]

VOCABULARY_FILE = Path(__file__).with_name("identity_vocabulary.toml")


@dataclass(frozen=True)
class Fingerprint:
    kind: Kind
    match: str  # the text as written (with its zero-width characters or look-alike letters)
    line: int  # 1-based line number in the text
    severity: Severity


def load_vocabulary(path: Path = VOCABULARY_FILE) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


_VOCABULARY = load_vocabulary()
_NAMES: list[dict[str, str]] = _VOCABULARY["names"]
_NAME = re.compile(
    r"(?<![\w.])(?:"
    + "|".join(f"(?P<n{i}>{entry['pattern']})" for i, entry in enumerate(_NAMES))
    + r")(?![\w])",
    re.IGNORECASE,
)
_TRAILER = re.compile(r"^\W*co-authored-by:.*$", re.IGNORECASE)
_BANNER = re.compile(
    r"(🤖\s*generated with.*|generated (?:with|by) \[?(?:"
    + "|".join(re.escape(tool) for tool in _VOCABULARY["banners"]["tools"])
    + r")\b.*)",
    re.IGNORECASE,
)
_IMPORT = re.compile(r"^\s*(?:import|from)\s")
_AGENT_FILE = re.compile(rf"(?<![\w.-])(?:{_VOCABULARY['agent_files']['pattern']})")
_NEUTRAL_FILE: dict[str, str] = _VOCABULARY["agent_files"]["neutral"]
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def _ascii_lookalikes() -> dict[str, str]:
    """Unicode's confusables (TR39) folded to ASCII: Cyrillic С -> C, U+2011 -> '-', ..."""
    table: dict[str, str] = {}
    for char, homoglyphs in confusables_data.items():
        if char.isascii():
            continue
        for glyph in homoglyphs:
            if glyph["c"].isascii() and glyph["c"].isprintable():
                # TR39 folds I-like capitals (Cyrillic І, Greek Ι) to 'l'; matching ignores case,
                # so a capital stays the capital it looks like.
                table[char] = "I" if glyph["c"] == "l" and char.isupper() else glyph["c"]
                break
    return table


_LOOKALIKES = _ascii_lookalikes()


@functools.lru_cache(maxsize=4096)
def _fold(char: str) -> str:
    """What a non-ASCII character reads as: nothing for a format character (zero-width space,
    joiner, soft hyphen, bidi marks), else its NFKC form with look-alikes folded to ASCII."""
    out = []
    for c in unicodedata.normalize("NFKC", char):
        if unicodedata.category(c) == "Cf":
            continue
        out.append(c if c.isascii() else _LOOKALIKES.get(c, c))
    return "".join(out)


def normalise(text: str) -> tuple[str, list[int] | None]:
    """The text as the patterns read it, and for each of its characters the index of the
    original character it came from (None: the text is ASCII and unchanged)."""
    if text.isascii():
        return text, None
    chars: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        folded = char if char.isascii() else _fold(char)
        chars.append(folded)
        origin.extend([i] * len(folded))
    return "".join(chars), origin


def _span(origin: list[int] | None, start: int, end: int) -> tuple[int, int]:
    """A match on the normalised text as a span of the original."""
    if origin is None:
        return start, end
    return origin[start], origin[end - 1] + 1


@dataclass(frozen=True)
class _Found:
    fingerprint: Fingerprint
    start: int  # span in the line as written
    end: int
    replacement: str | None  # None: drop the line


def _is_patch(lines: list[str]) -> bool:
    return any(line.startswith(("diff --git ", "@@ ")) for line in lines)


def _scanned(line: str, patch: bool) -> bool:
    """In a patch only added lines and file headers are the agent's words."""
    if not patch:
        return True
    return line.startswith(("+", "diff --git ", "rename ", "similarity")) or line.startswith(
        "Binary files"
    )


def _neutral_name(name: str) -> str:
    if name in _NEUTRAL_FILE:
        return _NEUTRAL_FILE[name]
    return (
        ".agent"
        if name.startswith((".claude", ".codex", ".cursor", ".gemini"))
        else ".agent-config"
    )


def _line_findings(line: str, number: int, patch: bool) -> list[_Found]:
    header = patch and line.startswith(("diff --git ", "+++ ", "rename ", "Binary files"))
    text, origin = normalise(line)
    found: list[_Found] = []
    for m in _AGENT_FILE.finditer(text):
        start, end = _span(origin, m.start(), m.end())
        fingerprint = Fingerprint("agent_file", line[start:end], number, "signature")
        found.append(_Found(fingerprint, start, end, _neutral_name(m.group(0))))
    if header:
        return found
    skip = 1 if patch else 0  # the +/space/- of a patch line
    body = text[skip:]
    signatures: tuple[tuple[re.Pattern[str], Kind], ...] = (
        (_TRAILER, "trailer"),
        (_BANNER, "banner"),
    )
    for pattern, signature_kind in signatures:
        signature = pattern.search(body)
        if signature:
            start, end = _span(origin, skip + signature.start(), skip + signature.end())
            text_as_written = line[start:end].strip()
            fingerprint = Fingerprint(signature_kind, text_as_written, number, "signature")
            return [*found, _Found(fingerprint, start, end, None)]
    if _IMPORT.match(body):
        return found
    for m in _NAME.finditer(body):
        end = m.end()
        if end < len(body) and body[end] == "." and body[end + 1 : end + 2].isidentifier():
            continue  # openai.OpenAI: a module used as code
        entry = _NAMES[int(str(m.lastgroup)[1:])]
        kind: Kind = "model" if entry["kind"] == "model" else "vendor"
        start, stop = _span(origin, skip + m.start(), skip + end)
        fingerprint = Fingerprint(kind, line[start:stop], number, "mention")
        found.append(_Found(fingerprint, start, stop, "[model]" if kind == "model" else "[agent]"))
    return found


def _findings(text: str) -> list[_Found]:
    lines = text.splitlines()
    patch = _is_patch(lines)
    found: list[_Found] = []
    for number, line in enumerate(lines, start=1):
        if _scanned(line, patch):
            found.extend(_line_findings(line, number, patch))
    return found


def find_fingerprints(text: str) -> list[Fingerprint]:
    return [found.fingerprint for found in _findings(text)]


def _scrub_line(line: str, findings: list[_Found]) -> str | None:
    """The cleaned line, or None when the whole line is a signature to drop."""
    if any(f.replacement is None for f in findings):
        return None
    # Right to left, so the earlier spans stay where they are; overlaps keep the first.
    cleaned, limit = line, len(line)
    for found in sorted(findings, key=lambda f: f.start, reverse=True):
        if found.end <= limit:
            cleaned = cleaned[: found.start] + str(found.replacement) + cleaned[found.end :]
            limit = found.start
    return cleaned


def scrub(text: str) -> str:
    """Replace names with ``[model]``/``[agent]``, drop trailer and banner lines, rename agent
    files."""
    lines = text.splitlines(keepends=True)
    patch = _is_patch([line.rstrip("\n") for line in lines])
    by_line: dict[int, list[_Found]] = {}
    for found in _findings(text):
        by_line.setdefault(found.fingerprint.line, []).append(found)
    out: list[str] = []
    hunk_at: int | None = None  # index in `out` of the current hunk header
    dropped_in_hunk = 0
    shift = 0  # lines dropped earlier in this file, for the later hunks' new start
    for number, line in enumerate(lines, start=1):
        if patch and line.startswith("diff --git "):
            _fix_hunk(out, hunk_at, dropped_in_hunk)
            hunk_at, dropped_in_hunk, shift = None, 0, 0
        elif patch and _HUNK.match(line):
            _fix_hunk(out, hunk_at, dropped_in_hunk)
            shift += dropped_in_hunk
            hunk_at, dropped_in_hunk = len(out), 0
            line = _shift_hunk(line, shift)
        cleaned = _scrub_line(line, by_line[number]) if number in by_line else line
        if cleaned is None:
            if patch and line.startswith("+"):
                dropped_in_hunk += 1
            elif patch and line.startswith(" "):
                # A signature in context is the repository's own; keep the line so the hunk applies.
                cleaned = line
            if cleaned is None:
                continue
        out.append(cleaned)
    _fix_hunk(out, hunk_at, dropped_in_hunk)
    return "".join(out)


def _shift_hunk(header: str, shift: int) -> str:
    m = _HUNK.match(header.rstrip("\n"))
    if not m or not shift:
        return header
    old_start, old_len, new_start, new_len, rest = m.groups()
    new_start = str(int(new_start) - shift)
    return _format_hunk(old_start, old_len, new_start, new_len, rest, header.endswith("\n"))


def _fix_hunk(out: list[str], at: int | None, dropped: int) -> None:
    if at is None or not dropped:
        return
    m = _HUNK.match(out[at].rstrip("\n"))
    if not m:
        return
    old_start, old_len, new_start, new_len, rest = m.groups()
    new_len = str(int(new_len if new_len is not None else 1) - dropped)
    out[at] = _format_hunk(old_start, old_len, new_start, new_len, rest, out[at].endswith("\n"))


def _format_hunk(
    old_start: str, old_len: str | None, new_start: str, new_len: str | None, rest: str, nl: bool
) -> str:
    old = old_start if old_len is None else f"{old_start},{old_len}"
    new = new_start if new_len is None else f"{new_start},{new_len}"
    return f"@@ -{old} +{new} @@{rest}" + ("\n" if nl else "")
