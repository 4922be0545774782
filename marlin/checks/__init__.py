"""Checks: what a task asks to run against a candidate, how it runs in the sandbox, and how
tool output becomes results. Plain Python, no Django (see docs/decisions/0001-checks-package.md).
"""

from marlin.checks.parsers import PARSERS, ParseError
from marlin.checks.runner import run_check
from marlin.checks.spec import CheckOutcome, CheckSpec, Finding, TestResult

__all__ = [
    "PARSERS",
    "CheckOutcome",
    "CheckSpec",
    "Finding",
    "ParseError",
    "TestResult",
    "run_check",
]
