"""The comparison page reads files through the candidate's stored index: the first screen's
sections and, for a lazy load, one file's, never whole patches; and it shows exactly what a
whole parse shows."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marlin.agents.models import Candidate
from marlin.diffs.index import index_patch, stub_files
from marlin.diffs.parse import parse_patch
from marlin.review import queue
from marlin.review.compare import SideFiles, _turn_diff_index, _write_atomically
from tests.review.factories import make_comparison, make_project

WHOLE = re.compile(r'(?<![A-Z(])"agents_candidate"\."(?:scrubbed_)?patch"')
READ = re.compile(r'(?:SUBSTR|SUBSTRING|LENGTH)\("agents_candidate"\."(?:scrubbed_)?patch"')


def big_patch(files: int, lines: int, seed: int) -> str:
    parts = []
    for n in range(files):
        body = "".join(f"+value_{n}_{i} = {i * seed}\n" for i in range(lines))
        parts.append(
            f"diff --git a/pkg/mod_{n:03}.py b/pkg/mod_{n:03}.py\nnew file mode 100644\n"
            f"--- /dev/null\n+++ b/pkg/mod_{n:03}.py\n@@ -0,0 +1,{lines} @@\n{body}"
        )
    return "".join(parts)


@pytest.fixture
def big(alice, client_for):
    comparison = make_comparison(make_project(overlap=1))
    for seed, run in enumerate((comparison.run_a, comparison.run_b), 1):
        candidate = Candidate.objects.get(turn__run=run)
        candidate.patch = big_patch(60, 100, seed)
        candidate.save()  # as the worker and the importers store it: indexed
    queue.next_comparison(alice)
    return comparison, client_for(alice)


def diff_blocks(html: str) -> list[str]:
    return re.findall(r'<details class="diff-file.*?</details>', html, re.S)


def whole_patch_reads(queries: list[dict[str, str]]) -> list[str]:
    return [q["sql"] for q in queries if WHOLE.search(READ.sub("", q["sql"]))]


def test_a_stored_candidate_carries_its_file_index_with_sections(big) -> None:
    comparison, _ = big
    candidate = Candidate.objects.get(turn__run=comparison.run_a)
    index = candidate.diff_index
    assert index["sections"] and len(index["files"]) == 60
    assert index == index_patch(candidate.patch)


def test_the_page_reads_only_first_screen_sections_and_shows_what_a_whole_parse_shows(
    big,
) -> None:
    comparison, client = big
    url = f"/compare/{comparison.public_id}/"
    with CaptureQueriesContext(connection) as captured:
        indexed = client.get(url).content.decode()
    assert whole_patch_reads(captured.captured_queries) == []
    sections = sum(q["sql"].count("SUBSTR") for q in captured.captured_queries)
    assert 0 < sections <= 20  # a few first-screen files per side, not 60
    # The same candidates without usable sections: parsed whole, as before the index.
    for candidate in Candidate.objects.filter(turn__run__task=comparison.task):
        whole = dict(candidate.diff_index, sections=False)
        Candidate.objects.filter(pk=candidate.pk).update(diff_index=whole)
    parsed = client.get(url).content.decode()
    assert diff_blocks(indexed) == diff_blocks(parsed)
    assert len(diff_blocks(indexed)) == 60 and indexed.count('data-reason="deferred"') >= 50


@pytest.mark.parametrize("path", ["pair/59/", "file/B/59/", "file/A/0/?mode=unified"])
def test_a_lazy_file_load_reads_one_section_per_side(big, path: str) -> None:
    comparison, client = big
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/compare/{comparison.public_id}/{path}")
    assert response.status_code == 200 and response.content.decode().count("<tr") == 101
    assert whole_patch_reads(captured.captured_queries) == []
    sides = 2 if path.startswith("pair") else 1
    assert sum(q["sql"].count("SUBSTR") for q in captured.captured_queries) == sides


def test_a_candidate_stored_without_an_index_is_indexed_on_first_view(alice, client_for) -> None:
    comparison = make_comparison(make_project(overlap=1))
    Candidate.objects.filter(turn__run=comparison.run_a).update(
        patch=big_patch(3, 5, 1), diff_index=None
    )
    queue.next_comparison(alice)
    html = client_for(alice).get(f"/compare/{comparison.public_id}/").content.decode()
    assert "pkg/mod_002.py" in html
    stored = Candidate.objects.get(turn__run=comparison.run_a)
    assert stored.diff_index == index_patch(stored.patch)


def test_a_patch_replaced_behind_the_models_back_is_reindexed_not_misread(
    alice, client_for
) -> None:
    comparison = make_comparison(make_project(overlap=1))
    queue.next_comparison(alice)
    client = client_for(alice)
    client.get(f"/compare/{comparison.public_id}/")
    # An UPDATE that leaves the old index in place: its length no longer matches the text.
    Candidate.objects.filter(turn__run=comparison.run_b).update(patch=big_patch(2, 4, 7))
    html = client.get(f"/compare/{comparison.public_id}/file/B/1/").content.decode()
    assert "value_1_3</span>" in html and '<span class="mi">21</span>' in html
    stored = Candidate.objects.get(turn__run=comparison.run_b)
    assert stored.diff_index == index_patch(stored.patch)


def test_scrubbed_candidates_are_read_from_the_scrubbed_text(big) -> None:
    comparison, client = big
    candidate = Candidate.objects.get(turn__run=comparison.run_a)
    candidate.scrubbed_patch = candidate.patch.replace("value_0_", "scrubbed_0_")
    candidate.fingerprints = [{"kind": "signature", "match": "x", "line": 1}]
    candidate.save()
    html = client.get(f"/compare/{comparison.public_id}/file/A/0/").content.decode()
    assert "scrubbed_0_" in html and "value_0_" not in html


def test_turn_diffs_keep_their_index_beside_the_cached_patch_and_read_by_byte_offset(
    tmp_path,
) -> None:

    # Non-ASCII text and a CR inside a line: byte and character offsets differ, and the cache
    # file must hold the text exactly as git wrote it.
    text = big_patch(3, 4, 1).replace("value_1_", "vàlue_1_") + (
        "diff --git a/notes.txt b/notes.txt\n--- a/notes.txt\n+++ b/notes.txt\n"
        "@@ -1 +1 @@\n-old\r\n+ünïcode\n"
    )
    cache = tmp_path / "turn-diffs" / "key.patch"
    cache.parent.mkdir()
    _write_atomically(cache, text)
    index = _turn_diff_index(cache, text)
    assert (tmp_path / "turn-diffs" / "key.index.json").is_file() and index["sections"]
    source = SideFiles(files=stub_files(index), entries=list(index["files"]), cache_file=cache)
    assert source.all() == parse_patch(text)
