"""What a check is (CheckSpec, authored with a task) and what running it found (CheckOutcome).

Both are pydantic models so that the JSON columns holding them are validated on the way in and
out; the messages are written for the task author who typed the spec.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CheckKind = Literal["command", "hidden-tests", "swebench", "lint", "security"]
# Kinds that apply a test patch and grade listed FAIL_TO_PASS / PASS_TO_PASS tests.
TEST_KINDS = ("hidden-tests", "swebench")
CheckStatus = Literal["passed", "failed", "error", "timed_out"]
TestOutcome = Literal["passed", "failed", "error", "skipped"]

MAX_TIMEOUT_SECONDS = 6 * 3600


class CheckSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CheckKind
    name: str = Field(min_length=1, max_length=100)
    # A bash command line, run inside the sandbox with the workspace as its directory.
    command: str = ""
    test_patch: str = ""
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_pass: list[str] = Field(default_factory=list)
    timeout_seconds: int = 600
    # For lint and security: what to scan. Empty means the files the candidate changed.
    paths: list[str] = Field(default_factory=list)
    # For swebench: the instance (its repository picks the log parser; its version is
    # reported), the log parser by its name in swebench's PARSER_REGISTRY (empty: the
    # repository's own) and the test files passed to the command (empty: those of the test
    # patch, as the harness takes them).
    instance_id: str = ""
    repo: str = ""
    version: str = ""
    log_parser: str = ""
    test_directives: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_one_line(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ord(c) < 0x20 for c in value):
            raise ValueError("name must be one line of visible text, e.g. 'unit tests'")
        return value

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_TIMEOUT_SECONDS:
            raise ValueError(
                f"timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}, got {value}"
            )
        return value

    @field_validator("fail_to_pass", "pass_to_pass")
    @classmethod
    def _test_ids_are_single_lines(cls, value: list[str]) -> list[str]:
        for test_id in value:
            if not test_id.strip() or any(ord(c) < 0x20 for c in test_id):
                raise ValueError(
                    f"test id {test_id!r} must be one non-empty line, e.g. "
                    "'tests/test_calc.py::test_adds'"
                )
        return value

    @field_validator("paths")
    @classmethod
    def _paths_stay_in_the_workspace(cls, value: list[str]) -> list[str]:
        for path in value:
            parts = path.split("/")
            if not path or path.startswith(("/", "-")) or ".." in parts or "\0" in path:
                raise ValueError(
                    f"path {path!r} must be relative to the repository, without '..' and not "
                    "starting with '-', e.g. 'src/'"
                )
        return value

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> CheckSpec:
        if self.kind in ("command", *TEST_KINDS) and not self.command.strip():
            raise ValueError(f"a {self.kind} check needs a command, e.g. 'python -m pytest -q'")
        if self.kind == "hidden-tests" and not self.fail_to_pass:
            raise ValueError(
                "a hidden-tests check needs at least one fail_to_pass test id: a test that "
                "fails before the change and must pass after it"
            )
        if self.kind not in TEST_KINDS and (
            self.test_patch or self.fail_to_pass or self.pass_to_pass
        ):
            raise ValueError(
                "test_patch, fail_to_pass and pass_to_pass belong to hidden-tests and swebench "
                "checks only"
            )
        if self.kind == "swebench" and not (self.test_patch.strip() or self.test_directives):
            raise ValueError(
                "a swebench check needs a test_patch (its test files are what the command "
                "runs) or test_directives"
            )
        if self.kind != "swebench" and (
            self.instance_id or self.repo or self.version or self.log_parser or self.test_directives
        ):
            raise ValueError(
                "instance_id, repo, version, log_parser and test_directives belong to swebench "
                "checks only"
            )
        if self.kind in ("lint", "security") and self.command.strip():
            raise ValueError(
                f"a {self.kind} check runs a fixed tool; use a command check for a custom command"
            )
        return self


class EnvironmentSpec(BaseModel):
    """How to build a task's environment, for one (repository, version): the fields of a
    SWE-bench spec (MAP_REPO_VERSION_TO_SPECS), usable for any task. The setup runs
    `pre_install`, makes a venv on `python`, installs `packages` (a requirements text, or
    space-separated names), then `pip_packages`, then runs `install` in the checkout."""

    model_config = ConfigDict(extra="ignore")

    python: str = ""  # "3.9": the interpreter's version
    packages: str = ""  # "requirements.txt", "environment.yml" or package names
    requirements: str = ""  # the requirements text when packages is "requirements.txt"
    pip_packages: list[str] = Field(default_factory=list)
    pre_install: list[str] = Field(default_factory=list)
    install: str = ""
    test_cmd: str = ""
    eval_commands: list[str] = Field(default_factory=list)

    @field_validator("python")
    @classmethod
    def _python_is_a_version(cls, value: str) -> str:
        if value and not all(part.isdigit() for part in value.split(".")):
            raise ValueError(f"python must be a version such as '3.9', got {value!r}")
        return value


class TestResult(BaseModel):
    __test__ = False  # not a pytest test class, despite the name

    name: str
    outcome: TestOutcome
    message: str = ""


class RequiredTest(BaseModel):
    """One listed test id (FAIL_TO_PASS or PASS_TO_PASS) and what became of it."""

    __test__ = False

    id: str
    group: Literal["FAIL_TO_PASS", "PASS_TO_PASS"]
    # passed, failed, error, skipped, "not run", "does not exist" (see grading.testids)
    status: str
    ok: bool


class Finding(BaseModel):
    tool: str
    rule: str
    severity: str
    path: str
    line: int | None = None
    message: str = ""


class CheckOutcome(BaseModel):
    status: CheckStatus
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    tests: list[TestResult] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    required: list[RequiredTest] = Field(default_factory=list)
    log: str = ""
    duration: float = 0.0
    limits: dict[str, int | float | None] = Field(default_factory=dict)
    detail: str = ""
