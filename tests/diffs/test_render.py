"""Tests for marlin.diffs.render: safety, anchors, layout, placeholders, real predictions."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from marlin.diffs.parse import FileDiff, parse_patch
from marlin.diffs.render import (
    highlight_lines,
    pygments_css,
    render_context_lines,
    render_file,
    render_file_summary,
    render_patch,
)

CSS = Path(__file__).resolve().parents[2] / "marlin" / "static" / "marlin" / "diff.css"
PREDICTIONS = Path("/work/shared/realdata/swebench_lite/predictions")
VOID = {"col", "br", "img", "input", "hr", "meta", "link"}


class _Collector(HTMLParser):
    """Collects every element and checks that tags nest and close properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse_html(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def _one(patch: str) -> FileDiff:
    [f] = parse_patch(patch)
    return f


HOSTILE_PATH = "src/<img src=x onerror=alert(1)>.py"
HOSTILE = f"""diff --git a/{HOSTILE_PATH} b/{HOSTILE_PATH}
--- a/{HOSTILE_PATH}
+++ b/{HOSTILE_PATH}
@@ -1,3 +1,4 @@ class X:</td><script>alert('hdr')</script>
 a = 1
-b = "</td><script>alert(1)</script>"
+b = "</td><script>alert(2)</script>"
+c = '<a href="javascript:alert(3)" onclick="x()">'
 d = 4
"""


@pytest.mark.parametrize("mode", ["split", "unified"])
@pytest.mark.parametrize("language", ["python", None, "no-such-lexer"])
def test_it_escapes_code_paths_and_section_headers_from_agents(
    mode: str, language: str | None
) -> None:
    f = _one(HOSTILE)
    f = FileDiff(**{**{s: getattr(f, s) for s in f.__slots__}, "language": language})  # type: ignore[attr-defined]
    html = render_file(f, mode=mode)  # type: ignore[arg-type]
    parsed = _parse_html(html)
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags and "img" not in tags and "a" not in tags
    assert "<script" not in html.lower()
    for _, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), attrs
        assert all("javascript:" not in (v or "") for v in attrs.values())
    text = "".join(parsed.text)
    assert "</td><script>alert(1)</script>" in text
    assert "<script>alert('hdr')</script>" in text
    assert any(attrs.get("data-path") == HOSTILE_PATH for _, attrs in parsed.tags)


@pytest.mark.parametrize("line", ["x" * 5000 + "</td><script>alert(1)</script>", "a\rb<script>"])
def test_it_still_escapes_when_highlighting_falls_back(line: str) -> None:
    # A very long line skips the lexer; a lone \r makes Pygments split lines differently.
    [out] = highlight_lines([line], "python")
    assert "<script" not in out
    assert out.endswith("&lt;script&gt;") or out.endswith("&lt;/script&gt;")


def test_it_highlights_each_line_of_a_multiline_docstring() -> None:
    f = _one(
        '--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,5 @@\n def f():\n+    """First line,\n'
        '+    middle line with if and for,\n+    last."""\n     return 1\n'
    )
    html = render_file(f, mode="unified")
    rows = re.findall(r'<tr class="add">.*?</tr>', html)
    assert len(rows) == 3
    for row in rows:
        code = row.split('<td class="lc">', 1)[1]
        assert 'class="sd"' in code, row  # a string token, not keyword "if"/"for"
        assert 'class="k"' not in code


def test_it_gives_every_line_a_stable_anchor_in_both_modes() -> None:
    f = _one(HOSTILE)
    ids = {}
    for mode in ("split", "unified"):
        parsed = _parse_html(render_file(f, mode=mode, anchor_prefix="a", file_index=7))  # type: ignore[arg-type]
        cells = [attrs for tag, attrs in parsed.tags if tag == "td" and "data-line" in attrs]
        found = [str(a["id"]) for a in cells]
        assert len(found) == len(set(found)), "ids must be unique"
        for attrs in cells:
            letter = "L" if attrs["data-side"] == "old" else "R"
            assert attrs["id"] == f"a-7-{letter}{attrs['data-line']}"
        ids[mode] = set(found)
    assert (
        ids["split"]
        == ids["unified"]
        == {"a-7-L1", "a-7-L2", "a-7-L3", "a-7-R1", "a-7-R2", "a-7-R3", "a-7-R4"}
    )


def test_it_pairs_removals_with_additions_in_the_split_view() -> None:
    f = _one("--- a/t.py\n+++ b/t.py\n@@ -1,4 +1,5 @@\n x\n-a\n-b\n+A\n+B\n+C\n y\n")
    html = render_file(f, mode="split")
    rows = re.findall(r'<tr class="split">(.*?)</tr>', html)
    kinds = [re.findall(r'<td class="lc (\w+)"', r) for r in rows]
    assert kinds == [
        ["ctx", "ctx"],
        ["del", "add"],
        ["del", "add"],
        ["empty", "add"],
        ["ctx", "ctx"],
    ]
    assert 'data-line="2"' in rows[1] and ">a<" in rows[1].replace('<span class="n">', "")


def test_it_shows_one_row_per_line_in_the_unified_view() -> None:
    f = _one(HOSTILE)
    html = render_file(f, mode="unified")
    assert html.count('<tr class="add">') == f.added == 2
    assert html.count('<tr class="del">') == f.removed == 1
    assert html.count('<tr class="ctx">') == 2


def test_it_puts_hunk_positions_and_expand_buttons_on_hunk_rows() -> None:
    f = _one("--- a/t.py\n+++ b/t.py\n@@ -10,2 +12,3 @@\n x\n+y\n z\n@@ -30,1 +33,1 @@\n-p\n+q\n")
    parsed = _parse_html(render_file(f, mode="unified", file_index=3))
    hunks = [a for t, a in parsed.tags if t == "tr" and "hunk" in str(a.get("class"))]
    assert [(h["data-old-start"], h["data-new-start"]) for h in hunks] == [
        ("10", "12"),
        ("30", "33"),
        ("31", "34"),
    ]
    buttons = [a for t, a in parsed.tags if t == "button"]
    assert [
        (b["data-from"], b["data-to"], b["data-new-from"], b["data-file-index"]) for b in buttons
    ] == [
        ("1", "9", "1", "3"),
        ("12", "29", "15", "3"),
        ("31", "", "34", "3"),
    ]
    plain = render_file(f, mode="unified", context_expand=False)
    assert "diff-expand" not in plain and 'data-old-start="30"' in plain
    added = _one("--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+x\n")
    assert "diff-expand" not in render_file(added)


def test_it_renders_binary_generated_and_large_files_as_placeholders() -> None:
    binary, lock = parse_patch(
        "diff --git a/i.png b/i.png\nindex 1..2 100644\nBinary files a/i.png and b/i.png differ\n"
        "diff --git a/poetry.lock b/poetry.lock\n--- a/poetry.lock\n+++ b/poetry.lock\n"
        "@@ -1 +1 @@\n-a\n+b\n"
    )
    html = render_file(binary)
    assert "Binary file changed" in html and "diff-load" not in html and "<table" not in html
    html = render_file(lock)
    assert "Generated file" in html and 'data-reason="generated"' in html and "<table" not in html
    assert "<table" in render_file(lock, force=True)
    big_patch = "--- a/big.py\n+++ b/big.py\n@@ -0,0 +1,50 @@\n" + "".join(
        f"+x{i} = {i}\n" for i in range(50)
    )
    big = _one(big_patch)
    small = render_file(big, max_lines=20)
    assert 'data-reason="large"' in small and "51 lines" in small
    assert "<table" in render_file(big, max_lines=None)
    with pytest.raises(ValueError, match="reason must be one of"):
        render_file_summary(big, reason="nope")  # type: ignore[arg-type]


def test_it_renders_the_first_screen_and_defers_the_rest() -> None:
    patch = "".join(
        f"--- a/f{i}.py\n+++ b/f{i}.py\n@@ -1,10 +1,10 @@\n"
        + "".join(f"-a{j}\n+b{j}\n" for j in range(10))
        for i in range(10)
    )
    files = parse_patch(patch)
    html = render_patch(files, mode="unified", first_screen_lines=50)
    parsed = _parse_html(html)
    details = [a for t, a in parsed.tags if t == "details"]
    assert [d["id"] for d in details] == [f"d-{i}" for i in range(10)]
    # Each file is 21 rows: three fit before the budget of 50 is used up.
    assert html.count("<table") == 3
    assert html.count('class="diff-placeholder" data-reason="deferred"') == 7


def test_it_renders_base_file_lines_as_context_rows() -> None:
    base = ["import os\n", '"""doc\n', 'string"""\n', "x = 1\n"]
    rows = render_context_lines(
        base, 2, 10, language="python", anchor_prefix="b", file_index=2, new_start=5
    )
    parsed = _parse_html("<table>" + rows + "</table>")
    cells = [a for t, a in parsed.tags if t == "td" and "data-line" in a]
    assert [a["id"] for a in cells] == ["b-2-L2", "b-2-R5", "b-2-L3", "b-2-R6", "b-2-L4", "b-2-R7"]
    assert rows.count('class="sd"') == 2 or rows.count('class="s2"') == 2 or 'class="s' in rows
    split = render_context_lines(
        base, 1, 1, language=None, anchor_prefix="b", file_index=2, mode="split"
    )
    assert split.count('class="lc ctx"') == 2 and "import os" in split
    assert render_context_lines(base, 9, 12, language=None, anchor_prefix="b", file_index=2) == ""
    with pytest.raises(ValueError, match="start <= end"):
        render_context_lines(base, 3, 2, language=None, anchor_prefix="b", file_index=2)


@pytest.mark.parametrize("prefix", ['a" onmouseover="x', "1abc", "", "a b"])
def test_it_rejects_anchor_prefixes_that_are_not_plain_ids(prefix: str) -> None:
    f = _one(HOSTILE)
    with pytest.raises(ValueError, match="anchor_prefix"):
        render_file(f, anchor_prefix=prefix)


def test_it_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        render_file(_one(HOSTILE), mode="sideways")  # type: ignore[arg-type]


def test_it_notes_renames_and_mode_changes_without_lines() -> None:
    renamed, mode = parse_patch(
        "diff --git a/a.py b/b.py\nsimilarity index 100%\nrename from a.py\nrename to b.py\n"
        "diff --git a/run b/run\nold mode 100644\nnew mode 100755\n"
    )
    assert "File renamed without changes (100% similar)." in render_file(renamed)
    assert "a.py</span> &rarr; b.py" in render_file(renamed)
    assert "File mode changed from 100644 to 100755." in render_file(mode)


def test_the_stylesheet_carries_the_scoped_pygments_rules() -> None:
    css = CSS.read_text()
    for rule in pygments_css().splitlines():
        assert rule.startswith(".hl ")
        assert rule in css
    assert not re.search(r"^\s*(pre|td\.linenos|span\.linenos)\b", css, re.MULTILINE)


@pytest.mark.slow
def test_it_renders_every_real_prediction_as_well_formed_html() -> None:
    if not PREDICTIONS.is_dir():
        pytest.skip(f"real predictions not present at {PREDICTIONS} (see realdata/README.md)")
    rows = json.loads((PREDICTIONS / "autocoderover-run2.json").read_text())
    for name in ("coder-2024-06-04.jsonl", "swe-agent-cost2-run2.jsonl"):
        rows += [json.loads(x) for x in (PREDICTIONS / name).read_text().splitlines() if x.strip()]
    rendered = 0
    for row in rows:
        for f in parse_patch(row.get("model_patch") or ""):
            html = render_file(f, mode="split" if rendered % 2 else "unified")
            if f.is_binary or f.is_generated or 'class="diff-placeholder"' in html:
                assert "<table" not in html
                continue
            # html.parser is slow on big tables: check nesting on every tenth small file.
            if f.line_count <= 150 and rendered % 10 == 0:
                _parse_html(html)
            numbered = html.count(" data-line=")
            expected = sum(
                (ln.old_no is not None) + (ln.new_no is not None) for h in f.hunks for ln in h.lines
            )
            assert numbered == expected, f.path
            rendered += 1
    assert rendered > 800
