"""run_check in the real sandbox, on worktrees of the calc library with candidate patches.

Tests that use the `tools` fixture are marked slow: each runs in about a second, but on a fresh
machine the first of them builds the tools venv (pytest, ruff, bandit) from the registry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from marlin.grading import CheckSpec, run_check
from marlin.sandbox import Limits, Mount
from marlin.sandbox.workspace import apply_patch, diff_workspace, read_marker

GOOD_FIX = """\
diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -9,2 +9,2 @@ def mul(a, b):
 def mean(values):
-    return sum(values) // len(values)
+    return sum(values) / len(values)
"""

BREAKS_MUL = """\
diff --git a/calc/ops.py b/calc/ops.py
--- a/calc/ops.py
+++ b/calc/ops.py
@@ -5,5 +5,5 @@ def add(a, b):
 def mul(a, b):
-    return a * b
+    return a * b + 1
\x20
\x20
 def mean(values):
"""

HIDDEN_TESTS = """\
diff --git a/tests/test_mean.py b/tests/test_mean.py
new file mode 100644
--- /dev/null
+++ b/tests/test_mean.py
@@ -0,0 +1,9 @@
+from calc import mean
+
+
+def test_mean_of_halves():
+    assert mean([1, 2]) == 1.5
+
+
+def test_mean_of_equal_values():
+    assert mean([3, 3]) == 3
"""

UNSAFE_MODULE = """\
diff --git a/calc/shell.py b/calc/shell.py
new file mode 100644
--- /dev/null
+++ b/calc/shell.py
@@ -0,0 +1,6 @@
+import os
+import subprocess
+
+
+def run(command):
+    return subprocess.call(command, shell=True)
"""

PYTEST = "python -m pytest -q"
F2P = ["tests/test_mean.py::test_mean_of_halves"]
P2P = ["tests/test_mean.py::test_mean_of_equal_values", "tests/test_ops.py::test_add"]


@pytest.mark.slow
def test_a_command_check_passes_with_per_test_results(ws: Path, tools: Mount) -> None:
    apply_patch(ws, GOOD_FIX)
    outcome = run_check(
        CheckSpec(kind="command", name="unit tests", command=PYTEST), workdir=ws, mounts=[tools]
    )
    assert outcome.status == "passed", outcome.detail
    assert {t.name: t.outcome for t in outcome.tests} == {
        "tests/test_ops.py::test_add": "passed",
        "tests/test_ops.py::test_mul": "passed",
    }
    assert (outcome.passed, outcome.failed) == (2, 0)
    assert "2 passed" in outcome.log
    assert outcome.limits["timeout_seconds"] == 600
    assert outcome.duration > 0
    # The report went to .marlin/ and was removed; the candidate is just the patch.
    candidate = diff_workspace(ws, read_marker(ws).commit)
    assert candidate.count("diff --git") == 1 and "sum(values) / len(values)" in candidate
    assert not list((ws / ".marlin").iterdir())


@pytest.mark.slow
def test_a_command_check_fails_naming_the_failing_test(ws: Path, tools: Mount) -> None:
    apply_patch(ws, BREAKS_MUL)
    outcome = run_check(
        CheckSpec(kind="command", name="unit tests", command=PYTEST), workdir=ws, mounts=[tools]
    )
    assert outcome.status == "failed"
    assert (outcome.passed, outcome.failed) == (1, 1)
    assert "failing: tests/test_ops.py::test_mul" in outcome.detail
    [failing] = [t for t in outcome.tests if t.outcome == "failed"]
    assert "assert 21 == 20" in failing.message


def test_a_command_that_is_not_pytest_is_judged_by_its_exit_code(ws: Path) -> None:
    ok = run_check(
        CheckSpec(kind="command", name="compiles", command="test -f calc/ops.py"), workdir=ws
    )
    assert (ok.status, ok.tests, ok.detail) == ("passed", [], "exit 0; no per-test report")
    bad = run_check(
        CheckSpec(kind="command", name="x", command="echo oops >&2; exit 3"), workdir=ws
    )
    assert bad.status == "failed"
    assert bad.detail.startswith("exit 3")
    assert "oops" in bad.log


def test_a_command_check_that_runs_too_long_times_out(ws: Path) -> None:
    outcome = run_check(
        CheckSpec(
            kind="command", name="hangs", command="echo started; sleep 60", timeout_seconds=1
        ),
        workdir=ws,
    )
    assert outcome.status == "timed_out"
    assert outcome.duration < 30
    assert "started" in outcome.log


def test_a_check_that_floods_its_output_keeps_a_capped_log(ws: Path) -> None:
    outcome = run_check(
        CheckSpec(kind="command", name="noisy", command="seq 1 200000; echo the-end"),
        workdir=ws,
        limits=Limits(max_output_bytes=4_000_000),
    )
    assert outcome.status == "passed"
    assert len(outcome.log.encode()) < 70_000
    assert outcome.log.startswith("1\n2\n3\n")
    assert outcome.log.rstrip().endswith("the-end")
    assert "bytes cut" in outcome.log


@pytest.mark.slow
def test_hidden_tests_pass_when_every_listed_test_passes(ws: Path, tools: Mount) -> None:
    apply_patch(ws, GOOD_FIX)
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=PYTEST,
        test_patch=HIDDEN_TESTS,
        fail_to_pass=F2P,
        pass_to_pass=P2P,
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == "passed", outcome.detail
    assert outcome.detail == "3 of 3 required tests passed"
    # Only the listed tests ran, not the whole suite.
    assert sorted(t.name for t in outcome.tests) == sorted(F2P + P2P)


@pytest.mark.slow
def test_hidden_tests_fail_naming_the_tests_that_did_not_pass(ws: Path, tools: Mount) -> None:
    apply_patch(ws, BREAKS_MUL)  # a candidate that never fixed mean()
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=f"{PYTEST} {{tests}} tests/test_ops.py::test_mul",
        test_patch=HIDDEN_TESTS,
        fail_to_pass=F2P,
        pass_to_pass=P2P,
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert "2 of 3 required tests passed" in outcome.detail
    assert "tests/test_mean.py::test_mean_of_halves (FAIL_TO_PASS: failed)" in outcome.detail
    # test_mul failed too, but it is not a listed test: reported, not counted.
    assert "tests/test_ops.py::test_mul" not in outcome.detail
    assert any(
        t.name == "tests/test_ops.py::test_mul" and t.outcome == "failed" for t in outcome.tests
    )


@pytest.mark.slow
def test_hidden_tests_that_the_command_never_ran_count_as_not_passing(
    ws: Path, tools: Mount
) -> None:
    apply_patch(ws, GOOD_FIX)
    # The author's command ignores the placeholder (it sits in a shell comment).
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=f"{PYTEST} tests/test_mean.py  # {{tests}}",
        test_patch=HIDDEN_TESTS,
        fail_to_pass=F2P,
        pass_to_pass=P2P,
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert outcome.detail == (
        "2 of 3 required tests passed; not passing: "
        "tests/test_ops.py::test_add (PASS_TO_PASS: not run)"
    )


@pytest.mark.slow
def test_hidden_tests_report_a_listed_test_that_does_not_exist_and_grade_the_rest(
    ws: Path, tools: Mount
) -> None:
    apply_patch(ws, GOOD_FIX)
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=PYTEST,
        test_patch=HIDDEN_TESTS,
        fail_to_pass=F2P,
        pass_to_pass=["tests/test_ops.py::test_deleted_by_the_candidate", "tests/test_gone.py"],
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert outcome.detail == (
        "1 of 3 required tests passed; not passing: "
        "tests/test_ops.py::test_deleted_by_the_candidate (PASS_TO_PASS: does not exist), "
        "tests/test_gone.py (PASS_TO_PASS: does not exist)"
    )
    # The test that exists still ran and passed, despite its neighbours.
    assert [(r.id, r.status, r.ok) for r in outcome.required] == [
        ("tests/test_mean.py::test_mean_of_halves", "passed", True),
        ("tests/test_ops.py::test_deleted_by_the_candidate", "does not exist", False),
        ("tests/test_gone.py", "does not exist", False),
    ]


PARAMETRISED_TESTS = """\
diff --git a/tests/test_mean_cases.py b/tests/test_mean_cases.py
new file mode 100644
--- /dev/null
+++ b/tests/test_mean_cases.py
@@ -0,0 +1,16 @@
+import pytest
+
+from calc import mean
+
+
+@pytest.mark.parametrize(("values", "expected"), [([1, 2], 1.5), ([2, 2], 2)])
+def test_mean(values, expected):
+    assert mean(values) == expected
+
+
+class TestMean:
+    def test_halves(self):
+        assert mean([1, 2]) == 1.5
+
+    def test_whole(self):
+        assert mean([4, 4]) == 4
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("patch", "statuses", "status"),
    [
        (GOOD_FIX, ["passed", "passed", "passed", "passed"], "passed"),
        # Without the fix one parametrised case and one method fail: the listed function, the
        # class and the module each count as failed, the truncated id (as SWE-bench's parser
        # cut it at a space) too, since the case it starts fails.
        ("", ["failed", "failed", "failed", "failed"], "failed"),
    ],
)
def test_hidden_tests_expand_parametrised_class_module_and_truncated_ids(
    ws: Path, tools: Mount, patch: str, statuses: list[str], status: str
) -> None:
    if patch:
        apply_patch(ws, patch)
    listed = [
        "tests/test_mean_cases.py::test_mean",
        "tests/test_mean_cases.py::TestMean",
        "tests/test_mean_cases.py",
        "tests/test_mean_cases.py::test_mean[values0-1",
    ]
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=PYTEST,
        test_patch=PARAMETRISED_TESTS,
        fail_to_pass=listed,
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == status, outcome.detail
    assert [r.status for r in outcome.required] == statuses
    # pytest reported the cases, never the listed ids themselves.
    assert "tests/test_mean_cases.py::test_mean[values0-1.5]" in {t.name for t in outcome.tests}


def test_hidden_tests_whose_patch_does_not_apply_are_an_error(ws: Path) -> None:
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=PYTEST,
        test_patch=BREAKS_MUL.replace("a * b", "a ** b"),
        fail_to_pass=F2P,
    )
    outcome = run_check(spec, workdir=ws)
    assert outcome.status == "error"
    assert outcome.detail.startswith("the test patch was rejected: patch does not apply")


def test_hidden_tests_need_a_test_report(ws: Path) -> None:
    spec = CheckSpec(kind="hidden-tests", name="hidden", command="true", fail_to_pass=F2P)
    outcome = run_check(spec, workdir=ws)
    assert outcome.status == "error"
    assert "wrote no test report" in outcome.detail


@pytest.mark.slow
def test_lint_reports_ruff_findings_in_changed_files(ws: Path, tools: Mount) -> None:
    apply_patch(ws, UNSAFE_MODULE)
    outcome = run_check(CheckSpec(kind="lint", name="ruff"), workdir=ws, mounts=[tools])
    assert outcome.status == "failed", outcome.detail
    assert [(f.tool, f.rule, f.path, f.line) for f in outcome.findings] == [
        ("ruff", "F401", "calc/shell.py", 1)
    ]
    assert outcome.detail == "1 findings (1 warning)"


@pytest.mark.slow
def test_lint_passes_clean_changes_and_nothing_to_lint(ws: Path, tools: Mount) -> None:
    nothing = run_check(CheckSpec(kind="lint", name="ruff"), workdir=ws, mounts=[tools])
    assert (nothing.status, nothing.detail) == ("passed", "no changed Python files to lint")
    apply_patch(ws, GOOD_FIX)
    clean = run_check(CheckSpec(kind="lint", name="ruff"), workdir=ws, mounts=[tools])
    assert (clean.status, clean.findings) == ("passed", [])


@pytest.mark.slow
def test_security_fails_on_a_medium_or_high_bandit_finding(ws: Path, tools: Mount) -> None:
    apply_patch(ws, UNSAFE_MODULE)
    outcome = run_check(CheckSpec(kind="security", name="bandit"), workdir=ws, mounts=[tools])
    assert outcome.status == "failed", outcome.detail
    by_rule = {f.rule.split()[0]: f for f in outcome.findings}
    assert by_rule["B602"].severity == "high"
    assert (by_rule["B602"].path, by_rule["B602"].line) == ("calc/shell.py", 6)
    assert by_rule["B404"].severity == "low"
    assert "1 high" in outcome.detail


@pytest.mark.slow
def test_security_passes_when_only_low_findings_remain(ws: Path, tools: Mount) -> None:
    outcome = run_check(
        CheckSpec(kind="security", name="bandit", paths=["tests/"]), workdir=ws, mounts=[tools]
    )
    assert outcome.status == "passed", outcome.detail
    assert outcome.findings and {f.severity for f in outcome.findings} == {"low"}  # B101 asserts


def test_a_missing_tool_is_an_error_not_a_pass(ws: Path) -> None:
    # Without the tools mount there is no ruff in the sandbox.
    outcome = run_check(CheckSpec(kind="lint", name="ruff", paths=["calc"]), workdir=ws)
    assert outcome.status == "error"
    assert "ruff failed (exit 127)" in outcome.detail


def test_an_unknown_backend_is_an_error_outcome(ws: Path) -> None:
    outcome = run_check(
        CheckSpec(kind="command", name="x", command="true"), workdir=ws, backend="nope"
    )
    assert outcome.status == "error"
    assert "unknown sandbox backend 'nope'" in outcome.detail


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "command", "name": "x"}, "needs a command"),
        ({"kind": "hidden-tests", "name": "x", "command": "pytest"}, "at least one fail_to_pass"),
        ({"kind": "lint", "name": "x", "fail_to_pass": ["t"]}, "hidden-tests and swebench checks"),
        ({"kind": "lint", "name": "x", "command": "ruff"}, "use a command check"),
        ({"kind": "lint", "name": "x", "paths": ["../etc"]}, "without '..'"),
        ({"kind": "lint", "name": "x", "paths": ["--fix"]}, "not starting with '-'"),
        ({"kind": "command", "name": "x", "command": "t", "timeout_seconds": 0}, "between 1"),
        (
            {"kind": "hidden-tests", "name": "x", "command": "t", "fail_to_pass": ["a\nb"]},
            "one non-empty line",
        ),
        ({"kind": "command", "name": "x", "command": "t", "shell": "zsh"}, "Extra inputs"),
        ({"kind": "fuzz", "name": "x"}, "'command', 'hidden-tests', 'swebench', 'lint' or"),
    ],
)
def test_check_specs_explain_what_is_wrong(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CheckSpec.model_validate(fields)


@pytest.mark.slow
def test_scans_of_the_whole_tree_skip_virtualenvs_and_dependencies(ws: Path, tools: Mount) -> None:
    for junk in (".venv/lib/site.py", "node_modules/pkg/setup.py"):
        (ws / junk).parent.mkdir(parents=True)
        (ws / junk).write_text("import subprocess\nsubprocess.call(input(), shell=True)\n")
    outcome = run_check(
        CheckSpec(kind="security", name="bandit", paths=["."]), workdir=ws, mounts=[tools]
    )
    assert outcome.status == "passed", outcome.detail
    assert not [f for f in outcome.findings if "site.py" in f.path or "setup.py" in f.path]
    lint = run_check(CheckSpec(kind="lint", name="ruff", paths=["."]), workdir=ws, mounts=[tools])
    assert (lint.status, lint.findings) == ("passed", [])


@pytest.mark.slow
def test_the_local_backend_reports_per_test_results_too(ws: Path, tools: Mount) -> None:
    apply_patch(ws, BREAKS_MUL)
    outcome = run_check(
        CheckSpec(kind="command", name="unit tests", command=PYTEST),
        workdir=ws,
        mounts=[tools],
        backend="local",
    )
    assert outcome.status == "failed"
    assert "failing: tests/test_ops.py::test_mul" in outcome.detail


@pytest.mark.slow
def test_hidden_tests_replace_test_files_the_candidate_wrote_itself(ws: Path, tools: Mount) -> None:
    # A candidate that "fixes" the bug by writing a test file that always passes, and by
    # weakening an existing test, without touching mean().
    (ws / "tests" / "test_mean.py").write_text(
        "def test_mean_of_halves():\n    pass\n\n\ndef test_mean_of_equal_values():\n    pass\n"
    )
    spec = CheckSpec(
        kind="hidden-tests",
        name="hidden",
        command=PYTEST,
        test_patch=HIDDEN_TESTS,
        fail_to_pass=F2P,
        pass_to_pass=P2P,
    )
    outcome = run_check(spec, workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert "tests/test_mean.py::test_mean_of_halves (FAIL_TO_PASS: failed)" in outcome.detail
    assert "assert 1 == 1.5" in "".join(t.message for t in outcome.tests)
