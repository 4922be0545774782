"""The comparison page and the pieces it loads: diffs, lazy files, context, trajectory, checks."""

from __future__ import annotations

import pytest

from marlin.agents.models import Candidate
from marlin.review import queue
from marlin.review.compare import comparison_context, side_tree
from marlin.review.models import Judgment
from tests.review.workspace_factories import make_comparison

STEPS = {
    "Zephyr": [
        {
            "text": "I will read money.py first.",
            "tool_calls": [
                {"id": "call_zz", "name": "view_file", "arguments": {"path": "ledgerlite/money.py"}}
            ],
            "tool_outputs": ["def parse_amount(text):"],
        }
    ]
}


@pytest.fixture
def comparison(erin, dave):
    return make_comparison(erin, dave, overlap=1, steps=STEPS)


@pytest.fixture
def alice_client(alice, client_for, comparison):
    assert queue.next_comparison(alice) == comparison
    return client_for(alice)


def _url(comparison, rest: str = "") -> str:
    return f"/compare/{comparison.public_id}/{rest}"


def _side_of(comparison, name: str) -> str:
    return "A" if comparison.run_a.agent.name == name else "B"


def test_the_page_shows_the_prompt_both_sides_their_files_and_a_judgment_form(
    alice, alice_client, comparison
):
    response = alice_client.get(_url(comparison))
    assert response.status_code == 200
    html = response.content.decode()
    assert "accounting notation" in html
    assert 'id="side-a"' in html and 'id="side-b"' in html
    # The A | B tree: both sides change money.py, the good side adds a test file too.
    assert html.count('class="tree-link') == 2
    good = _side_of(comparison, "Zephyr")
    panel = alice_client.get(_url(comparison, f"diff/{good}/?panel=1")).content.decode()
    assert f'aria-label="Files on side {good}"' in panel and panel.count('class="tree-link') == 2
    assert f'class="side-diff" data-side="{good}"' in panel and "diff-file" in panel
    assert 'name="rating-correctness"' in html and 'name="overall"' in html
    assert "Does the change do what the task asks" in html  # guidance at hand
    assert not Judgment.objects.filter(comparison=comparison, annotator=alice).exists()


def test_a_file_loads_on_its_own_and_a_bad_index_says_what_exists(alice_client, comparison):
    response = alice_client.get(_url(comparison, "file/A/0/?mode=unified"))
    assert response.status_code == 200
    assert response.content.decode().startswith('<details class="diff-file" id="a-0"')
    assert "diff-unified" in response.content.decode()
    missing = alice_client.get(_url(comparison, "file/A/99/"))
    assert missing.status_code == 400
    assert "no file 99" in missing.content.decode()
    bad_side = alice_client.get(_url(comparison, "file/C/0/"))
    assert bad_side.status_code == 400 and "Side must be A or B" in bad_side.content.decode()


def test_context_lines_come_from_the_base_commit_in_the_mirror(alice_client, comparison):
    side = _side_of(comparison, "Zephyr")
    assert comparison_context(comparison, comparison.task.created_by)["sides"][
        0 if side == "A" else 1
    ].ready
    tree = side_tree(comparison, side, 1, "cumulative")
    index = next(node.file_index for node in _walk(tree) if node.path == "ledgerlite/money.py")
    response = alice_client.get(_url(comparison, f"context/{side}/{index}/?from=1&to=3&new_from=1"))
    assert response.status_code == 200
    rows = response.content.decode()
    assert rows.count("<tr") == 3 and "expanded" in rows
    assert f'id="{side.lower()}-{index}-L1"' in rows


def test_context_is_refused_for_an_added_file(alice_client, comparison):
    side = _side_of(comparison, "Zephyr")
    tree = side_tree(comparison, side, 1, "cumulative")
    added = next(node.file_index for node in _walk(tree) if node.status == "added")
    response = alice_client.get(_url(comparison, f"context/{side}/{added}/?from=1&to=3"))
    assert response.status_code == 400
    assert "no base version" in response.content.decode()


def test_the_layout_of_one_side_is_remembered_in_a_cookie(alice_client, comparison):
    alice_client.cookies["marlin_diff_mode"] = "unified"
    html = alice_client.get(_url(comparison)).content.decode()
    assert 'data-mode="unified"' in html
    assert "diff-unified" in alice_client.get(_url(comparison, "diff/B/")).content.decode()
    side = alice_client.get(_url(comparison, "diff/B/?mode=split")).content.decode()
    assert "diff-split" in side


def test_the_page_opens_on_a_next_to_b_with_files_marked_by_who_touched_them(
    alice_client, comparison
):
    html = alice_client.get(_url(comparison)).content.decode()
    ab = html.split('id="side-ab"', 1)[1].split('id="side-a"', 1)[0]
    assert 'aria-selected="true"' in html.split('id="tab-ab"', 1)[1][:200]
    # Both candidates change money.py; only the good one (Zephyr) adds a test file.
    good = _side_of(comparison, "Zephyr")
    assert 'data-path="ledgerlite/money.py" data-touched="both"' in ab
    assert f'data-touched="{good}"' in ab and f"only {good}" in ab
    assert "changed by both" in ab and 'class="ab-mark ab-mark-both"' in ab
    assert 'table class="diff hl diff-ab"' in ab
    # The sides' own diffs wait for their tab; the page carries one view.
    assert 'data-lazy="1"' in html and "diff-split" not in html
    for name in ("Zephyr", "Quokka"):
        assert name not in html
    pair = alice_client.get(_url(comparison, "pair/0/")).content.decode()
    assert 'id="ab-0"' in pair and "Zephyr" not in pair and "Quokka" not in pair
    missing = alice_client.get(_url(comparison, "pair/9/"))
    assert missing.status_code == 400
    assert "A and B touched 2 files at this turn; no file 9." in missing.content.decode()


def test_the_trajectory_shows_steps_collapsed_without_tool_call_ids(alice_client, comparison):
    side = _side_of(comparison, "Zephyr")
    html = alice_client.get(_url(comparison, f"trajectory/{side}/?turn=1")).content.decode()
    assert "I will read money.py first." in html
    assert "view_file" in html and "def parse_amount(text):" in html
    assert "<details>" in html and "<details open" not in html
    assert "call_zz" not in html


def test_checks_are_hidden_until_the_first_draft_when_the_project_says(
    erin, dave, alice, client_for
):
    comparison = make_comparison(erin, dave, overlap=1, hide_checks_until_drafted=True)
    queue.next_comparison(alice)
    client = client_for(alice)
    html = client.get(_url(comparison)).content.decode()
    assert "Hidden until you draft your judgment" in html
    assert "unit tests" not in html.split('class="card side-checks"', 1)[1]
    saved = client.post(
        _url(comparison, "draft/"), {"draft_revision": "0", "rating-correctness": "-1"}
    )
    assert saved.status_code == 200 and saved.json()["checks_shown"] is True
    html = client.get(_url(comparison)).content.decode()
    assert "Hidden until you draft your judgment" not in html
    assert "unit tests" in html


def test_flagged_candidates_show_the_scrubbed_patch_and_a_badge(alice_client, comparison):
    side = _side_of(comparison, "Zephyr")
    run = comparison.run_a if side == "A" else comparison.run_b
    candidate = Candidate.objects.get(turn__run=run, turn__number=1)
    candidate.scrubbed_patch = candidate.patch.replace(
        "def parse_amount", "def parse_amount_scrubbed"
    )
    candidate.fingerprints = [{"kind": "signature", "match": "x", "line": 1}]
    candidate.save()
    html = alice_client.get(_url(comparison)).content.decode()
    assert "identity hints scrubbed" in html
    assert "parse_amount_scrubbed" in html


def test_a_reviewer_reads_the_same_body_without_a_form(bob, client_for, comparison):
    html = client_for(bob).get(_url(comparison)).content.decode()
    assert 'id="side-a"' in html and "accounting notation" in html
    assert 'id="judgment-form"' not in html


def test_an_annotator_without_a_claim_is_told_to_use_the_queue(
    make_user, client_for, comparison, alice_client
):
    anna = make_user("anna", "annotator")
    response = client_for(anna).get(_url(comparison))
    assert response.status_code == 403
    assert "not assigned to you" in response.content.decode()
    assert not Judgment.objects.filter(annotator=anna).exists()


def test_people_without_a_role_get_nothing(mallory, client_for, comparison):
    assert client_for(mallory).get(_url(comparison)).status_code == 403


def test_an_unknown_comparison_is_404(alice, client_for):
    assert client_for(alice).get("/compare/nope/").status_code == 404


def test_the_queue_page_takes_the_next_comparison(alice, client_for, comparison):
    client = client_for(alice)
    assert "1 comparison waiting" in client.get("/compare/").content.decode()
    response = client.post("/compare/next/")
    assert response.status_code == 302 and response["Location"] == _url(comparison)
    empty = client_for(alice)
    empty.post("/compare/next/")  # already held: the same one again
    assert queue.open_claim(alice, comparison) is not None


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _big_patch(files: int, lines: int) -> str:
    parts = []
    for n in range(files):
        body = "".join(f"+value_{n}_{i} = {i}\n" for i in range(lines))
        parts.append(
            f"diff --git a/pkg/mod_{n}.py b/pkg/mod_{n}.py\nnew file mode 100644\n"
            f"--- /dev/null\n+++ b/pkg/mod_{n}.py\n@@ -0,0 +1,{lines} @@\n{body}"
        )
    return "".join(parts)


def test_a_large_diff_renders_the_first_screen_and_defers_the_rest(alice, client_for):
    from tests.review.factories import make_comparison as plain_comparison
    from tests.review.factories import make_project

    comparison = plain_comparison(make_project(overlap=1))
    Candidate.objects.filter(turn__run__in=[comparison.run_a, comparison.run_b]).update(
        patch=_big_patch(60, 100)
    )
    queue.next_comparison(alice)
    client = client_for(alice)
    html = client.get(_url(comparison)).content.decode()
    assert html.count('data-reason="deferred"') >= 50  # most of the 60 files A and B share wait
    assert html.count("<tr") < 1000
    deferred = client.get(_url(comparison, "pair/59/")).content.decode()
    # Both sides add the same 100 lines: one region row and 100 aligned rows.
    assert 'id="ab-59"' in deferred and deferred.count("<tr") == 101
    side = client.get(_url(comparison, "diff/B/")).content.decode()
    assert side.count('data-reason="deferred"') >= 50
    deferred = client.get(_url(comparison, "file/B/59/")).content.decode()
    assert 'id="b-59"' in deferred and deferred.count("<tr") == 101


def test_an_unreadable_patch_is_explained_not_a_server_error(alice, client_for):
    from tests.review.factories import make_comparison as plain_comparison
    from tests.review.factories import make_project

    comparison = plain_comparison(make_project(overlap=1))
    Candidate.objects.filter(turn__run=comparison.run_a).update(patch="this is not a diff\n")
    queue.next_comparison(alice)
    client = client_for(alice)
    page = client.get(_url(comparison))
    assert page.status_code == 200
    assert "The change on side A could not be read" in page.content.decode()
    file = client.get(_url(comparison, "file/A/0/"))
    assert file.status_code == 400 and "could not be read" in file.content.decode()


def test_context_without_a_mirror_says_so(alice, client_for):
    from tests.review.factories import make_comparison as plain_comparison
    from tests.review.factories import make_project

    comparison = plain_comparison(make_project(overlap=1))  # its repository was never mirrored
    queue.next_comparison(alice)
    response = client_for(alice).get(_url(comparison, "context/A/0/?from=1&to=2"))
    assert response.status_code == 400
    assert (
        "no mirror" in response.content.decode() or "could not be read" in response.content.decode()
    )


def test_the_incremental_diff_shows_only_the_later_turn_and_never_writes_to_the_mirror(db):
    from pathlib import Path

    from marlin.demo.load import demo_source_path
    from marlin.demo.sample_repo import head_commit
    from marlin.review.compare import incremental_patch
    from tests.review.workspace_factories import (
        candidate_files,
        demo_patch,
        prepare_demo_repository,
    )

    repository = prepare_demo_repository()
    objects = sorted(p.name for p in Path(repository.mirror_path, "objects").rglob("*"))
    base = head_commit(demo_source_path())
    first = demo_patch(candidate_files("flawed"))
    second = demo_patch(candidate_files("good") | {"CHANGES.md": "Fixed.\n"})
    diff = incremental_patch(repository.mirror_path, base, first, second)
    assert "b/CHANGES.md" in diff and "b/tests/test_money_parentheses.py" in diff
    assert "ledgerlite/money.py" in diff  # flawed -> good
    assert incremental_patch(repository.mirror_path, base, second, second) == ""
    assert sorted(p.name for p in Path(repository.mirror_path, "objects").rglob("*")) == objects
    cached = list(
        (Path(repository.mirror_path).parents[1] / "cache" / "turn-diffs").glob("*.patch")
    )
    assert len(cached) == 2
