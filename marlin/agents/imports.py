"""Imports of prediction files: each line's patch becomes a candidate of an import agent (named by
the line's model_name_or_path) on the task the line names, and goes on to its checks and
comparisons like a candidate an agent wrote. The file format and error reporting are those of
`marlin.tasks.imports`.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marlin.accounts.models import User
from marlin.agents.jobs import after_candidate, candidate_fields
from marlin.agents.models import Agent, Candidate, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.audit.actions import record
from marlin.diffs.parse import DiffParseError, parse_patch
from marlin.permissions import require_role
from marlin.tasks.imports import ImportReport, LineError, ProgressCallback, read_records, text_field
from marlin.tasks.models import Project


def _prediction(data: dict[str, Any]) -> tuple[str, str, str]:
    """(task reference, agent name, patch) of a SWE-bench prediction or a generic line."""
    ref = text_field(data, "instance_id", "external_id", "task_id")
    agent = text_field(data, "model_name_or_path", "agent")
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

    def __init__(self, actor: User, project: Project, version_label: str) -> None:
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
                f"agent {agent} exists and is not an import agent; "
                "import under another version label"
            )
        return agent


def do_import_predictions(
    actor: User,
    project: Project,
    text: str,
    *,
    version_label: str = "1",
    filename: str = "",
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Predictions -> one Run, a done Turn 1 and a Candidate each, for import agents named by
    model_name_or_path (created when new). Checks are queued for each new candidate."""
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
        # Handed on inside the import's transaction, as run_turn does inside the turn's: the
        # candidates, their check rows and comparisons commit together or not at all.
        for candidate in candidates:
            after_candidate(candidate)
    return report


def _import_prediction_line(
    actor: User,
    lookup: _Lookup,
    line_no: int,
    data: dict[str, Any],
    report: ImportReport,
    seen: dict[tuple[int, str], int],
) -> Any:
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
