"""SWE-bench grading with the official code: the `swebench` package (extra `marlin[swebench]`).

Marlin runs the test command itself, in its sandbox, and hands the log to the harness's own
functions: the repository's log parser from `PARSER_REGISTRY`, `get_logs_eval` (markers, exit
status, "did the suite run at all"), `get_eval_tests_report` and `get_resolution_status`. So a
test id that the parser cut short (`test_x[a-b` where the id held a space, or `[100%]` from a
wrapped progress line) is matched exactly as the official harness matches it: against the
status map the same parser made of the same kind of log.

Two things of the official harness are not in swebench 5.x and are written here after 4.0.4
(MIT licence, https://github.com/SWE-bench/SWE-bench): the test directives taken from the test
patch (`test_directives`), and the requirements file read at `environment_setup_commit`
(`requirements_text`). The environment specs themselves are data: `swebench_specs.json`, made
from 4.0.4's MAP_REPO_VERSION_TO_SPECS by scripts/swebench_specs.py (docs/decisions).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, cast

from marlin.grading.spec import EnvironmentSpec

try:
    from swebench.harness.constants import (
        END_TEST_OUTPUT,
        NON_TEST_EXTS,
        START_TEST_OUTPUT,
        TEST_EXIT_CODE,
        ResolvedStatus,
    )
    from swebench.harness.grading import (
        get_eval_tests_report,
        get_logs_eval,
        get_resolution_status,
        test_passed,
    )
    from swebench.harness.infra_failure import classify_text
    from swebench.harness.log_parsers import PARSER_REGISTRY
    from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY
    from swebench.types import TestSpec

    MISSING = ""
except ImportError as exc:  # an optional extra: the check says how to install it
    MISSING = (
        f"the swebench package is not installed ({exc}); install Marlin with its swebench "
        "extra: pip install 'marlin[swebench]'"
    )

SPECS_FILE = "swebench_specs.json"
DEFAULT_PARSER = "parse_log_pytest"
# What the official requirements reader leaves out of a requirements file.
_EXCLUDED_REQUIREMENT = ("-e .", "#", ".[test")
_DIFF_GIT = re.compile(r"diff --git a/.* b/(.*)")


@dataclass
class Grade:
    """What the harness made of one log."""

    resolved: bool
    found: bool  # the log held a test run the harness could read
    status_map: dict[str, str] = field(default_factory=dict)
    report: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    infra_failure: str = ""  # the harness's reason when the environment, not the patch, broke


def available() -> bool:
    return not MISSING


def parser_for(repo: str) -> str:
    """The name in PARSER_REGISTRY of the repository's log parser (pytest's by default)."""
    if MISSING:
        return DEFAULT_PARSER
    parser = MAP_REPO_TO_PARSER_PY.get(repo)
    name = getattr(parser, "__name__", "")
    return name if name in PARSER_REGISTRY else DEFAULT_PARSER


def known_parsers() -> list[str]:
    return sorted(PARSER_REGISTRY) if not MISSING else []


def test_directives(repo: str, test_patch: str) -> list[str]:
    """The test files of the test patch, as the official harness passes them to the test
    command (for Django: dotted module names under tests/)."""
    directives = _DIFF_GIT.findall(test_patch)
    non_test = tuple(NON_TEST_EXTS) if not MISSING else (".json", ".txt", ".md", ".png")
    directives = [d for d in directives if not d.endswith(non_test)]
    if repo == "django/django":
        directives = [
            d.removesuffix(".py").removeprefix("tests/").replace("/", ".") for d in directives
        ]
    return directives


def eval_script(test_cmd: str, directives: list[str], log_path: str) -> str:
    """The part of the official eval script that runs the tests: everything goes to one log
    file (stdout and stderr interleaved as in the harness's container log), between the
    harness's markers, with the command's exit status after the end marker."""
    command = " ".join([test_cmd, *directives])
    return (
        f"exec >{log_path} 2>&1\n"
        f"echo '{_marker('START')}'\n"
        f"{command}\n"
        "status=$?\n"
        f"echo '{_marker('END')}'\n"
        f"echo '{_marker('EXIT')}: '$status\n"
        "exit $status\n"
    )


def grade(
    log: str,
    *,
    instance_id: str,
    repo: str,
    version: str,
    log_parser: str,
    fail_to_pass: list[str],
    pass_to_pass: list[str],
) -> Grade:
    """Grade a test log with the harness's own functions."""
    spec = TestSpec(
        instance_id=instance_id,
        image="",
        eval_script_list=[],
        repo=repo,
        version=version,
        FAIL_TO_PASS=fail_to_pass,
        PASS_TO_PASS=pass_to_pass,
        log_parser=log_parser or parser_for(repo),
        eval_type="pass_and_fail",
    )
    with tempfile.NamedTemporaryFile("w", suffix=".log", encoding="utf-8") as handle:
        handle.write(log)
        handle.flush()
        status_map, found = get_logs_eval(spec, handle.name)
    if not found:
        reason = classify_text(log)
        return Grade(resolved=False, found=False, infra_failure=reason[0] if reason else "")
    # (The harness annotates the listed tests as dict[str, str]; they are lists of ids.)
    gold: dict[str, Any] = {"FAIL_TO_PASS": fail_to_pass, "PASS_TO_PASS": pass_to_pass}
    report = get_eval_tests_report(status_map, gold)
    resolved = get_resolution_status(report) == ResolvedStatus.FULL.value
    return Grade(resolved=resolved, found=True, status_map=status_map, report=report)


def listed_status(test_id: str, status_map: dict[str, str]) -> str:
    """What the log says of one listed id (passed, failed, error, skipped, xfail, or not run),
    matched as the harness matches it: exactly, or, for an id cut short, by the cases it
    begins."""
    if test_id in status_map:
        return status_map[test_id].lower()
    if bool(test_passed(test_id, status_map)):
        return "passed"
    if test_id.count("[") > test_id.count("]"):
        for name, status in status_map.items():
            if name.startswith(test_id):
                return status.lower()
    return "not run"


@cache
def _specs_data() -> dict[str, Any]:
    text = files("marlin.grading").joinpath(SPECS_FILE).read_text(encoding="utf-8")
    return cast(dict[str, Any], json.loads(text))


def specs() -> dict[str, dict[str, dict[str, Any]]]:
    """repository -> version -> environment spec, as shipped in swebench_specs.json."""
    return cast(dict[str, dict[str, dict[str, Any]]], _specs_data()["specs"])


# The harness's images took setuptools from conda in 2024 (pkg_resources included); a venv
# seeded today gets a setuptools without pkg_resources, which some repositories' tests import.
# A spec that pins no setuptools gets this one.
SETUPTOOLS_OF_THE_IMAGES = "setuptools<70"


def environment_spec(repo: str, version: str) -> EnvironmentSpec | None:
    raw = specs().get(repo, {}).get(version)
    if raw is None:
        return None
    spec = EnvironmentSpec.model_validate(raw)
    if not any(p.lower().startswith("setuptools") for p in spec.pip_packages):
        spec.pip_packages = [SETUPTOOLS_OF_THE_IMAGES, *spec.pip_packages]
    return spec


def requirements_paths(repo: str) -> list[str]:
    paths = cast(dict[str, list[str]], _specs_data()["requirements_paths"])
    return list(paths.get(repo, []))


def requirements_text(repo: str, read: Callable[[str], str | None]) -> str | None:
    """The repository's requirements as the official harness gathers them (its first
    requirements file that exists, one level of `-r` includes, without `-e .`, comments and
    `.[test`), read with `read(path)` at the environment setup commit; None when none exists."""
    for path in requirements_paths(repo):
        text = read(path)
        if text is not None:
            break
    else:
        return None
    directory = str(Path(path).parent) if "/" in path else ""
    original, additional = [], []
    for line in text.split("\n"):
        if line.strip().startswith("-r"):
            name = line[len("-r") :].strip()
            included = read(f"{directory}/{name}" if directory else name)
            if included is not None:
                additional += [x for x in included.split("\n") if not _excluded(x)]
        elif not _excluded(line):
            original.append(line)
    additional.append("\n".join(original))
    return "\n".join(additional)


def _excluded(line: str) -> bool:
    return line.strip().startswith(_EXCLUDED_REQUIREMENT)


def _marker(which: str) -> str:
    if MISSING:
        return {"START": ">>>>> Start Test Output", "END": ">>>>> End Test Output"}.get(
            which, ">>>>> Test Exit Code"
        )
    return {"START": START_TEST_OUTPUT, "END": END_TEST_OUTPUT}.get(which, TEST_EXIT_CODE)
