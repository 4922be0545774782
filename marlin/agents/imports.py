"""Imports: SWE-bench task records into tasks, prediction files into candidates of import agents.

Files are a JSON list or JSON lines. Every bad record is reported with its line number and the
reason; the good ones are imported in one transaction, each record's rows all or nothing (a
savepoint per record), so a file is never half imported and a bad line never blocks the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from marlin.permissions import require_role
from marlin.audit.actions import record

ProgressCallback = Callable[[int, int], None]
DEFAULT_TEST_COMMAND = "python -m pytest -q"
_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


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
        if not isinstance(value, dict):
            report.error(line_no, f"expected a JSON object, got {type(value).__name__}", line)
            continue
        yield line_no, value


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
        if not isinstance(value, dict):
            report.error(line_no, f"expected a JSON object, got {type(value).__name__}", value)
            continue
        yield line_no, value


def _text(record: dict[str, Any], *names: str) -> str:
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
    from pydantic import ValidationError

    from marlin.grading.spec import CheckSpec

    instance_id = _text(record, "instance_id")
    repo = _text(record, "repo")
    base_commit = _text(record, "base_commit").strip().lower()
    problem = _text(record, "problem_statement")
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
    test_patch = _text(record, "test_patch")
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


def _repository_for(repo: str, actor: Any, cache: dict[str, Any]) -> Any:
    """Find the repository in the catalog by its GitHub URL, or add it (not mirrored)."""
    from marlin.catalog.models import Repository
    from marlin.catalog.validation import validate_url

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
    actor: Any,
    project: Any,
    text: str,
    *,
    approve: bool = False,
    test_command: str = DEFAULT_TEST_COMMAND,
    setup: dict[str, str] | None = None,
    filename: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """SWE-bench task records -> draft tasks (approved with ``approve``) with a hidden-tests check."""
    from marlin.tasks.models import Task

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
    actor: Any,
    project: Any,
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
    from marlin.catalog.validation import InvalidRepositoryURL
    from marlin.tasks.models import Task, TaskStatus

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


# --- Predictions --------------------------------------------------------------------------------


def _prediction(data: dict[str, Any]) -> tuple[str, str, str]:
    """(task reference, agent name, patch) of a SWE-bench prediction or a generic line."""
    ref = _text(data, "instance_id", "external_id", "task_id")
    agent = _text(data, "model_name_or_path", "agent")
    key = "model_patch" if "model_patch" in data else "patch"
    missing = [
        n
        for n, v in [
            ("instance_id or task_id", ref),
            ("model_name_or_path or agent", agent),
            ("model_patch or patch", key in data),
        ]
        if not v
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    patch = data[key] if data[key] is not None else ""  # null: the agent gave up, like ""
    if not isinstance(patch, str):
        raise ValueError(f"model_patch must be a string, got {type(patch).__name__}")
    return ref, agent[:100], patch


def _clean_patch(patch: str) -> str:
    """Leading blank lines are common in real prediction files and harmless; drop them."""
    from marlin.diffs.parse import DiffParseError, parse_patch

    patch = patch.lstrip("\r\n")
    if not patch.strip():
        raise ValueError("empty patch: the agent produced no change")
    if not patch.endswith("\n"):
        patch += "\n"
    try:
        files = parse_patch(patch)
    except DiffParseError as exc:
        raise ValueError(f"the patch does not parse: {exc}") from None
    if not files:
        raise ValueError("the patch changes no file")
    return patch


class _Lookup:
    """Tasks by external id or pk and import agents by name, loaded once per import."""

    def __init__(self, actor: Any, project: Any, version_label: str) -> None:
        from marlin.agents.models import Agent, Run

        self.actor, self.project, self.version_label = actor, project, version_label
        tasks = project.tasks.all()
        self.by_external = {t.external_id: t for t in tasks if t.external_id}
        self.by_pk = {str(t.pk): t for t in tasks}
        self.agents = {a.name: a for a in Agent.objects.filter(version_label=version_label)}
        self.done = set(
            Run.objects.filter(
                task__project=project, agent__provider="import", agent__version_label=version_label
            ).values_list("task_id", "agent__name")
        )

    def task(self, ref: str) -> Any:
        task = self.by_external.get(ref) or self.by_pk.get(ref)
        if task is None:
            raise ValueError(f"unknown instance id or task {ref!r} in project {self.project.name}")
        return task

    def agent(self, name: str) -> Any:
        from marlin.agents.models import Agent, Provider

        agent = self.agents.get(name)
        if agent is None:
            agent = Agent.objects.create(
                name=name,
                version_label=self.version_label,
                provider=Provider.IMPORT,
                settings={"source": "prediction import", "model_name_or_path": name},
                created_by=self.actor,
            )
            self.agents[name] = agent
        elif agent.provider != Provider.IMPORT:
            raise ValueError(
                f"agent {agent} exists and is not an import agent; import under another version label"
            )
        return agent


def do_import_predictions(
    actor: Any,
    project: Any,
    text: str,
    *,
    version_label: str = "1",
    filename: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Predictions -> one Run, a done Turn 1 and a Candidate each, for import agents named by
    model_name_or_path (created when new). Checks are queued for each new candidate."""
    from marlin.agents.jobs import after_candidate

    require_role(actor, "author")
    report = ImportReport()
    records = list(read_records(text, report))
    candidates = []
    with transaction.atomic():
        lookup = _Lookup(actor, project, version_label)
        seen: dict[tuple[int, str], int] = {}
        for done, (line_no, data) in enumerate(records, start=1):
            candidate = _import_prediction_line(actor, lookup, line_no, data, report, seen)
            if candidate is not None:
                candidates.append(candidate)
            if progress:
                progress(done, len(records))
        record(
            actor,
            "candidate.import",
            project,
            new={"file": filename, "format": report.format, **report.summary},
        )
        for candidate in candidates:
            after_candidate(candidate)
    return report


def _import_prediction_line(
    actor: Any,
    lookup: _Lookup,
    line_no: int,
    data: dict[str, Any],
    report: ImportReport,
    seen: dict[tuple[int, str], int],
) -> Any:
    from marlin.agents.jobs import candidate_fields
    from marlin.agents.models import Candidate, Run, RunStatus, Turn, TurnStatus

    try:
        ref, agent_name, raw_patch = _prediction(data)
        task = lookup.task(ref)
        patch = _clean_patch(raw_patch)
    except ValueError as exc:
        report.error(line_no, str(exc), data)
        return None
    key = (task.pk, agent_name)
    if key in seen:
        report.error(
            line_no, f"duplicate prediction of {agent_name} for {ref} (first on line {seen[key]})"
        )
        return None
    seen[key] = line_no
    if key in lookup.done:
        report.skipped.append(LineError(line_no, f"{agent_name} on {ref} was imported before"))
        return None
    now = timezone.now()
    known_agent = agent_name in lookup.agents
    try:
        with transaction.atomic():
            agent = lookup.agent(agent_name)
            run = Run.objects.create(
                task=task, agent=agent, status=RunStatus.WAITING, created_by=actor
            )
            turn = Turn.objects.create(
                run=run,
                number=1,
                prompt=task.prompt,
                status=TurnStatus.DONE,
                exit_status="imported",
                requested_by=actor,
                started_at=now,
                finished_at=now,
            )
            candidate = Candidate.objects.create(turn=turn, **candidate_fields(patch))
    except (ValueError, IntegrityError) as exc:
        if not known_agent:
            lookup.agents.pop(agent_name, None)  # created in the savepoint just rolled back
        report.error(line_no, str(exc), data)
        return None
    report.created += 1
    report.created_ids.append(candidate.pk)
    return candidate
