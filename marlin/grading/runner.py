"""Run one CheckSpec against a workspace, inside the sandbox, and say what it found.

A check that fails is an outcome, not an exception: `run_check` returns status "failed",
"timed_out" or "error" (the sandbox could not run it, a patch did not apply, a report was
unreadable), with the reason in `detail`. Hidden-tests checks apply their test patch to the
workspace, so run them last, or in a workspace of their own.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from marlin.grading import swebench
from marlin.grading.parsers import (
    MAX_REPORT_BYTES,
    ParseError,
    parse_bandit,
    parse_junit,
    parse_ruff,
    parse_semgrep,
)
from marlin.grading.spec import (
    CheckOutcome,
    CheckSpec,
    Finding,
    RequiredTest,
    TestOutcome,
    TestResult,
)
from marlin.grading.testids import not_found, pytest_args, required_tests
from marlin.sandbox import WORKSPACE_PATH, ExecResult, Limits, Mount, SandboxError, run
from marlin.sandbox.core import BACKEND_ENV_VAR, DEFAULT_BACKEND
from marlin.sandbox.gitutil import GitError, parse_patch_headers
from marlin.sandbox.workspace import (
    PatchRejected,
    WorkspaceError,
    apply_patch,
    changed_files,
    read_marker,
    restore_paths,
    sandbox_view,
    visible_file,
)

LOG_HEAD_BYTES = 32 * 1024
PYTEST_USAGE_ERROR = 4
MAX_NOT_FOUND_RERUNS = 5
LOG_TAIL_BYTES = 32 * 1024
REPORT_DIR = ".marlin"
BLOCKING_SEVERITIES = frozenset({"medium", "high", "critical"})
# Tool caches and environments are not the candidate's code.
SCAN_EXCLUDE_DIRS = (
    ".venv",
    "venv",
    "node_modules",
    ".marlin",
    ".git",
    "build",
    "dist",
    ".tox",
    ".nox",
)


class _Context:
    def __init__(
        self,
        spec: CheckSpec,
        workdir: Path,
        mounts: Sequence[Mount],
        limits: Limits | None,
        backend: str | None,
    ) -> None:
        self.spec = spec
        self.workdir = workdir
        self.mounts = tuple(mounts)
        self.limits = limits or Limits()
        self.backend = backend
        # Where the workspace appears to the command: the bwrap mount point, or the directory
        # itself for the unisolated local backend.
        name = backend or os.environ.get(BACKEND_ENV_VAR) or DEFAULT_BACKEND
        self.inside = str(workdir) if name == "local" else WORKSPACE_PATH
        # A layer over a built tree is mounted as an overlay, with its git directory; files the
        # command creates (reports) land in the layer's own directory, `workdir`.
        self.view, self.git_mounts = sandbox_view(workdir)

    def run(self, script: str, env: dict[str, str] | None = None) -> ExecResult:
        return run(
            ["bash", "-c", script],
            workdir=self.view,
            env=env,
            timeout=self.spec.timeout_seconds,
            limits=self.limits,
            mounts=(*self.mounts, *self.git_mounts),
            backend=self.backend,
        )


def run_check(
    spec: CheckSpec,
    *,
    workdir: Path,
    mounts: Sequence[Mount] = (),
    limits: Limits | None = None,
    backend: str | None = None,
) -> CheckOutcome:
    """Run `spec` in the sandbox with `workdir` as the workspace. `mounts` should carry the
    tools venv (`marlin.sandbox.tools.tools_mount`) for pytest, ruff and bandit."""
    started = time.monotonic()
    context = _Context(spec, Path(workdir).resolve(), mounts, limits, backend)
    try:
        outcome = _RUNNERS[spec.kind](context)
    except SandboxError as exc:
        outcome = CheckOutcome(status="error", detail=f"the sandbox could not run the check: {exc}")
    except PatchRejected as exc:
        outcome = CheckOutcome(status="error", detail=f"the test patch was rejected: {exc}")
    except (GitError, WorkspaceError) as exc:
        outcome = CheckOutcome(status="error", detail=f"the workspace could not be read: {exc}")
    outcome.duration = time.monotonic() - started
    outcome.limits = {**context.limits.as_dict(), "timeout_seconds": spec.timeout_seconds}
    return outcome


def _run_command(context: _Context) -> CheckOutcome:
    result, tests, problem = _run_with_junit(context, context.spec.command)
    outcome = _from_exec(result, tests)
    if outcome.status == "passed":
        outcome.detail = f"exit 0; {_summary(outcome)}"
    elif outcome.status == "failed":
        failing = [t.name for t in tests if t.outcome in ("failed", "error")]
        outcome.detail = f"exit {result.returncode}; {_summary(outcome)}"
        if failing:
            outcome.detail += "; failing: " + ", ".join(failing[:20])
        if result.killed_reason:
            outcome.detail += f"; killed: {result.killed_reason}"
    if problem:
        outcome.detail += f" ({problem})"
    return outcome


def _run_hidden_tests(context: _Context) -> CheckOutcome:
    spec = context.spec
    if spec.test_patch.strip():
        _reset_and_apply_test_patch(context)
    wanted = [*spec.fail_to_pass, *spec.pass_to_pass]
    missing: list[str] = []
    to_run = list(wanted)
    # pytest runs nothing when one argument names no test, so a listed id that does not exist
    # would hide every other result: run again without the ids pytest said it could not find
    # (one rerun per missing file at most, as pytest stops at the first missing file).
    for _ in range(MAX_NOT_FOUND_RERUNS + 1):
        command = _with_tests(spec.command, pytest_args(to_run))
        result, tests, problem = _run_with_junit(context, command)
        if tests or result.timed_out or result.returncode != PYTEST_USAGE_ERROR:
            break
        gone = not_found(result.stdout + "\n" + result.stderr, to_run, context.inside)
        if not gone:
            break
        missing += gone
        to_run = [t for t in to_run if t not in gone]
        if not to_run:
            break
    outcome = _from_exec(result, tests)
    if outcome.status == "timed_out":
        return outcome
    outcome.required = required_tests(spec.fail_to_pass, spec.pass_to_pass, tests, missing)
    if not tests and len(missing) < len(wanted):
        why = problem or f"exit {result.returncode}: {_tail(result)}"
        if result.returncode == 0:
            # Success without a report means the command is not pytest: a spec mistake.
            outcome.status = "error"
            outcome.detail = (
                f"the command wrote no test report, so the listed tests cannot be checked "
                f"({why}); hidden tests need pytest"
            )
        else:
            outcome.status = "failed"
            outcome.detail = f"none of the required tests ran ({why})"
        return outcome
    not_passing = [f"{r.id} ({r.group}: {r.status})" for r in outcome.required if not r.ok]
    outcome.status = "failed" if not_passing else "passed"
    outcome.detail = f"{len(wanted) - len(not_passing)} of {len(wanted)} required tests passed" + (
        "; not passing: " + ", ".join(not_passing[:20]) if not_passing else ""
    )
    return outcome


def _with_tests(command: str, test_ids: Sequence[str]) -> str:
    quoted = " ".join(shlex.quote(t) for t in test_ids)
    return command.replace("{tests}", quoted) if "{tests}" in command else f"{command} {quoted}"


def _reset_and_apply_test_patch(context: _Context) -> list[str]:
    """Reset the files the test patch touches to the base commit, then apply it: the candidate
    may have edited or added the very test files (and conftest.py files) the patch brings, and
    like SWE-bench the hidden tests must be the author's. Returns the paths reset."""
    test_patch = context.spec.test_patch
    touched = sorted({p for f in parse_patch_headers(test_patch) for p in f.paths})
    restore_paths(context.workdir, read_marker(context.workdir).commit, touched)
    apply_patch(context.workdir, test_patch)
    return touched


def _run_swebench(context: _Context) -> CheckOutcome:
    """Run the spec's test command on the test patch's files and grade the log with the
    official harness's code (marlin.grading.swebench)."""
    if swebench.MISSING:
        return CheckOutcome(status="error", detail=swebench.MISSING)
    spec = context.spec
    if spec.test_patch.strip():
        _reset_and_apply_test_patch(context)
    directives = spec.test_directives or swebench.test_directives(spec.repo, spec.test_patch)
    reports = _reports_dir(context)
    name = f"swebench-{uuid.uuid4().hex[:12]}.log"
    script = swebench.eval_script(
        spec.command,
        [shlex.quote(d) for d in directives],
        shlex.quote(f"{context.inside}/{REPORT_DIR}/{name}"),
    )
    result = context.run(script)
    log, problem = _read_report(reports / name)
    raw = log + ("\n" if log and result.stderr else "") + result.stderr
    if result.timed_out:
        return CheckOutcome(status="timed_out", log=_cap_text(raw), detail="timed out")
    if problem:
        return CheckOutcome(status="error", log=_cap_text(raw), detail=problem)
    graded = swebench.grade(
        log,
        instance_id=spec.instance_id,
        repo=spec.repo,
        version=spec.version,
        log_parser=spec.log_parser,
        fail_to_pass=spec.fail_to_pass,
        pass_to_pass=spec.pass_to_pass,
    )
    tests = [
        TestResult(name=test, outcome=_SWEBENCH_OUTCOMES.get(status, "error"))
        for test, status in graded.status_map.items()
    ]
    outcome = _from_exec(result, tests)
    outcome.log = _cap_text(raw)
    outcome.status = "passed" if graded.resolved else "failed"
    for group, ids in (("FAIL_TO_PASS", spec.fail_to_pass), ("PASS_TO_PASS", spec.pass_to_pass)):
        succeeded = set(graded.report.get(group, {}).get("success", []))
        outcome.required += [
            RequiredTest(
                id=test_id,
                group=group,
                status=swebench.listed_status(test_id, graded.status_map),
                ok=test_id in succeeded,
            )
            for test_id in ids
        ]
    if not graded.found:
        why = f"; the harness names the environment: {graded.infra_failure}" * bool(
            graded.infra_failure
        )
        outcome.detail = (
            f"not resolved: the harness found no test results in the log (exit "
            f"{result.returncode}){why}"
        )
        return outcome
    not_ok = [f"{r.id} ({r.group}: {r.status})" for r in outcome.required if not r.ok]
    wanted = len(outcome.required)
    outcome.detail = (
        f"{'resolved' if graded.resolved else 'not resolved'}: {wanted - len(not_ok)} of "
        f"{wanted} listed tests as required"
        + ("; not as required: " + ", ".join(not_ok[:20]) if not_ok else "")
    )
    return outcome


# The harness's test statuses as Marlin's test outcomes (an expected failure passes).
_SWEBENCH_OUTCOMES: dict[str, TestOutcome] = {
    "PASSED": "passed",
    "XFAIL": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
}


def _reports_dir(context: _Context) -> Path:
    reports = context.workdir / REPORT_DIR
    if reports.is_symlink() or (reports.exists() and not reports.is_dir()):
        reports.unlink()  # planted by the agent; the report must land inside the workspace
    reports.mkdir(exist_ok=True)
    return reports


def _read_report(path: Path) -> tuple[str, str]:
    """A report the command wrote, and a problem when it cannot be trusted or read."""
    try:
        if path.is_symlink():
            return "", "the test log was replaced by a symlink and was ignored"
        if not path.is_file():
            return "", "the test command wrote no log"
        if path.stat().st_size > MAX_REPORT_BYTES:
            return "", f"the test log is larger than {MAX_REPORT_BYTES // 2**20} MiB"
        return path.read_bytes().decode("utf-8", errors="replace"), ""
    finally:
        path.unlink(missing_ok=True)


def _run_lint(context: _Context) -> CheckOutcome:
    targets = _targets(context, python_only=True)
    if not targets:
        return CheckOutcome(status="passed", detail="no changed Python files to lint")
    script = shlex.join(
        [
            "ruff",
            "check",
            "--output-format",
            "json",
            "--exit-zero",
            "--no-cache",
            "--extend-exclude",
            ",".join(SCAN_EXCLUDE_DIRS),
            "--",
            *targets,
        ]
    )
    result = context.run(script)
    if result.timed_out:
        return _from_exec(result, [])
    if result.returncode != 0:
        return _error(result, f"ruff failed (exit {result.returncode})")
    return _from_findings(context, result, parse_ruff, set_blocking=None)


def _run_security(context: _Context) -> CheckOutcome:
    targets = _targets(context, python_only=True)
    if not targets:
        return CheckOutcome(status="passed", detail="no changed Python files to scan")
    # bandit matches excludes against whole paths, so bare directory names need globs.
    excludes = ",".join(f"*/{name}/*" for name in SCAN_EXCLUDE_DIRS)
    bandit = shlex.join(["bandit", "-f", "json", "-q", "-x", excludes, "-r", "--", *targets])
    # bandit exits 1 when it finds issues, so its report, not its exit code, is the answer.
    result = context.run(f"{bandit}; status=$?; [ $status -le 1 ] || exit $status")
    if result.timed_out:
        return _from_exec(result, [])
    if result.returncode != 0:
        return _error(result, f"bandit failed (exit {result.returncode})")
    outcome = _from_findings(context, result, parse_bandit, set_blocking=BLOCKING_SEVERITIES)
    semgrep = _run_semgrep(context, targets)
    if semgrep is not None:
        outcome.findings += semgrep
        if any(f.severity in BLOCKING_SEVERITIES for f in semgrep) and outcome.status == "passed":
            outcome.status = "failed"
        outcome.detail += f"; semgrep: {len(semgrep)} findings"
    return outcome


def _run_semgrep(context: _Context, targets: list[str]) -> list[Finding] | None:
    """semgrep runs only where it is installed in the sandbox and the repository has its own
    rules (.semgrep.yml): its registry rules would need the network, which checks do not get."""
    if visible_file(context.workdir, ".semgrep.yml") is None:
        return None
    scan = shlex.join(
        [
            "semgrep",
            "scan",
            "--json",
            "--quiet",
            "--metrics=off",
            "--disable-version-check",
            "--config",
            ".semgrep.yml",
            "--",
            *targets,
        ]
    )
    result = context.run(f"command -v semgrep >/dev/null || exit 127; {scan}")
    if result.returncode == 127:
        return None
    try:
        return _relative_findings(context, parse_semgrep(result.stdout))
    except ParseError:
        return None


def _run_with_junit(context: _Context, command: str) -> tuple[ExecResult, list[TestResult], str]:
    reports = context.workdir / REPORT_DIR
    if reports.is_symlink() or (reports.exists() and not reports.is_dir()):
        reports.unlink()  # planted by the agent; the report must land inside the workspace
    reports.mkdir(exist_ok=True)
    name = f"junit-{uuid.uuid4().hex[:12]}.xml"
    addopts = (
        f"--junitxml={context.inside}/{REPORT_DIR}/{name} -o junit_family=xunit1 "
        "-p no:cacheprovider"
    )
    result = context.run(command, env={"PYTEST_ADDOPTS": addopts})
    report = reports / name
    tests: list[TestResult] = []
    problem = ""
    try:
        if report.is_symlink():
            problem = "the JUnit report was replaced by a symlink and was ignored"
        elif report.is_file() and report.stat().st_size > MAX_REPORT_BYTES:
            problem = f"the JUnit report is larger than {MAX_REPORT_BYTES // 2**20} MiB"
        elif report.is_file():
            tests = parse_junit(report.read_bytes())
    except ParseError as exc:
        problem = str(exc)
    finally:
        report.unlink(missing_ok=True)
    return result, tests, problem


def _targets(context: _Context, *, python_only: bool) -> list[str]:
    if context.spec.paths:
        return list(context.spec.paths)
    try:
        base = read_marker(context.workdir).commit
    except WorkspaceError:
        return ["."]  # not one of our workspaces: nothing to compare with, scan everything
    files = changed_files(context.workdir, base)
    return [f for f in files if not python_only or f.endswith((".py", ".pyi"))]


def _from_exec(result: ExecResult, tests: list[TestResult]) -> CheckOutcome:
    if result.timed_out:
        status = "timed_out"
    else:
        status = "passed" if result.returncode == 0 and result.killed_reason is None else "failed"
    outcome = CheckOutcome(status=status, tests=tests, log=_log(result))
    for test in tests:
        key = {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}
        setattr(outcome, key[test.outcome], getattr(outcome, key[test.outcome]) + 1)
    if result.timed_out:
        outcome.detail = f"timed out; {_summary(outcome)} before it was stopped"
    return outcome


def _from_findings(
    context: _Context,
    result: ExecResult,
    parser: Callable[[str], list[Finding]],
    *,
    set_blocking: frozenset[str] | None,
) -> CheckOutcome:
    try:
        findings = _relative_findings(context, parser(result.stdout))
    except ParseError as exc:
        return _error(result, str(exc))
    blocking = [f for f in findings if set_blocking is None or f.severity in set_blocking]
    counts = ", ".join(
        f"{n} {sev}"
        for sev in ("high", "medium", "low", "warning", "error")
        if (n := sum(f.severity == sev for f in findings))
    )
    return CheckOutcome(
        status="failed" if blocking else "passed",
        findings=findings,
        log=_log(result),
        detail=f"{len(findings)} findings" + (f" ({counts})" if counts else ""),
    )


def _relative_findings(context: _Context, findings: list[Finding]) -> list[Finding]:
    prefix = str(context.workdir) + "/"
    for finding in findings:
        if finding.path.startswith(prefix):
            finding.path = finding.path[len(prefix) :]
    return findings


def _error(result: ExecResult, reason: str) -> CheckOutcome:
    return CheckOutcome(status="error", log=_log(result), detail=f"{reason}: {_tail(result)}")


def _tail(result: ExecResult) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-500:]


def _summary(outcome: CheckOutcome) -> str:
    if not outcome.tests:
        return "no per-test report"
    return (
        f"{outcome.passed} passed, {outcome.failed} failed, {outcome.errors} errors, "
        f"{outcome.skipped} skipped"
    )


def _log(result: ExecResult) -> str:
    return _cap_text(
        result.stdout + ("\n" if result.stdout and result.stderr else "") + result.stderr
    )


def _cap_text(text: str) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES:
        return text
    cut = len(data) - LOG_HEAD_BYTES - LOG_TAIL_BYTES
    head = data[:LOG_HEAD_BYTES].decode("utf-8", errors="ignore")
    tail = data[-LOG_TAIL_BYTES:].decode("utf-8", errors="ignore")
    return f"{head}\n[... {cut} bytes cut ...]\n{tail}"


_RUNNERS: dict[str, Callable[[_Context], CheckOutcome]] = {
    "command": _run_command,
    "hidden-tests": _run_hidden_tests,
    "swebench": _run_swebench,
    "lint": _run_lint,
    "security": _run_security,
}
