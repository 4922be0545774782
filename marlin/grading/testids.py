"""Listed test ids (a task's FAIL_TO_PASS and PASS_TO_PASS) against what pytest reported.

A task author lists ids the way people write them: a test function whose parametrised cases
pytest reports one by one (`test_x` runs as `test_x[a]`, `test_x[b]`), a test class, a whole
module, or an id cut short by an older tool (`test_x[a-b`). Each listed id gets one status:
"passed", "failed", "error", "skipped", "not run" (pytest ran but reported no test under it) or
"does not exist" (pytest said it found no such test or file in the workspace).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from marlin.grading.spec import RequiredTest, TestResult

IdStatus = Literal["passed", "failed", "error", "skipped", "not run", "does not exist"]

# pytest's words when an argument names nothing (its exit status is then 4, usage error):
# "ERROR: not found: /workspace/tests/test_x.py::test_y" (the parametrisation is dropped from
# the echoed id) and "ERROR: file or directory not found: tests/test_z.py".
_NOT_FOUND = re.compile(r"^ERROR: not found: (\S+)", re.M)
_FILE_NOT_FOUND = re.compile(r"^ERROR: file or directory not found: (\S+)", re.M)


def file_of(test_id: str) -> str:
    return test_id.split("::", 1)[0]


def matching_results(test_id: str, results: Iterable[TestResult]) -> list[TestResult]:
    """The reported tests a listed id stands for: itself, its parametrised cases, the tests of
    a class or module it names, or (for an id cut short inside its brackets) every case it is
    the beginning of."""
    test_id = test_id.removeprefix("./")
    truncated = _truncated(test_id)
    found = []
    for result in results:
        name = result.name
        if (
            name == test_id
            or name.startswith((test_id + "::", test_id + "["))
            or (truncated and name.startswith(test_id))
        ):
            found.append(result)
    return found


def status_of(test_id: str, results: Sequence[TestResult], missing: Iterable[str]) -> IdStatus:
    if test_id in set(missing):
        return "does not exist"
    outcomes = {r.outcome for r in matching_results(test_id, results)}
    if not outcomes:
        return "not run"
    worst: IdStatus
    for worst in ("error", "failed", "passed"):
        if worst in outcomes:
            return worst
    return "skipped"


def required_tests(
    fail_to_pass: Sequence[str],
    pass_to_pass: Sequence[str],
    results: Sequence[TestResult],
    missing: Iterable[str] = (),
) -> list[RequiredTest]:
    """One RequiredTest per listed id. A FAIL_TO_PASS test must pass; a PASS_TO_PASS test may
    also be skipped (as the SWE-bench harness grades: a skip is not a regression)."""
    missing = set(missing)
    report = []
    for group, ids in (("FAIL_TO_PASS", fail_to_pass), ("PASS_TO_PASS", pass_to_pass)):
        for test_id in ids:
            status = status_of(test_id, results, missing)
            ok = status == "passed" or (group == "PASS_TO_PASS" and status == "skipped")
            report.append(RequiredTest(id=test_id, group=group, status=status, ok=ok))
    return report


def pytest_args(test_ids: Sequence[str]) -> list[str]:
    """What to pass pytest for the listed ids: each id as it is, except an id cut short inside
    its brackets, which pytest cannot find, so its whole test function runs (once)."""
    args: list[str] = []
    for test_id in test_ids:
        arg = test_id.split("[", 1)[0] if _truncated(test_id) else test_id
        if arg not in args:
            args.append(arg)
    return args


def not_found(output: str, wanted: Sequence[str], inside: str) -> list[str]:
    """The listed ids that pytest's usage errors in `output` say do not exist. `inside` is the
    workspace's path as the command saw it (pytest echoes ids with absolute paths, and without
    their parametrisation: a missing `test_x[9]` is reported as `test_x`, so a bracketed id is
    taken to be the missing one before the plain id it shares a name with)."""
    prefix = inside.rstrip("/") + "/"
    gone_ids = [m.removeprefix(prefix) for m in _NOT_FOUND.findall(output)]
    gone_files = {m.removeprefix(prefix) for m in _FILE_NOT_FOUND.findall(output)}
    plain = {t: t.removeprefix("./") for t in wanted}
    found = [t for t in wanted if file_of(plain[t]) in gone_files]
    for gone in gone_ids:
        bracketed = [t for t in wanted if "[" in t and plain[t].split("[", 1)[0] == gone]
        found += bracketed or [t for t in wanted if plain[t] == gone]
    return [t for t in wanted if t in found]


def _truncated(test_id: str) -> bool:
    return test_id.count("[") > test_id.count("]")
