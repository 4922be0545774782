"""The swebench check: the test command runs in the real sandbox, the official harness's code
(swebench 5.x, the `swebench` extra) grades its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlin.grading import CheckSpec, run_check, swebench
from marlin.sandbox import Mount
from marlin.sandbox.workspace import apply_patch

from .test_runner import GOOD_FIX, HIDDEN_TESTS

pytestmark = pytest.mark.skipif(
    not swebench.available(), reason=f"the swebench extra is missing: {swebench.MISSING}"
)

# A parametrised case whose id holds a space: the harness's pytest parser splits result lines
# on whitespace, so SWE-bench lists it cut short, as "...::test_spaced[one".
SPACED_TESTS = """\
diff --git a/tests/test_spaced.py b/tests/test_spaced.py
new file mode 100644
--- /dev/null
+++ b/tests/test_spaced.py
@@ -0,0 +1,6 @@
+import pytest
+from calc import mean
+
+@pytest.mark.parametrize("label", ["one half"])
+def test_spaced(label):
+    assert mean([1, 2]) == 1.5
"""


def spec(**fields: object) -> CheckSpec:
    values: dict[str, object] = {
        "kind": "swebench",
        "name": "SWE-bench tests",
        "command": "python -m pytest -rA -p no:cacheprovider",
        "instance_id": "calc__calc-1",
        "repo": "calc/calc",
        "version": "1.0",
        "test_patch": HIDDEN_TESTS,
        "fail_to_pass": ["tests/test_mean.py::test_mean_of_halves"],
        "pass_to_pass": ["tests/test_mean.py::test_mean_of_equal_values"],
    }
    values.update(fields)
    return CheckSpec.model_validate(values)


@pytest.mark.slow
def test_a_fix_is_resolved_as_the_harness_grades_it(ws: Path, tools: Mount) -> None:
    apply_patch(ws, GOOD_FIX)
    outcome = run_check(spec(), workdir=ws, mounts=[tools])
    assert outcome.status == "passed", outcome.detail
    assert outcome.detail == "resolved: 2 of 2 listed tests as required"
    assert [(r.id, r.status, r.ok) for r in outcome.required] == [
        ("tests/test_mean.py::test_mean_of_halves", "passed", True),
        ("tests/test_mean.py::test_mean_of_equal_values", "passed", True),
    ]
    # The command ran on the test patch's files only (the harness's test directives).
    assert {t.name for t in outcome.tests} == {
        "tests/test_mean.py::test_mean_of_halves",
        "tests/test_mean.py::test_mean_of_equal_values",
    }
    # The raw log is kept beside the parsed result, markers included.
    assert ">>>>> Start Test Output" in outcome.log
    assert "PASSED tests/test_mean.py::test_mean_of_halves" in outcome.log


@pytest.mark.slow
def test_no_fix_is_not_resolved_and_names_the_test(ws: Path, tools: Mount) -> None:
    outcome = run_check(spec(), workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert outcome.detail == (
        "not resolved: 1 of 2 listed tests as required; not as required: "
        "tests/test_mean.py::test_mean_of_halves (FAIL_TO_PASS: failed)"
    )


@pytest.mark.slow
@pytest.mark.parametrize(("patch", "status"), [(GOOD_FIX, "passed"), ("", "failed")])
def test_an_id_the_harness_cut_short_is_graded_as_the_harness_grades_it(
    ws: Path, tools: Mount, patch: str, status: str
) -> None:
    if patch:
        apply_patch(ws, patch)
    outcome = run_check(
        spec(
            test_patch=SPACED_TESTS,
            fail_to_pass=["tests/test_spaced.py::test_spaced[one"],
            pass_to_pass=[],
        ),
        workdir=ws,
        mounts=[tools],
    )
    assert outcome.status == status, outcome.detail
    assert [r.status for r in outcome.required] == [status]


@pytest.mark.slow
def test_a_command_that_runs_no_tests_is_not_resolved(ws: Path, tools: Mount) -> None:
    apply_patch(ws, GOOD_FIX)
    outcome = run_check(spec(command="python -c 'print(1)' #"), workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert outcome.detail.startswith("not resolved: the harness found no test results in the log")
    assert [r.status for r in outcome.required] == ["not run", "not run"]


@pytest.mark.slow
def test_a_candidate_that_rewrites_the_hidden_test_file_gets_the_authors_back(
    ws: Path, tools: Mount
) -> None:
    # No fix, but a test file of its own under the hidden test's name that always passes.
    (ws / "tests" / "test_mean.py").write_text(
        "def test_mean_of_halves():\n    pass\n\n\ndef test_mean_of_equal_values():\n    pass\n"
    )
    outcome = run_check(spec(), workdir=ws, mounts=[tools])
    assert outcome.status == "failed"
    assert "test_mean_of_halves (FAIL_TO_PASS: failed)" in outcome.detail


def test_test_directives_are_the_test_patchs_files_as_the_harness_takes_them() -> None:
    patch = (
        "diff --git a/tests/utils/test_a.py b/tests/utils/test_a.py\n"
        "diff --git a/tests/data/x.json b/tests/data/x.json\n"
    )
    assert swebench.test_directives("pallets/flask", patch) == ["tests/utils/test_a.py"]
    assert swebench.test_directives("django/django", patch) == ["utils.test_a"]


def test_the_environment_specs_carry_swebench_4_0_4s_values() -> None:
    flask = swebench.environment_spec("pallets/flask", "2.0")
    assert flask is not None
    assert (flask.python, flask.packages, flask.install, flask.test_cmd) == (
        "3.9",
        "requirements.txt",
        "python -m pip install -e .",
        "pytest -rA",
    )
    assert "Werkzeug==2.3.7" in flask.pip_packages
    assert swebench.environment_spec("pallets/flask", "9.9") is None
    # A spec that pins no setuptools gets one with pkg_resources, as the harness's images had.
    pytest_spec = swebench.environment_spec("pytest-dev/pytest", "8.0")
    assert pytest_spec is not None and pytest_spec.pip_packages[0] == "setuptools<70"
    assert [p for p in flask.pip_packages if p.startswith("setuptools")] == ["setuptools==70.0.0"]


def test_requirements_are_gathered_as_the_harness_gathers_them() -> None:
    files = {
        "requirements/dev.txt": "-r tests.txt\n-e .\n# comment\npre-commit\n",
        "requirements/tests.txt": "pytest\n.[test]\nblinker\n",
    }
    text = swebench.requirements_text("pallets/flask", files.get)
    assert text is not None
    assert text.split("\n") == ["pytest", "blinker", "", "pre-commit", ""]
    assert swebench.requirements_text("pallets/flask", {}.get) is None


def test_a_swebench_check_needs_its_test_files() -> None:
    with pytest.raises(ValueError, match="a swebench check needs a test_patch"):
        spec(test_patch="")
    with pytest.raises(ValueError, match="belong to swebench checks only"):
        CheckSpec(kind="command", name="x", command="true", log_parser="parse_log_pytest")
