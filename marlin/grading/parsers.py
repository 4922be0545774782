"""Turn tool output into TestResults and Findings: pytest JUnit XML, ruff, bandit, semgrep.

Every parser takes the raw text a tool wrote (inside the sandbox, so untrusted) and either
returns results or raises ParseError saying what was wrong; none of them trusts sizes or shapes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # noqa: S405  # size-guarded; expat expands no external entities
from collections.abc import Callable
from typing import Any

from marlin.grading.spec import Finding, TestOutcome, TestResult

MAX_REPORT_BYTES = 32 * 1024 * 1024
MAX_MESSAGE_CHARS = 4000
WORKSPACE_PREFIXES = ("/workspace/", "./")


class ParseError(Exception):
    """A tool's report could not be read; the message says which tool and why."""


def parse_junit(text: str | bytes) -> list[TestResult]:
    """pytest's --junitxml report as one TestResult per test, named by pytest node id when the
    report carries file names (junit_family=xunit1), else `classname::name`."""
    _check_size("JUnit XML", text)
    try:
        root = ET.fromstring(text)  # noqa: S314  # size-guarded above
    except ET.ParseError as exc:
        raise ParseError(f"JUnit XML is malformed: {exc}") from None
    results = []
    for case in root.iter("testcase"):
        outcome, message = _junit_outcome(case)
        results.append(TestResult(name=_node_id(case), outcome=outcome, message=message))
    return results


# A test case's child element, when present, decides its outcome (checked in this order).
_JUNIT_OUTCOMES: tuple[tuple[str, TestOutcome], ...] = (
    ("failure", "failed"),
    ("error", "error"),
    ("skipped", "skipped"),
)


def _junit_outcome(case: ET.Element) -> tuple[TestOutcome, str]:
    for tag, outcome in _JUNIT_OUTCOMES:
        element = case.find(tag)
        if element is not None:
            parts = [element.get("message") or "", (element.text or "").strip()]
            message = "\n".join(p for p in parts if p)
            return outcome, _cap(message)
    return "passed", ""


def _node_id(case: ET.Element) -> str:
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file")
    if file:
        # classname is the module's dotted path followed by any enclosing test classes.
        module = file.removesuffix(".py").replace("/", ".")
        classes = (
            classname[len(module) + 1 :].split(".") if classname.startswith(module + ".") else []
        )
        return "::".join([file, *[c for c in classes if c], name])
    return f"{classname}::{name}" if classname else name


def parse_ruff(text: str | bytes) -> list[Finding]:
    """`ruff check --output-format json`."""
    findings = []
    for item in _json_list(text, "ruff"):
        location = item.get("location") or {}
        # Syntax errors have no rule code in older ruff and "invalid-syntax" in newer ones.
        rule = str(item.get("code") or "invalid-syntax")
        findings.append(
            Finding(
                tool="ruff",
                rule=rule,
                severity="error" if rule == "invalid-syntax" else "warning",
                path=_relative(str(item.get("filename", ""))),
                line=_int(location.get("row")),
                message=_cap(str(item.get("message", ""))),
            )
        )
    return findings


def parse_bandit(text: str | bytes) -> list[Finding]:
    """`bandit -f json`: severities low, medium, high."""
    data = _json(text, "bandit")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ParseError("bandit report has no 'results' list")
    return [
        Finding(
            tool="bandit",
            rule=f"{item.get('test_id', '')} {item.get('test_name', '')}".strip(),
            severity=str(item.get("issue_severity", "")).lower(),
            path=_relative(str(item.get("filename", ""))),
            line=_int(item.get("line_number")),
            message=_cap(str(item.get("issue_text", ""))),
        )
        for item in data["results"]
        if isinstance(item, dict)
    ]


_SEMGREP_SEVERITY = {"ERROR": "high", "WARNING": "medium", "INFO": "low"}


def parse_semgrep(text: str | bytes) -> list[Finding]:
    """`semgrep scan --json`; its ERROR/WARNING/INFO become high/medium/low."""
    data = _json(text, "semgrep")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise ParseError("semgrep report has no 'results' list")
    findings = []
    for item in data["results"]:
        if not isinstance(item, dict):
            continue
        extra = item.get("extra") or {}
        severity = str(extra.get("severity", "")).upper()
        findings.append(
            Finding(
                tool="semgrep",
                rule=str(item.get("check_id", "")),
                severity=_SEMGREP_SEVERITY.get(severity, severity.lower()),
                path=_relative(str(item.get("path", ""))),
                line=_int((item.get("start") or {}).get("line")),
                message=_cap(str(extra.get("message", ""))),
            )
        )
    return findings


PARSERS: dict[str, Callable[[str | bytes], list[TestResult] | list[Finding]]] = {
    "junit": parse_junit,
    "ruff": parse_ruff,
    "bandit": parse_bandit,
    "semgrep": parse_semgrep,
}


def _check_size(what: str, text: str | bytes) -> None:
    if len(text) > MAX_REPORT_BYTES:
        raise ParseError(f"{what} report is larger than {MAX_REPORT_BYTES // 2**20} MiB")


def _json(text: str | bytes, tool: str) -> Any:
    _check_size(tool, text)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ParseError(f"{tool} did not write JSON: {exc}") from None


def _json_list(text: str | bytes, tool: str) -> list[dict[str, Any]]:
    data = _json(text, tool)
    if not isinstance(data, list):
        raise ParseError(f"{tool} report is not a JSON list")
    return [item for item in data if isinstance(item, dict)]


def _relative(path: str) -> str:
    for prefix in WORKSPACE_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _cap(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."
