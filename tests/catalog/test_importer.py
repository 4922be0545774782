"""Parsing lists: formats, bad lines with their numbers, duplicates. No database, no git."""

from __future__ import annotations

import json

import pytest

from marlin.catalog.importer import parse_repository_list
from tests.catalog.conftest import generate_list


def test_it_reads_a_plain_list_with_comments_and_blank_lines() -> None:
    text = "# my list\n\nhttps://github.com/a/one\n  git@github.com:a/two.git  \n# end\n"
    report = parse_repository_list(text)
    assert report.format == "plain"
    assert [(r.line_no, r.name, r.normalized) for r in report.good] == [
        (3, "a/one", "github.com/a/one"),
        (4, "a/two", "github.com/a/two"),
    ]
    assert report.bad == [] and report.duplicates == []


def test_it_reports_each_bad_line_with_its_number_and_keeps_the_good_ones() -> None:
    lines = [
        "https://github.com/a/good1",
        "--upload-pack=touch /tmp/x",
        "ext::sh -c touch% /tmp/pwned",
        "https://github.com/a/good2",
        "file:///etc",
        "http://github.com/a/plain",
    ]
    report = parse_repository_list(lines)
    assert [r.line_no for r in report.good] == [1, 4]
    assert [(b.line_no, b.raw) for b in report.bad] == [
        (2, "--upload-pack=touch /tmp/x"),
        (3, "ext::sh -c touch% /tmp/pwned"),
        (5, "file:///etc"),
        (6, "http://github.com/a/plain"),
    ]
    assert "option" in report.bad[0].reason and "ext::" in report.bad[1].reason
    assert "local paths" in report.bad[2].reason and "https" in report.bad[3].reason


def test_it_folds_duplicates_onto_the_first_line_that_named_the_repository() -> None:
    text = "\n".join(
        [
            "https://github.com/Owner/Name",
            "git@github.com:owner/name.git",
            "https://github.com/other/repo",
            "ssh://git@github.com/owner/name/",
        ]
    )
    report = parse_repository_list(text)
    assert [r.line_no for r in report.good] == [1, 3]
    assert report.duplicates == [(2, 1), (4, 1)]


def test_it_reads_csv_with_a_header_and_validates_each_field() -> None:
    text = (
        "url,language,stars,license,tags\n"
        "https://github.com/a/one,Python,1200,MIT,web;cli\n"
        "https://github.com/a/two,Go,,Apache-2.0,infra|k8s|infra\n"
        "https://github.com/a/three,Rust,lots,MIT,\n"
        '"https://github.com/a/four",C,"1,234",,\n'
        ",Go,1,,\n"
        "https://github.com/a/five,C,1,MIT,x,extra\n"
    )
    report = parse_repository_list(text, filename_hint="repos.csv")
    assert report.format == "csv"
    one, two, four = report.good
    assert (one.language, one.stars, one.license, one.tags) == (
        "Python",
        1200,
        "MIT",
        ("web", "cli"),
    )
    assert (two.stars, two.tags) == (None, ("infra", "k8s"))
    assert four.stars == 1234
    assert [(b.line_no, b.reason) for b in report.bad] == [
        (4, "stars must be a whole number, not 'lots'"),
        (6, "no url given"),
        (7, "6 columns but the header has 5"),
    ]


def test_it_reads_json_lines() -> None:
    rows = [
        json.dumps(
            {"url": "https://github.com/a/one", "language": "Go", "stars": 5, "tags": ["x", "y"]}
        ),
        "{not json",
        json.dumps(["https://github.com/a/list"]),
        json.dumps({"url": "fd::17"}),
        json.dumps({"url": "https://github.com/a/two", "stars": -3}),
        json.dumps({"url": "https://github.com/a/three", "tags": "p;q"}),
        json.dumps({"name": "no url"}),
    ]
    report = parse_repository_list("\n".join(rows))
    assert report.format == "jsonl"
    assert [(r.line_no, r.tags) for r in report.good] == [(1, ("x", "y")), (6, ("p", "q"))]
    reasons = {b.line_no: b.reason for b in report.bad}
    assert reasons[2].startswith("not valid JSON")
    assert reasons[3] == 'expected a JSON object with a "url" field'
    assert "fd::" in reasons[4]
    assert "between 0 and" in reasons[5]
    assert reasons[7] == "no url given"


def test_it_truncates_very_long_bad_lines_in_the_report() -> None:
    report = parse_repository_list(["-" + "x" * 5000, "https://github.com/" + "y" * 1000])
    assert len(report.bad) == 2
    assert all(len(b.raw) <= 161 for b in report.bad)
    assert "longer than 4000" in report.bad[0].reason


def _as_format(text: str, fmt: str) -> tuple[str, int]:
    """The generated plain list rewritten as CSV or JSON lines; returns the text and how many
    lines the rewriting put before the first URL (the CSV header)."""
    urls = text.splitlines()
    if fmt == "plain":
        return text, 0
    if fmt == "csv":
        quoted = ['"' + url.replace('"', '""') + '"' for url in urls]
        return "url,language\n" + "\n".join(f"{q},Go" for q in quoted) + "\n", 1
    return "\n".join(json.dumps({"url": url, "stars": 1}) for url in urls) + "\n", 0


@pytest.mark.parametrize("fmt", ["plain", "csv", "jsonl"])
def test_it_parses_a_generated_ten_thousand_line_list_in_each_format(fmt: str) -> None:
    text, expected = generate_list(10_000)
    converted, offset = _as_format(text, fmt)
    report = parse_repository_list(converted, filename_hint=f"list.{fmt}")
    assert report.format == fmt
    assert len(report.good) == expected["good"]
    assert [b.line_no for b in report.bad] == [n + offset for n in expected["bad"]]
    assert report.duplicates == [(a + offset, b + offset) for a, b in expected["duplicates"]]


def test_control_characters_are_refused_with_the_line_also_when_json_escapes_them() -> None:
    lines = [
        '{"url": "https://github.com/a/one"}',
        '{"url": "https://github.com/a/two", "language": "Py\\u0000"}',
        '{"url": "https://github.com/a/three", "note": "\\u001b[2J"}',
        '{"url": "https://github.com/a/four", "note": "two\\nlines\\tare fine"}',
        '{"url": "https://github.com/a/five\u0007"}',
    ]
    report = parse_repository_list(lines, filename_hint="list.jsonl")
    assert [r.line_no for r in report.good] == [1, 4]
    assert [(b.line_no, b.reason) for b in report.bad] == [
        (2, "the line contains a NUL character (U+0000); remove it"),
        (3, "the line contains the control character U+001B; remove it"),
        (5, "the line contains the control character U+0007; remove it"),
    ]
    assert report.bad[2].raw == '{"url": "https://github.com/a/five\\x07"}'
