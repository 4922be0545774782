"""Parsers on real tool output, captured from pytest 8 (junit_family=xunit1), ruff 0.17 and
bandit 1.9 run on a small module with known problems (JSON fields unrelated to parsing trimmed)."""

from __future__ import annotations

import json

import pytest

from marlin.grading.parsers import (
    MAX_REPORT_BYTES,
    PARSERS,
    ParseError,
    parse_bandit,
    parse_junit,
    parse_ruff,
    parse_semgrep,
)

JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite '
    'name="pytest" errors="1" failures="2" skipped="1" tests="6" time="0.224" '
    'timestamp="2026-11-23T10:52:07.971787+00:00" hostname="vm"><testcase classname="tests.test_a" '
    'name="test_ok" file="tests/test_a.py" line="3" time="0.004" /><testcase '
    'classname="tests.test_a" name="test_bad" file="tests/test_a.py" line="7" time="0.008">'
    '<failure message="AssertionError: math is broken&#10;assert (1 + 1) == 3">def test_bad():\n'
    '&gt;       assert 1 + 1 == 3, "math is broken"\n'
    "E       AssertionError: math is broken\n"
    "E       assert (1 + 1) == 3\n"
    "\n"
    'tests/test_a.py:9: AssertionError</failure></testcase><testcase classname="tests.test_a" '
    'name="test_skipped" file="tests/test_a.py" line="11" time="0.000"><skipped type="pytest.skip" '
    'message="not today">/tmp/cap/tests/test_a.py:12: not today</skipped></testcase><testcase '
    'classname="tests.test_a.TestGroup" name="test_param[1]" file="tests/test_a.py" line="17" '
    'time="0.006" /><testcase classname="tests.test_a.TestGroup" name="test_param[2]" '
    'file="tests/test_a.py" line="17" time="0.003"><failure message="assert 2 == 1">self = '
    "&lt;test_a.TestGroup object at 0x7fc5bd36b9d0&gt;, n = 2\n"
    "\n"
    '    @pytest.mark.parametrize("n", [1, 2])\n'
    "    def test_param(self, n):\n"
    "&gt;       assert n == 1\n"
    "E       assert 2 == 1\n"
    "\n"
    'tests/test_a.py:20: AssertionError</failure></testcase><testcase classname="tests.test_a" '
    'name="test_error" file="tests/test_a.py" line="27" time="0.002"><error message="failed on '
    'setup with &quot;RuntimeError: fixture exploded&quot;">@pytest.fixture\n'
    "    def broken():\n"
    '&gt;       raise RuntimeError("fixture exploded")\n'
    "E       RuntimeError: fixture exploded\n"
    "\n"
    "tests/test_a.py:25: RuntimeError</error></testcase></testsuite></testsuites>"
)

RUFF = json.dumps(
    [
        {
            "cell": None,
            "code": "F401",
            "end_location": {"column": 10, "row": 1},
            "filename": "/workspace/pkg/shell.py",
            "location": {"column": 8, "row": 1},
            "message": "`os` imported but unused",
            "name": "unused-import",
            "noqa_row": 1,
            "severity": "error",
            "url": "https://docs.astral.sh/ruff/rules/unused-import",
        },
        {
            "cell": None,
            "code": "F841",
            "end_location": {"column": 13, "row": 11},
            "filename": "/workspace/pkg/shell.py",
            "location": {"column": 5, "row": 11},
            "message": "Local variable `password` is assigned to but never used",
            "name": "unused-variable",
            "noqa_row": 11,
            "severity": "error",
            "url": "https://docs.astral.sh/ruff/rules/unused-variable",
        },
        {
            "cell": None,
            "code": "invalid-syntax",
            "end_location": {"column": 1, "row": 2},
            "filename": "/workspace/pkg/broken.py",
            "fix": None,
            "location": {"column": 1, "row": 2},
            "message": "unexpected EOF while parsing",
            "name": "invalid-syntax",
            "noqa_row": None,
            "severity": "error",
            "url": None,
        },
    ]
)

BANDIT = json.dumps(
    {
        "errors": [],
        "results": [
            {
                "filename": "pkg/shell.py",
                "issue_confidence": "HIGH",
                "issue_severity": "LOW",
                "issue_text": "Consider possible security implications associated with the "
                "subprocess module.",
                "line_number": 2,
                "test_id": "B404",
                "test_name": "blacklist",
            },
            {
                "filename": "pkg/shell.py",
                "issue_confidence": "HIGH",
                "issue_severity": "HIGH",
                "issue_text": "subprocess call with shell=True identified, security issue.",
                "line_number": 6,
                "test_id": "B602",
                "test_name": "subprocess_popen_with_shell_equals_true",
            },
            {
                "filename": "pkg/shell.py",
                "issue_confidence": "HIGH",
                "issue_severity": "MEDIUM",
                "issue_text": "Use of possibly insecure function - consider using safer "
                "ast.literal_eval.",
                "line_number": 12,
                "test_id": "B307",
                "test_name": "blacklist",
            },
        ],
    }
)

# semgrep is not installed here; this follows the shape of its documented --json output.
SEMGREP = json.dumps(
    {
        "errors": [],
        "results": [
            {
                "check_id": "python.lang.security.audit.eval-detected",
                "path": "pkg/shell.py",
                "start": {"line": 12, "col": 12},
                "end": {"line": 12, "col": 19},
                "extra": {"message": "Detected the use of eval().", "severity": "WARNING"},
            },
        ],
    }
)


def test_junit_gives_one_result_per_test_named_by_node_id() -> None:
    results = {r.name: r for r in parse_junit(JUNIT)}
    assert {name: r.outcome for name, r in results.items()} == {
        "tests/test_a.py::test_ok": "passed",
        "tests/test_a.py::test_bad": "failed",
        "tests/test_a.py::test_skipped": "skipped",
        "tests/test_a.py::TestGroup::test_param[1]": "passed",
        "tests/test_a.py::TestGroup::test_param[2]": "failed",
        "tests/test_a.py::test_error": "error",
    }
    assert "math is broken" in results["tests/test_a.py::test_bad"].message
    assert "fixture exploded" in results["tests/test_a.py::test_error"].message
    assert results["tests/test_a.py::test_skipped"].message.startswith("not today")


def test_junit_without_file_attributes_falls_back_to_classname() -> None:
    xml = '<testsuite><testcase classname="tests.test_a" name="test_ok"/></testsuite>'
    assert [r.name for r in parse_junit(xml)] == ["tests.test_a::test_ok"]


def test_junit_that_is_malformed_or_huge_is_an_error() -> None:
    with pytest.raises(ParseError, match="JUnit XML is malformed"):
        parse_junit("<testsuite><testcase")
    with pytest.raises(ParseError, match="larger than"):
        parse_junit("<a>" + " " * MAX_REPORT_BYTES + "</a>")


def test_junit_refuses_entity_expansion_bombs() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
        + ']><testsuite><testcase name="&i;"/></testsuite>'
    )
    with pytest.raises(ParseError, match="amplification"):
        parse_junit(bomb)


def test_ruff_findings_carry_rule_path_and_line() -> None:
    findings = parse_ruff(RUFF)
    assert [(f.rule, f.path, f.line) for f in findings] == [
        ("F401", "pkg/shell.py", 1),
        ("F841", "pkg/shell.py", 11),
        ("invalid-syntax", "pkg/broken.py", 2),
    ]
    assert findings[0].message == "`os` imported but unused"
    assert findings[2].severity == "error"


def test_bandit_findings_carry_severity() -> None:
    findings = parse_bandit(BANDIT)
    assert [(f.rule, f.severity, f.line) for f in findings] == [
        ("B404 blacklist", "low", 2),
        ("B602 subprocess_popen_with_shell_equals_true", "high", 6),
        ("B307 blacklist", "medium", 12),
    ]


def test_semgrep_severities_map_onto_bandit_levels() -> None:
    [finding] = parse_semgrep(SEMGREP)
    assert (finding.tool, finding.severity, finding.line) == ("semgrep", "medium", 12)


@pytest.mark.parametrize("name", ["ruff", "bandit", "semgrep"])
def test_tool_reports_that_are_not_json_are_errors(name: str) -> None:
    with pytest.raises(ParseError, match=f"{name} did not write JSON"):
        PARSERS[name]("Traceback (most recent call last): ...")


def test_reports_of_the_wrong_shape_are_errors() -> None:
    with pytest.raises(ParseError, match="not a JSON list"):
        parse_ruff("{}")
    with pytest.raises(ParseError, match="no 'results' list"):
        parse_bandit("[]")
