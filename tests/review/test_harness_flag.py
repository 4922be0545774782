"""Harder to forge: a candidate that changes the test harness is flagged on the comparison page,
and each check shows its raw log beside the parsed result."""

from __future__ import annotations

from marlin.agents.models import Candidate
from marlin.checks.models import CheckResult
from marlin.grading.harness import harness_changes
from marlin.review import queue
from tests.review.workspace_factories import make_comparison

CONFTEST = (
    "diff --git a/tests/conftest.py b/tests/conftest.py\nnew file mode 100644\n"
    "--- /dev/null\n+++ b/tests/conftest.py\n@@ -0,0 +1,3 @@\n"
    "+def pytest_collection_modifyitems(items):\n+    items.clear()\n+\n"
)


def test_the_comparison_flags_a_candidate_that_changed_the_test_harness(
    erin, dave, alice, client_for
) -> None:
    comparison = make_comparison(erin, dave, overlap=1)
    flagged = Candidate.objects.get(turn__run=comparison.run_a, turn__number=1)
    flagged.patch += CONFTEST
    flagged.save()
    CheckResult.objects.filter(candidate=flagged).update(
        log="<b>PASSED</b> tests/test_money.py::test_parse", detail="4 of 4 required tests passed"
    )
    assert queue.next_comparison(alice) == comparison
    html = client_for(alice).get(f"/compare/{comparison.public_id}/").content.decode()
    assert html.count("changed the test harness") == 1
    assert "<code>tests/conftest.py</code>" in html
    # The raw log sits beside the parsed result, escaped.
    assert '<div class="check-raw">' in html
    assert "&lt;b&gt;PASSED&lt;/b&gt; tests/test_money.py::test_parse" in html


def test_only_harness_files_and_pytest_settings_count() -> None:
    setup_cfg = (
        "diff --git a/setup.cfg b/setup.cfg\n--- a/setup.cfg\n+++ b/setup.cfg\n"
        "@@ -1,3 +1,3 @@\n [tool:pytest]\n-addopts = -ra\n+addopts = -ra -p no:warnings\n"
    )
    metadata = setup_cfg.replace("addopts = -ra -p no:warnings", "name = other").replace(
        "-addopts = -ra", "-name = this"
    )
    code = (
        "diff --git a/src/_pytest/runner.py b/src/_pytest/runner.py\n"
        "--- a/src/_pytest/runner.py\n+++ b/src/_pytest/runner.py\n@@ -1 +1 @@\n-a\n+b\n"
    )
    assert harness_changes(CONFTEST + setup_cfg) == ["tests/conftest.py", "setup.cfg"]
    # Changing other settings, or the code of a test runner that is the repository itself, is
    # not a change to the harness.
    assert harness_changes(metadata + code) == []
