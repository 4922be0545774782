"""The A | B view's pairing and alignment (marlin.diffs.pair) and its HTML (render_ab)."""

from __future__ import annotations

from html.parser import HTMLParser

from marlin.diffs.pair import pair_files, pair_tree, regions
from marlin.diffs.parse import parse_patch
from marlin.diffs.render_ab import render_pair, render_pairs

# Base file: lines 1..12 "line N".
A_PATCH = """diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -2,3 +2,4 @@
 line 2
-line 3
+line three
+line three and a half
 line 4
diff --git a/only_a.py b/only_a.py
new file mode 100644
--- /dev/null
+++ b/only_a.py
@@ -0,0 +1,2 @@
+print("A")
+print("<script>")
"""
B_PATCH = """diff --git a/app.py b/app.py
--- a/app.py
+++ b/app.py
@@ -3,3 +3,3 @@
 line 3
-line 4
+line FOUR
 line 5
@@ -10,2 +10,3 @@
 line 10
+line ten and a bit
 line 11
diff --git a/old_name.py b/new_name.py
similarity index 90%
rename from old_name.py
rename to new_name.py
--- a/old_name.py
+++ b/new_name.py
@@ -1,1 +1,1 @@
-x = 1
+x = 2
"""


def _text(slot):
    if slot is None:
        return None
    marker = {"context": " ", "add": "+", "remove": "-"}[slot.line.kind]
    return ("~" if slot.filler else marker) + slot.line.text


def test_it_pairs_files_by_base_path_and_marks_who_touched_them() -> None:
    pairs = pair_files(parse_patch(A_PATCH), parse_patch(B_PATCH))
    assert [(p.path, p.touched) for p in pairs] == [
        ("app.py", "both"),
        ("new_name.py", "B"),
        ("only_a.py", "A"),
    ]
    assert [p.index for p in pairs] == [0, 1, 2]
    tree = pair_tree(pairs)
    assert {node.name: node.touched for node in tree} == {
        "app.py": "both",
        "new_name.py": "B",
        "only_a.py": "A",
    }


def test_a_rename_on_one_side_pairs_with_an_edit_of_the_old_path_on_the_other() -> None:
    edit = "--- a/old_name.py\n+++ b/old_name.py\n@@ -1,1 +1,1 @@\n-x = 1\n+x = 3\n"
    pairs = pair_files(parse_patch(edit), parse_patch(B_PATCH))
    renamed = next(p for p in pairs if p.touched == "both")
    assert renamed.path == "new_name.py" and renamed.a.path == "old_name.py"


def test_overlapping_hunks_line_up_by_base_line_and_untouched_lines_show_as_context() -> None:
    pairs = pair_files(parse_patch(A_PATCH), parse_patch(B_PATCH))
    first, second = regions(pairs[0])
    assert (first.old_start, first.old_end) == (2, 5)
    assert [(_text(a), _text(b)) for a, b in first.rows] == [
        (" line 2", "~line 2"),  # only A's hunk reaches line 2: B's is the base line
        ("-line 3", " line 3"),
        ("+line three", None),
        ("+line three and a half", None),
        (" line 4", "-line 4"),
        (None, "+line FOUR"),
        ("~line 5", " line 5"),  # A left line 5 alone: shown, numbered as in A's file
    ]
    filler = first.rows[-1][0]
    assert filler.filler and filler.line.new_no == 6  # A inserted one line above it
    # B's second hunk: A left those lines as they were.
    assert second.a_hunks == [] and len(second.b_hunks) == 1
    assert [(_text(a), _text(b)) for a, b in second.rows] == [
        ("~line 10", " line 10"),
        (None, "+line ten and a bit"),
        ("~line 11", " line 11"),
    ]
    assert second.rows[0][0].line.new_no == 11


def test_a_file_only_one_side_touched_leaves_the_other_column_empty() -> None:
    pairs = pair_files(parse_patch(A_PATCH), parse_patch(B_PATCH))
    (region,) = regions(pairs[2])
    assert all(b is None for _, b in region.rows)
    html = render_pair(pairs[2])
    assert "B did not touch this file." in html and "only A" in html
    assert "&lt;script&gt;" in html and "<script>" not in html  # agent text is escaped


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "td" and found.get("id"):
            self.ids.append(found["id"])


def test_line_cells_carry_each_sides_own_anchor_and_fillers_carry_none() -> None:
    a_files, b_files = parse_patch(A_PATCH), parse_patch(B_PATCH)
    pairs = pair_files(a_files, b_files)
    parser = _Cells()
    parser.feed(render_pair(pairs[0]))
    # A's app.py is its file 0, B's too; removed lines are anchored on the old side (L).
    assert "xa-0-L3" in parser.ids and "xa-0-R3" in parser.ids and "xb-0-L4" in parser.ids
    assert "xb-0-R11" in parser.ids  # B's insertion after base line 10
    assert "xa-0-R11" not in parser.ids  # A's unchanged line 10 (its 11th) is a filler
    assert len(parser.ids) == len(set(parser.ids))


def test_the_first_screen_renders_pairs_in_full_and_defers_the_rest() -> None:
    pairs = pair_files(parse_patch(A_PATCH), parse_patch(B_PATCH))
    html = render_pairs(pairs, first_screen_lines=5)
    assert html.count('<div class="diff-placeholder" data-reason="deferred">') == 2
    assert html.count("diff-ab") == 1
