"""Listed test ids against pytest's per-test results and its 'not found' errors."""

from __future__ import annotations

from marlin.grading.spec import TestResult
from marlin.grading.testids import not_found, pytest_args, required_tests, status_of

RESULTS = [
    TestResult(name="tests/test_a.py::test_p[1]", outcome="passed"),
    TestResult(name="tests/test_a.py::test_p[2]", outcome="failed"),
    TestResult(name="tests/test_a.py::test_q", outcome="passed"),
    TestResult(name="tests/test_a.py::TestK::test_m", outcome="passed"),
    TestResult(name="tests/test_a.py::TestK::test_n[x y]", outcome="skipped"),
    TestResult(name="tests/test_b.py::test_r", outcome="error"),
]


def test_a_listed_id_stands_for_its_cases_class_or_module() -> None:
    assert status_of("tests/test_a.py::test_q", RESULTS, ()) == "passed"
    assert status_of("tests/test_a.py::test_p[1]", RESULTS, ()) == "passed"
    # One failing case fails the function, its module too.
    assert status_of("tests/test_a.py::test_p", RESULTS, ()) == "failed"
    assert status_of("tests/test_a.py", RESULTS, ()) == "failed"
    assert status_of("tests/test_a.py::TestK", RESULTS, ()) == "passed"
    assert status_of("./tests/test_b.py", RESULTS, ()) == "error"
    # Cut short at a space by a log parser: the case it begins.
    assert status_of("tests/test_a.py::TestK::test_n[x", RESULTS, ()) == "skipped"
    # A prefix of a name is not the name.
    assert status_of("tests/test_a.py::test", RESULTS, ()) == "not run"
    assert status_of("tests/test_c.py::test_s", RESULTS, ["tests/test_c.py::test_s"]) == (
        "does not exist"
    )


def test_a_skipped_pass_to_pass_test_is_kept_but_a_skipped_fail_to_pass_test_is_not() -> None:
    skipped = "tests/test_a.py::TestK::test_n[x y]"
    report = required_tests([skipped], [skipped], RESULTS)
    assert [(r.group, r.status, r.ok) for r in report] == [
        ("FAIL_TO_PASS", "skipped", False),
        ("PASS_TO_PASS", "skipped", True),
    ]


def test_truncated_ids_run_their_whole_function_once() -> None:
    assert pytest_args(["t.py::test_p[a-b", "t.py::test_p[c", "t.py::test_q[1]", "t.py"]) == [
        "t.py::test_p",
        "t.py::test_q[1]",
        "t.py",
    ]


# What pytest 9 prints (to stdout and stderr) when arguments name nothing.
NOT_FOUND_OUTPUT = """
no tests ran in 0.07s
ERROR: not found: /workspace/tests/test_a.py::test_gone
(no match in any of [<Module test_a.py>])

ERROR: not found: /workspace/tests/test_a.py::test_p
(no match in any of [<Module test_a.py>])
"""


def test_pytests_not_found_errors_name_the_listed_ids_that_do_not_exist() -> None:
    wanted = [
        "tests/test_a.py::test_gone",
        "tests/test_a.py::test_p[9]",  # pytest echoes it without its brackets
        "tests/test_a.py::test_p[1]",  # exists: but pytest's words cannot tell them apart
        "tests/test_a.py::test_q",
    ]
    assert not_found(NOT_FOUND_OUTPUT, wanted, "/workspace") == wanted[:3]
    files = "ERROR: file or directory not found: tests/test_c.py\n"
    assert not_found(files, ["tests/test_c.py::t", "tests/test_a.py::t"], "/workspace") == [
        "tests/test_c.py::t"
    ]
    assert not_found("1 failed\n", wanted, "/workspace") == []
