"""Grading: what a task asks to run against a candidate (`spec`), how a check runs in the sandbox
(`runner`) and how tool output becomes per-test results and findings (`parsers`). Plain Python,
no Django; the Django side (check results, their jobs and pages) is the `marlin.checks` app
(docs/decisions/0003-layers.md).
"""

from marlin.grading.parsers import PARSERS, ParseError
from marlin.grading.runner import run_check
from marlin.grading.spec import CheckOutcome, CheckSpec, Finding, TestResult

__all__ = [
    "PARSERS",
    "CheckOutcome",
    "CheckSpec",
    "Finding",
    "ParseError",
    "TestResult",
    "run_check",
]
