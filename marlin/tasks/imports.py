"""Imports of task records: SWE-bench instances (or records shaped like them) become draft tasks
with a hidden-tests check, and the record reading that every Marlin import shares.

Files are a JSON list or JSON lines. Every bad record is reported with its line number and the
reason; the good ones are imported in one transaction, each record's rows all or nothing (a
savepoint per record), so a file is never half imported and a bad line never blocks the rest.
A record holding a NUL or another control character (tab, line ends and form feed aside) is bad:
PostgreSQL cannot store NUL, and the others would reach terminals and logs as escape codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from pydantic import ValidationError

from marlin.accounts.models import User
from marlin.audit.actions import record
from marlin.catalog.models import Repository
from marlin.catalog.validation import InvalidRepositoryURL, validate_url
from marlin.grading.spec import CheckSpec
from marlin.permissions import require_role
from marlin.tasks.models import Project, Task, TaskStatus

# Called with (records done, records in all) as an import goes.
ProgressCallback = Callable[[int, int], None]
DEFAULT_TEST_COMMAND = "python -m pytest -q"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# C0 controls and DEL, except tab, line feed, form feed (found in source files) and carriage
# return.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class LineError:
    line_no: int
    reason: str
    raw: str = ""


@dataclass
class ImportReport:
    format: str = ""
    records: int = 0
    created: int = 0
    errors: list[LineError] = field(default_factory=list)
    skipped: list[LineError] = field(default_factory=list)  # already imported: not an error
    created_ids: list[int] = field(default_factory=list)

    def error(self, line_no: int, reason: str, raw: Any = "") -> None:
        text = raw if isinstance(raw, str) else json.dumps(raw)[:200]
        self.errors.append(LineError(line_no, reason, text[:200]))

    @property
    def summary(self) -> dict[str, int]:
        return {
            "records": self.records,
            "created": self.created,
            "errors": len(self.errors),
            "skipped": len(self.skipped),
        }


def read_records(text: str, report: ImportReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each record of a JSON list or JSON lines file; problems
    go to ``report``."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        report.format = "json"
        yield from _json_list(text, report)
        return
    report.format = "jsonl"
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        report.records += 1
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            report.error(line_no, f"malformed JSON: {exc.msg} at column {exc.colno}", line)
            continue
        except RecursionError:
            report.error(line_no, "the JSON nests too deeply to be a record")
            continue
        if not isinstance(value, dict):
            report.error(line_no, f"expected a JSON object, got {type(value).__name__}", line)
            continue
        problem = control_character_problem(value)
        if problem:
            report.error(line_no, problem)
            continue
        yield line_no, value


def control_character_problem(record: dict[str, Any]) -> str:
    """Which field of a record holds a character that must not be imported, and which one:
    "problem_statement contains a NUL character (U+0000); remove it"; "" when none does. A loop,
    not recursion: JSON nests as deep as the parser allows."""
    pending: list[tuple[str, Any]] = [("", record)]
    while pending:
        field, value = pending.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                pending += [("a field name", str(key)), (str(key), item)]
        elif isinstance(value, list):
            pending += [(field, item) for item in value]
        elif isinstance(value, str):
            found = _CONTROL.search(value)
            if found is not None:
                char = found.group()
                what = (
                    "a NUL character (U+0000)"
                    if char == "\x00"
                    else f"the control character U+{ord(char):04X}"
                )
                return f"{field} contains {what}; remove it"
    return ""


def _json_list(text: str, report: ImportReport) -> Iterator[tuple[int, dict[str, Any]]]:
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    line_no, counted_to = 1, 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            report.error(line_no, "the JSON list is not closed with ']'")
            return
        if text[position] == "]":
            return
        line_no += text.count("\n", counted_to, position)
        counted_to = position
        report.records += 1
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            # Inside a list one broken record hides where the next begins: stop here.
            report.error(exc.lineno, f"malformed JSON: {exc.msg}; records after it were not read")
            return
        except RecursionError:
            report.error(line_no, "the JSON nests too deeply; records after it were not read")
            return
        if not isinstance(value, dict):
            report.error(line_no, f"expected a JSON object, got {type(value).__name__}", value)
            continue
        problem = control_character_problem(value)
        if problem:
            report.error(line_no, problem)
            continue
        yield line_no, value


def text_field(record: dict[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return ""


def _test_ids(value: Any, name: str) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{name} is a string but not a JSON list of test ids") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of test ids")
    return value


# --- SWE-bench tasks ---------------------------------------------------------------------------


def _task_fields(
    record: dict[str, Any], test_command: str, setup: dict[str, str]
) -> dict[str, Any]:
    """The Task fields of one SWE-bench record, or ValueError saying what is wrong."""
    instance_id = text_field(record, "instance_id")
    repo = text_field(record, "repo")
    base_commit = text_field(record, "base_commit").strip().lower()
    problem = text_field(record, "problem_statement")
    missing = [
        n
        for n, v in [
            ("instance_id", instance_id),
            ("repo", repo),
            ("base_commit", base_commit),
            ("problem_statement", problem),
        ]
        if not v
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if not _REPO.match(repo):
        raise ValueError(f"repo {repo!r} is not owner/name")
    if not _SHA.match(base_commit):
        raise ValueError(f"base_commit {base_commit!r} is not a full 40-character commit SHA")
    fail_to_pass = _test_ids(record.get("FAIL_TO_PASS"), "FAIL_TO_PASS")
    pass_to_pass = _test_ids(record.get("PASS_TO_PASS"), "PASS_TO_PASS")
    test_patch = text_field(record, "test_patch")
    checks = []
    if test_patch or fail_to_pass:
        try:
            spec = CheckSpec(
                kind="hidden-tests",
                name="hidden tests",
                command=test_command,
                test_patch=test_patch,
                fail_to_pass=fail_to_pass,
                pass_to_pass=pass_to_pass,
            )
        except ValidationError as exc:
            raise ValueError("hidden tests: " + "; ".join(e["msg"] for e in exc.errors())) from None
        checks.append(spec.model_dump(mode="json"))
    first_line = next((line.strip() for line in problem.splitlines() if line.strip()), "")
    return {
        "repo": repo,
        "base_ref": base_commit,
        "base_commit": base_commit,
        "title": f"{instance_id}: {first_line}"[:200],
        "prompt": problem,
        "kind": "bug_fix",
        "setup_command": setup.get(instance_id, ""),
        "checks": checks,
        "external_id": instance_id[:200],
        "source": "swebench",
    }


def _repository_for(repo: str, actor: User, cache: dict[str, Any]) -> Any:
    """Find the repository in the catalog by its GitHub URL, or add it (not mirrored)."""
    if repo in cache:
        return cache[repo]
    parsed = validate_url(f"https://github.com/{repo}")
    repository = Repository.objects.filter(normalized_url=parsed.normalized).first()
    if repository is None:
        repository = Repository.objects.create(
            url=parsed.url,
            normalized_url=parsed.normalized,
            name=parsed.name,
            host=parsed.host,
            description="Added by a SWE-bench task import.",
            created_by=actor,
        )
    cache[repo] = repository
    return repository


def do_import_swebench_tasks(
    actor: User,
    project: Project,
    text: str,
    *,
    approve: bool = False,
    test_command: str = DEFAULT_TEST_COMMAND,
    setup: dict[str, str] | None = None,
    filename: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """SWE-bench task records -> draft tasks (approved with ``approve``) with a hidden-tests
    check.
    """
    require_role(actor, "author")
    if approve and not actor.has_role("admin", "reviewer"):
        raise PermissionDenied("Approving imported tasks needs the reviewer or admin role.")
    report = ImportReport()
    records = list(read_records(text, report))
    existing = set(
        Task.objects.filter(project=project)
        .exclude(external_id="")
        .values_list("external_id", flat=True)
    )
    seen: dict[str, int] = {}
    repositories: dict[str, Any] = {}
    with transaction.atomic():
        for done, (line_no, data) in enumerate(records, start=1):
            _import_task_line(
                actor,
                project,
                line_no,
                data,
                report,
                existing,
                seen,
                repositories,
                approve,
                test_command,
                setup or {},
            )
            if progress:
                progress(done, len(records))
        record(
            actor,
            "task.import",
            project,
            new={"file": filename, "format": report.format, **report.summary, "approved": approve},
        )
    return report


def _import_task_line(
    actor: User,
    project: Project,
    line_no: int,
    data: dict[str, Any],
    report: ImportReport,
    existing: set[str],
    seen: dict[str, int],
    repositories: dict[str, Any],
    approve: bool,
    test_command: str,
    setup: dict[str, str],
) -> None:
    try:
        fields = _task_fields(data, test_command, setup)
    except ValueError as exc:
        report.error(line_no, str(exc), data)
        return
    instance_id = fields["external_id"]
    if instance_id in seen:
        report.error(
            line_no, f"duplicate instance_id {instance_id} (first on line {seen[instance_id]})"
        )
        return
    seen[instance_id] = line_no
    if instance_id in existing:
        report.skipped.append(
            LineError(line_no, f"{instance_id} is already a task of this project")
        )
        return
    try:
        with transaction.atomic():
            repository = _repository_for(fields.pop("repo"), actor, repositories)
            task = Task(
                project=project,
                repository=repository,
                created_by=actor,
                status=TaskStatus.APPROVED if approve else TaskStatus.DRAFT,
                **fields,
            )
            task.full_clean(validate_unique=False)
            task.save()
    except (InvalidRepositoryURL, IntegrityError) as exc:
        report.error(line_no, f"cannot be saved: {exc}")
        return
    except Exception as exc:  # a ValidationError from full_clean: say which field
        report.error(line_no, f"invalid task: {exc}")
        return
    report.created += 1
    report.created_ids.append(task.pk)
