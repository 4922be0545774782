"""Parsing repository lists: plain (one URL a line), CSV with a header, or JSON lines.

Plain Python, no Django and no git: it validates every line, keeps the good ones, reports each
bad one with its line number and reason, and folds duplicates (by normalised URL) onto the line
that first named the repository. Checking against the database is the caller's job.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from marlin.catalog.validation import InvalidRepositoryURL, RepositoryURL, validate_url

MAX_LINE_LENGTH = 4000
# C0 controls and DEL: a list line has no use for them but tab (text inside JSON may also hold
# line ends and form feeds), PostgreSQL cannot store NUL, and the rest would reach terminals and
# logs as escape codes.
_LINE_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
RAW_PREVIEW = 160
MAX_TAGS = 20
_TAG_SPLIT_RE = re.compile(r"[;|]")
_FIELD_LIMITS = {"language": 50, "license": 100}
_TAG_LIMIT = 64
_MAX_STARS = 2_000_000_000


@dataclass(frozen=True)
class RepoLine:
    line_no: int
    url: str  # as git will be given it
    normalized: str
    name: str
    host: str
    is_local: bool
    language: str = ""
    stars: int | None = None
    license: str = ""
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BadLine:
    line_no: int
    raw: str  # truncated, for display
    reason: str


@dataclass
class ImportReport:
    format: str  # "plain", "csv" or "jsonl"
    good: list[RepoLine] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    duplicates: list[tuple[int, int]] = field(default_factory=list)  # (line_no, first_line_no)

    @property
    def counts(self) -> dict[str, int]:
        return {"good": len(self.good), "bad": len(self.bad), "duplicates": len(self.duplicates)}


class _BadRow(ValueError):
    pass


def parse_repository_list(
    text_or_lines: str | Iterable[str],
    *,
    filename_hint: str = "",
    allow_local: bool = False,
    check: Callable[[RepositoryURL], object] | None = None,
) -> ImportReport:
    """Parse a list of repositories in any of the three formats (detected from the content,
    with the file name's extension as a tie-breaker). `check` (the catalog's outbound policy)
    may refuse a valid URL by raising InvalidRepositoryURL; the line is then reported as bad."""
    if isinstance(text_or_lines, str):
        lines = text_or_lines.splitlines()
    else:
        lines = [line.rstrip("\r\n") for line in text_or_lines]
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    fmt = detect_format(lines, filename_hint)
    report = ImportReport(format=fmt)
    first_seen: dict[str, int] = {}
    rows = _rows(lines, fmt, report)
    for line_no, raw, fields in rows:
        try:
            repo = _to_repo_line(line_no, fields, allow_local, check)
        except (_BadRow, InvalidRepositoryURL) as exc:
            report.bad.append(BadLine(line_no, _preview(raw), str(exc)))
            continue
        first = first_seen.get(repo.normalized)
        if first is not None:
            report.duplicates.append((line_no, first))
            continue
        first_seen[repo.normalized] = line_no
        report.good.append(repo)
    return report


def detect_format(lines: list[str], filename_hint: str = "") -> str:
    first = next((line.strip() for line in lines if _is_content(line)), "")
    if first.startswith("{"):
        return "jsonl"
    header = [cell.strip().lower() for cell in next(csv.reader([first]), [])] if first else []
    if "url" in header:
        return "csv"
    hint = filename_hint.lower()
    if hint.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return "plain"


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _rows(
    lines: list[str], fmt: str, report: ImportReport
) -> Iterable[tuple[int, str, dict[str, Any]]]:
    header: list[str] | None = None
    for index, line in enumerate(lines):
        line_no = index + 1
        if not _is_content(line):
            continue
        if len(line) > MAX_LINE_LENGTH:
            report.bad.append(
                BadLine(
                    line_no, _preview(line), f"line is longer than {MAX_LINE_LENGTH} characters"
                )
            )
            continue
        # JSON may spell one as an escape (\u0000), so its decoded text is looked at too.
        control = _LINE_CONTROL_RE.search(line) or (
            _TEXT_CONTROL_RE.search(_decoded(line)) if fmt == "jsonl" else None
        )
        if control:
            report.bad.append(BadLine(line_no, _preview(line), _control_reason(control.group())))
            continue
        if fmt == "plain":
            yield line_no, line, {"url": line.strip()}
        elif fmt == "jsonl":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                report.bad.append(BadLine(line_no, _preview(line), f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                report.bad.append(
                    BadLine(line_no, _preview(line), 'expected a JSON object with a "url" field')
                )
                continue
            yield line_no, line, obj
        else:
            cells = next(csv.reader([line]), [])
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                continue
            if len(cells) > len(header):
                report.bad.append(
                    BadLine(
                        line_no,
                        _preview(line),
                        f"{len(cells)} columns but the header has {len(header)}",
                    )
                )
                continue
            yield line_no, line, dict(zip(header, (cell.strip() for cell in cells), strict=False))


def _decoded(line: str) -> str:
    """Every string of a JSON line (names and values) with its escapes decoded, joined by tabs;
    "" when the line is not JSON (the parser reports that)."""
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return ""
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(str(key) for key in item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return "\t".join(found)


def _control_reason(char: str) -> str:
    what = (
        "a NUL character (U+0000)" if char == "\x00" else f"the control character U+{ord(char):04X}"
    )
    return f"the line contains {what}; remove it"


def _to_repo_line(
    line_no: int,
    fields: dict[str, Any],
    allow_local: bool,
    check: Callable[[RepositoryURL], object] | None,
) -> RepoLine:
    url = fields.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _BadRow("no url given")
    parsed = validate_url(url.strip(), allow_local=allow_local)
    if check is not None:
        check(parsed)
    return RepoLine(
        line_no=line_no,
        url=parsed.url,
        normalized=parsed.normalized,
        name=parsed.name,
        host=parsed.host,
        is_local=parsed.is_local,
        language=_text_field(fields, "language"),
        stars=_stars(fields.get("stars")),
        license=_text_field(fields, "license"),
        tags=_tags(fields.get("tags")),
    )


def _text_field(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRow(f"{name} must be text")
    value = value.strip()
    if len(value) > _FIELD_LIMITS[name]:
        raise _BadRow(f"{name} is longer than {_FIELD_LIMITS[name]} characters")
    if not value.isprintable():
        raise _BadRow(f"{name} contains control characters")
    return value


def _stars(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _BadRow("stars must be a whole number")
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        if not text.isdigit():
            raise _BadRow(f"stars must be a whole number, not {value[:20]!r}")
        value = int(text)
    if not isinstance(value, int) or value < 0 or value > _MAX_STARS:
        raise _BadRow("stars must be a whole number between 0 and 2,000,000,000")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = _TAG_SPLIT_RE.split(value)
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = value
    else:
        raise _BadRow("tags must be text separated by ';' or '|', or a list of strings")
    tags: list[str] = []
    for item in items:
        tag = item.strip()
        if not tag or tag in tags:
            continue
        if len(tag) > _TAG_LIMIT or not tag.isprintable():
            raise _BadRow(
                f"tag {tag[:20]!r} is longer than {_TAG_LIMIT} characters or has control characters"
            )
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise _BadRow(f"more than {MAX_TAGS} tags")
    return tuple(tags)


def _preview(raw: str) -> str:
    # Control characters are shown by their code, not sent to the reader's terminal.
    raw = _LINE_CONTROL_RE.sub(lambda found: f"\\x{ord(found.group()):02x}", raw)
    return raw if len(raw) <= RAW_PREVIEW else raw[:RAW_PREVIEW] + "…"
