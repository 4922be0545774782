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
from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from pydantic import ValidationError

from marlin.accounts.models import User
from marlin.audit.actions import record
from marlin.catalog.models import Repository
from marlin.catalog.validation import InvalidRepositoryURL, validate_url
from marlin.grading import swebench
from marlin.grading.spec import CheckSpec, EnvironmentSpec
from marlin.permissions import require_role
from marlin.sandbox.gitutil import GitError, run_git
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
    updated: int = 0
    # Per record, in the file's order (task imports): created / updated / skipped / error.
    lines: list[LineOutcome] = field(default_factory=list)

    def error(self, line_no: int, reason: str, raw: Any = "") -> None:
        text = raw if isinstance(raw, str) else json.dumps(raw)[:200]
        self.errors.append(LineError(line_no, reason, text[:200]))

    @property
    def summary(self) -> dict[str, int]:
        return {
            "records": self.records,
            "created": self.created,
            "updated": self.updated,
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

# Where a record without a problem_statement may carry its prompt (BugsInPy-style records carry
# only the fixing commit's subject).
PROMPT_FIELDS = ("prompt", "text", "issue", "description", "title", "fixed_commit_subject")


@dataclass(frozen=True)
class LineOutcome:
    """What became of one record of the file: created, updated, skipped or error."""

    line_no: int
    instance_id: str
    outcome: str
    reason: str = ""


def _task_fields(
    record: dict[str, Any], test_command: str, setup: dict[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The Task fields of one SWE-bench record and the warnings to show on the task, or
    ValueError saying what is wrong."""
    warnings: list[str] = []
    instance_id = text_field(record, "instance_id")
    repo = text_field(record, "repo")
    base_commit = text_field(record, "base_commit").strip().lower()
    problem = text_field(record, "problem_statement")
    if not problem:
        for name in PROMPT_FIELDS:
            problem = text_field(record, name)
            if problem:
                warnings.append(
                    f"the record has no problem_statement; the prompt is its {name!r} field"
                )
                break
    missing = [
        n
        for n, v in [
            ("instance_id", instance_id),
            ("repo", repo),
            ("base_commit", base_commit),
            ("problem_statement (nor any of " + ", ".join(PROMPT_FIELDS) + ")", problem),
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
    version = text_field(record, "version")
    environment = swebench.environment_spec(repo, version) if version else None
    own = record.get("environment")
    if own is not None:
        # A record may carry its environment in Marlin's own spec format (any task, not only
        # SWE-bench instances); its test_cmd, when given, is the hidden tests' command.
        try:
            environment = EnvironmentSpec.model_validate(own)
        except ValidationError as exc:
            raise ValueError(
                "environment: " + "; ".join(str(e["msg"]) for e in exc.errors())
            ) from None
        if environment.test_cmd and test_command == DEFAULT_TEST_COMMAND:
            test_command = environment.test_cmd
    checks = []
    if test_patch or fail_to_pass:
        fields: dict[str, Any] = {
            "kind": "hidden-tests",
            "name": "hidden tests",
            "command": test_command,
            "test_patch": test_patch,
            "fail_to_pass": fail_to_pass,
            "pass_to_pass": pass_to_pass,
        }
        if own is None and environment is not None and environment.test_cmd and test_patch:
            # A SWE-bench instance: graded as the official harness grades it.
            fields.update(
                kind="swebench",
                name="SWE-bench tests",
                command=environment.test_cmd,
                instance_id=instance_id,
                repo=repo,
                version=version,
                log_parser=swebench.parser_for(repo),
            )
        try:
            spec = CheckSpec.model_validate(fields)
        except ValidationError as exc:
            raise ValueError("hidden tests: " + "; ".join(e["msg"] for e in exc.errors())) from None
        checks.append(spec.model_dump(mode="json"))
    elif version and environment is None:
        warnings.append(f"no SWE-bench environment spec for {repo} version {version}")
    first_line = next((line.strip() for line in problem.splitlines() if line.strip()), "")
    fields = {
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
    if environment is not None:
        fields["environment_spec"] = environment.model_dump(exclude_defaults=True)
        fields["_setup_commit"] = text_field(record, "environment_setup_commit") or base_commit
    return fields, warnings


def find_repository(name_or_url: str) -> Repository | None:
    """A registered repository by its id, name ("owner/name", as the catalog shows it) or URL
    (a local path too)."""
    text = name_or_url.strip()
    if text.isdigit():
        return Repository.objects.filter(pk=int(text)).first()
    found = Repository.objects.filter(name__iexact=text).order_by("pk").first()
    if found is not None:
        return found
    # Compared as text, never resolved: a look-up neither touches the network nor says what
    # exists on the server's disk.
    key = text.rstrip("/").removesuffix(".git")
    for scheme in ("https://", "http://", "ssh://", "git://", "file://"):
        key = key.removeprefix(scheme)
    return (
        Repository.objects.filter(
            Q(url=text) | Q(normalized_url__iexact=key) | Q(normalized_url=f"local:{key}")
        )
        .order_by("pk")
        .first()
    )


def matching_repository(repo: str) -> Repository | None:
    """The registered repository a record's owner/name means: the one of that name (a local
    mirror included), or whose URL ends in it (github.com/owner/name, /srv/git/owner/name.git),
    or a local mirror laid out as <owner>+<name>/repo; a mirrored one first."""
    joined = repo.replace("/", "+")
    candidates = [
        r
        for r in Repository.objects.filter(
            Q(name__iexact=repo)
            | Q(normalized_url__iendswith=f"/{repo}")
            | Q(normalized_url__iendswith=f"/{repo}.git")
            | Q(is_local=True, normalized_url__iendswith=f"/{joined}/repo")
            | Q(is_local=True, normalized_url__iendswith=f"/{joined}")
        ).order_by("pk")
    ]
    candidates.sort(key=lambda r: not r.is_mirrored)
    return candidates[0] if candidates else None


def _repository_for(
    repo: str, actor: User, cache: dict[str, Any], chosen: Repository | None
) -> tuple[Repository, str]:
    """The repository for a record's owner/name and a warning: the one chosen on the command
    line, else a registered one of that owner/name, else a new GitHub row (not mirrored)."""
    if chosen is not None:
        differs = chosen.name.lower() != repo.lower()
        return chosen, (f"the record names {repo}; imported into {chosen.name} as asked" * differs)
    if repo in cache:
        return cache[repo], ""
    repository = matching_repository(repo)
    warning = ""
    if repository is None:
        warning = (
            f"{repo} was not in the catalog: added as https://github.com/{repo}, not mirrored "
            "yet (or import with --repository to use a registered one)"
        )
        parsed = validate_url(f"https://github.com/{repo}")
        repository = Repository.objects.create(
            url=parsed.url,
            normalized_url=parsed.normalized,
            name=parsed.name,
            host=parsed.host,
            description="Added by a SWE-bench task import.",
            created_by=actor,
        )
    cache[repo] = repository
    return repository, warning


def _read_at(repository: Repository, commit: str) -> Callable[[str], str | None]:
    """Read files of the repository's mirror at a commit (None: no mirror, or no such file)."""

    def read(path: str) -> str | None:
        mirror = repository.mirror_path
        if not mirror or not Path(mirror).is_dir():
            return None
        try:
            data = run_git(["show", f"{commit}:{path}"], cwd=Path(mirror), isolated=True)
        except GitError:
            return None
        return data.decode("utf-8", errors="replace")

    return read


def id_warnings(
    test_ids: list[str], test_patch: str, read: Callable[[str], str | None]
) -> list[str]:
    """Listed test ids that look absent at the base commit with the test patch applied: their
    file is neither in the repository nor added by the patch, or no function or class of their
    name is defined in it (a test inherited from another file shows up here too, hence a
    warning, not an error)."""
    added: dict[str, str] = {}
    for section in re.split(r"^diff --git ", test_patch, flags=re.M)[1:]:
        header = section.split("\n", 1)[0]
        path = header.rsplit(" b/", 1)[-1].strip()
        added[path] = "\n".join(line[1:] for line in section.splitlines() if line.startswith("+"))
    warnings = []
    files: dict[str, str | None] = {}
    for test_id in test_ids:
        path, _, rest = test_id.partition("::")
        if path not in files:
            files[path] = read(path)
        text = (files[path] or "") + "\n" + added.get(path, "")
        if files[path] is None and path not in added:
            warnings.append(
                f"test id {test_id} does not exist in this repository: {path} is neither at "
                "the base commit nor added by the test patch"
            )
            continue
        name = rest.split("::")[-1].split("[", 1)[0] if rest else ""
        if name and not re.search(
            rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", text, re.M
        ):
            warnings.append(
                f"test id {test_id} may not exist in this repository: no function or class "
                f"{name} in {path} at the base commit with the test patch"
            )
    return warnings


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
    repository: Repository | None = None,
) -> ImportReport:
    """SWE-bench task records -> draft tasks (approved with ``approve``) with a swebench check
    (instances of a known repository and version) or a hidden-tests check. ``repository``, when
    given, is every record's repository; otherwise a registered repository of the record's
    owner/name is used. A record already imported into the project updates its task while that
    task is a draft no run has started from; otherwise it is skipped. ``report.lines`` says what
    became of each record, in the file's order.
    """
    require_role(actor, "author")
    if approve and not actor.has_role("admin", "reviewer"):
        raise PermissionDenied("Approving imported tasks needs the reviewer or admin role.")
    report = ImportReport()
    records = list(read_records(text, report))
    existing = {
        t.external_id: t for t in Task.objects.filter(project=project).exclude(external_id="")
    }
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
                repository,
            )
            if progress:
                progress(done, len(records))
        record(
            actor,
            "task.import",
            project,
            new={"file": filename, "format": report.format, **report.summary, "approved": approve},
        )
    errors = {e.line_no: e.reason for e in report.errors}
    done_lines = {line.line_no for line in report.lines}
    report.lines += [
        LineOutcome(n, "", "error", reason) for n, reason in errors.items() if n not in done_lines
    ]
    report.lines.sort(key=lambda line: line.line_no)
    return report


def _import_task_line(
    actor: User,
    project: Project,
    line_no: int,
    data: dict[str, Any],
    report: ImportReport,
    existing: dict[str, Task],
    seen: dict[str, int],
    repositories: dict[str, Any],
    approve: bool,
    test_command: str,
    setup: dict[str, str],
    chosen: Repository | None,
) -> None:
    instance_id = text_field(data, "instance_id")

    def error(reason: str) -> None:
        report.error(line_no, reason, data)
        report.lines.append(LineOutcome(line_no, instance_id, "error", reason))

    try:
        fields, warnings = _task_fields(data, test_command, setup)
    except ValueError as exc:
        error(str(exc))
        return
    instance_id = fields["external_id"]
    if instance_id in seen:
        error(f"duplicate instance_id {instance_id} (first on line {seen[instance_id]})")
        return
    seen[instance_id] = line_no
    current = existing.get(instance_id)
    if current is not None and (current.status != TaskStatus.DRAFT or current.runs.exists()):
        reason = (
            f"{instance_id} is already a task of this project, no longer a draft without runs, "
            "so it was left as it is"
        )
        report.skipped.append(LineError(line_no, reason))
        report.lines.append(LineOutcome(line_no, instance_id, "skipped", reason))
        return
    setup_commit = fields.pop("_setup_commit", "")
    try:
        with transaction.atomic():
            repository, warning = _repository_for(fields.pop("repo"), actor, repositories, chosen)
            if warning:
                warnings.append(warning)
            spec = fields.get("environment_spec") or {}
            if spec.get("packages") == "requirements.txt":
                requirements = swebench.requirements_text(
                    data["repo"], _read_at(repository, setup_commit)
                )
                if requirements is None:
                    warnings.append(
                        "the requirements file could not be read from the mirror at "
                        f"{setup_commit[:12]}; the environment is built without it (mirror the "
                        "repository and import again)"
                    )
                else:
                    spec["requirements"] = requirements
            listed = [
                i
                for c in fields["checks"]
                if c["kind"] == "hidden-tests"
                for i in [*c.get("fail_to_pass", []), *c.get("pass_to_pass", [])]
            ]
            if listed and repository.mirror_path:
                warnings += id_warnings(
                    listed,
                    next(c.get("test_patch", "") for c in fields["checks"]),
                    _read_at(repository, fields["base_commit"]),
                )
            fields["import_warnings"] = warnings
            if current is not None:
                # (Warnings alone, e.g. "added to the catalog" the first time, change nothing.)
                unchanged = current.repository_id == repository.pk and all(
                    getattr(current, name) == value
                    for name, value in fields.items()
                    if name != "import_warnings"
                )
                if unchanged:
                    reason = f"{instance_id} is already a task of this project, unchanged"
                    report.skipped.append(LineError(line_no, reason))
                    report.lines.append(LineOutcome(line_no, instance_id, "skipped", reason))
                    return
                for name, value in fields.items():
                    setattr(current, name, value)
                current.repository = repository
                task = current
            else:
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
        error(f"cannot be saved: {exc}")
        return
    except Exception as exc:  # a ValidationError from full_clean: say which field
        error(f"invalid task: {exc}")
        return
    outcome = "updated" if current is not None else "created"
    if current is None:
        report.created += 1
        report.created_ids.append(task.pk)
    else:
        report.updated += 1
    report.lines.append(LineOutcome(line_no, instance_id, outcome, "; ".join(warnings)))
