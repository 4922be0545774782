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

import re
from dataclasses import dataclass
from typing import Literal

Severity = Literal["signature", "mention"]
Kind = Literal["trailer", "banner", "model", "vendor", "agent_file"]


@dataclass(frozen=True)
class Fingerprint:
    kind: Kind
    match: str
    line: int  # 1-based line number in the text
    severity: Severity


_TRAILER = re.compile(r"^\W*co-authored-by:.*$", re.IGNORECASE)
_BANNER = re.compile(
    r"(🤖\s*generated with.*|generated (?:with|by) "
    r"\[?(?:claude code|codex|copilot|aider|cursor|chatgpt|gemini)\b.*)",
    re.IGNORECASE,
)
_MODELS = (
    r"claude(?:[- ](?:\d[\w.-]*|opus|sonnet|haiku|code))*|chatgpt"
    r"|gpt-?(?:3\.5|4o?|4\.1|5)(?:[-.]?(?:mini|turbo|nano|preview))*"
    r"|codex|gemini|llama[- ]?\d*|mistral|mixtral|deepseek(?:-\w+)?|qwen\d*(?:\.\d+)?|grok"
)
_VENDORS = (
    r"anthropic|openai|copilot|aider|swe-agent|devin|autocoderover"
    r"|cursor(?= (?:ai|agent|ide|editor)\b)"
)
_NAME = re.compile(
    rf"(?<![\w.])(?:(?P<model>{_MODELS})|(?P<vendor>{_VENDORS}))(?![\w])", re.IGNORECASE
)
_IMPORT = re.compile(r"^\s*(?:import|from)\s")
_AGENT_FILE = re.compile(
    r"(?<![\w.-])(?:CLAUDE\.md|AGENTS\.md|GEMINI\.md|\.cursorrules|\.aider[\w.-]*|copilot-instructions\.md"
    r"|\.(?:claude|codex|cursor|gemini)(?=/))"
)
_NEUTRAL_FILE = {
    "CLAUDE.md": "AGENT_NOTES.md",
    "AGENTS.md": "AGENT_NOTES.md",
    "GEMINI.md": "AGENT_NOTES.md",
    "copilot-instructions.md": "agent-notes.md",
    ".cursorrules": ".agent-rules",
}
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")


def _is_patch(lines: list[str]) -> bool:
    return any(line.startswith(("diff --git ", "@@ ")) for line in lines)


def _scanned(line: str, patch: bool) -> bool:
    """In a patch only added lines and file headers are the agent's words."""
    if not patch:
        return True
    return line.startswith(("+", "diff --git ", "rename ", "similarity")) or line.startswith(
        "Binary files"
    )


def _line_findings(line: str, number: int, patch: bool) -> list[Fingerprint]:
    header = patch and line.startswith(("diff --git ", "+++ ", "rename ", "Binary files"))
    found = [
        Fingerprint("agent_file", m.group(0), number, "signature")
        for m in _AGENT_FILE.finditer(line)
    ]
    if header:
        return found
    body = line[1:] if patch else line
    if _TRAILER.match(body):
        return [*found, Fingerprint("trailer", body.strip(), number, "signature")]
    banner = _BANNER.search(body)
    if banner:
        return [*found, Fingerprint("banner", banner.group(0).strip(), number, "signature")]
    if _IMPORT.match(body):
        return found
    for m in _NAME.finditer(body):
        end = m.end()
        if end < len(body) and body[end] == "." and body[end + 1 : end + 2].isidentifier():
            continue  # openai.OpenAI: a module used as code
        kind: Kind = "model" if m.group("model") else "vendor"
        found.append(Fingerprint(kind, m.group(0), number, "mention"))
    return found


def find_fingerprints(text: str) -> list[Fingerprint]:
    lines = text.splitlines()
    patch = _is_patch(lines)
    findings: list[Fingerprint] = []
    for number, line in enumerate(lines, start=1):
        if _scanned(line, patch):
            findings.extend(_line_findings(line, number, patch))
    return findings


def _neutral_name(match: re.Match[str]) -> str:
    name = match.group(0)
    if name in _NEUTRAL_FILE:
        return _NEUTRAL_FILE[name]
    return (
        ".agent"
        if name.startswith((".claude", ".codex", ".cursor", ".gemini"))
        else ".agent-config"
    )


def _neutral_mention(match: re.Match[str]) -> str:
    return "[model]" if match.group("model") else "[agent]"


def _scrub_line(line: str, findings: list[Fingerprint]) -> str | None:
    """The cleaned line, or None when the whole line is a signature to drop."""
    if any(f.kind in ("trailer", "banner") for f in findings):
        return None
    if any(f.kind == "agent_file" for f in findings):
        line = _AGENT_FILE.sub(_neutral_name, line)
    mentions = {f.match for f in findings if f.severity == "mention"}
    if mentions:
        line = _NAME.sub(
            lambda m: _neutral_mention(m) if m.group(0) in mentions else m.group(0), line
        )
    return line


def scrub(text: str) -> str:
    """Replace names with ``[model]``/``[agent]``, drop trailer and banner lines, rename agent
    files."""
    lines = text.splitlines(keepends=True)
    patch = _is_patch([line.rstrip("\n") for line in lines])
    by_line: dict[int, list[Fingerprint]] = {}
    for finding in find_fingerprints(text):
        by_line.setdefault(finding.line, []).append(finding)
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
