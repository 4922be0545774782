"""Database rows to export rows. Decisions are read in chunks with their related rows fetched in
bulk per chunk, so a 100,000-comparison export makes a few queries per chunk, not per row."""

from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from psycopg.abc import Buffer
from psycopg.adapt import Loader

from marlin.accounts.models import User
from marlin.agents.models import Agent, Candidate, Run, Turn
from marlin.analytics.queries import DecisionFilters, criterion_keys, decisions_for
from marlin.catalog.models import Repository
from marlin.checks.models import CheckResult
from marlin.review.models import Decision, Judgment, JudgmentStatus, Review
from marlin.tasks.models import Project, RubricVersion, Task, TaskStatus
from marlin.tasks.rubric import OVERALL_KEY

CHUNK = 2000
CHECK_FIELDS = ("name", "kind", "status", "passed", "failed", "errors", "skipped")
EXPERT_JUDGMENTS = (JudgmentStatus.SUBMITTED, JudgmentStatus.ACCEPTED, JudgmentStatus.REJECTED)


def repository_reference(repository: Repository) -> str:
    """How an export names a repository: its URL, or the name of a local one, whose URL is a
    path on this server and must not leave it in a dataset."""
    return repository.name if repository.is_local else repository.url


def system_message(task: Task) -> str:
    repo = task.repository
    where = repo.name if repo.is_local else f"{repo.name} ({repo.url})"
    return (
        f"You are working in the git repository {where} at commit "
        f"{task.base_commit}. Make the change the user asks for and answer with the patch "
        "(a unified diff against that commit)."
    )


def prompt_messages(task: Task | dict[str, Any], follow_ups: list[str]) -> list[dict[str, str]]:
    if isinstance(task, Task):
        task = {"prompt": task.prompt, "system": system_message(task)}
    messages = [
        {"role": "system", "content": task["system"]},
        {"role": "user", "content": task["prompt"]},
    ]
    messages += [{"role": "user", "content": text} for text in follow_ups]
    return messages


def _message(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {"role": "assistant", "content": str(raw)}
    content = raw.get("content")
    text = (
        content
        if isinstance(content, str)
        else json.dumps(content, ensure_ascii=False, default=str)
    )
    if raw.get("tool_calls"):
        text += "\n" + json.dumps(
            {"tool_calls": raw["tool_calls"]}, ensure_ascii=False, default=str
        )
    return {"role": str(raw.get("role", "assistant")), "content": text}


def continuation(conversation: list[Any], patch: str) -> list[dict[str, str]]:
    """The agent's side of a conversation (everything after the first user message), then the
    final patch as the last assistant message, so the rows stay comparable to patch-only ones."""
    return agent_messages(conversation) + [{"role": "assistant", "content": patch}]


def agent_messages(conversation: list[Any]) -> list[dict[str, str]]:
    """continuation() without the final patch message."""
    messages = [_message(m) for m in conversation or []]
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), -1)
    return messages[first_user + 1 :]


# Decisions are read as plain values, not model instances: building ~11 model objects per
# decision dominated the export time (see docs/benchmarks.md).
DECISION_FIELDS = (
    "pk",
    "overall",
    "ratings",
    "rationale",
    "source",
    "decided_at",
    "rubric_version_id",
    "decided_by_id",
    "comparison_id",
    "comparison__public_id",
    "comparison__turn_count",
    "comparison__task_id",
    "comparison__run_a_id",
    "comparison__run_b_id",
    "comparison__run_a__agent_id",
    "comparison__run_b__agent_id",
)


class Lookups:
    """Small tables (agents, rubric versions, users) read once; tasks read per chunk."""

    def __init__(self) -> None:
        self.agents = {
            pk: (name, version)
            for pk, name, version in Agent.objects.values_list("pk", "name", "version_label")
        }
        self.versions = {
            pk: (name, number)
            for pk, name, number in RubricVersion.objects.values_list(
                "pk", "rubric__name", "number"
            )
        }
        self._pseudonyms: dict[int, str] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self._prompts: dict[int, list[dict[str, str]]] = {}

    def prompt(self, task_id: int) -> list[dict[str, str]]:
        """prompt_messages of a loaded task without follow-ups, built once per task."""
        messages = self._prompts.get(task_id)
        if messages is None:
            messages = self._prompts[task_id] = prompt_messages(self.tasks[task_id], [])
        return messages

    def pseudonyms(self, user_ids: Iterable[int]) -> dict[int, str]:
        missing = {pk for pk in user_ids if pk is not None and pk not in self._pseudonyms}
        if not missing:
            return self._pseudonyms
        for pk, joined in User.objects.filter(pk__in=missing).values_list("pk", "date_joined"):
            self._pseudonyms[pk] = User(pk=pk, date_joined=joined).pseudonym
        return self._pseudonyms

    def load_tasks(self, task_ids: Iterable[int]) -> None:
        missing = {pk for pk in task_ids if pk not in self.tasks}
        for task in Task.objects.filter(pk__in=missing).select_related("repository"):
            self.tasks[task.pk] = {
                "prompt": task.prompt,
                "system": system_message(task),
                "external_id": task.external_id,
                "kind": task.kind,
                "repository": repository_reference(task.repository),
                "base_commit": task.base_commit,
                "instance_id": instance_id(task),
            }


@dataclass
class Chunk:
    """Related rows for one chunk of decisions, fetched in bulk."""

    # run id -> (candidate id, patch as UTF-8 bytes) of its latest turn: the export writes the
    # patch bytes as they came from the database (see writers.json_string_bytes).
    patches: dict[int, tuple[int, bytes]]
    checks: dict[int, list[dict[str, Any]]]  # candidate id -> check summaries (shared lists)
    follow_ups: dict[int, list[str]]  # run id -> prompts of turns 2..n
    experts: dict[int, list[str]]  # comparison id -> pseudonyms of the judging experts
    rationales: dict[int, list[str]]  # comparison id -> their rationales, same order
    conversations: dict[int, list[Any]]  # run id -> conversation (only when asked for)


def _load_chunk(
    decisions: list[dict[str, Any]], lookups: Lookups, *, conversations: bool = False
) -> Chunk:
    run_ids = [r for d in decisions for r in (d["comparison__run_a_id"], d["comparison__run_b_id"])]
    lookups.load_tasks(d["comparison__task_id"] for d in decisions)
    # Related rows by raw SQL over the chunk's integer ids: the ORM prepares every value of a
    # 4,000-id IN list one by one, which was a third of the export's time (docs/benchmarks.md).
    # One pass over the chunk's turns finds each run's latest candidate (without its text) and
    # the prompts of turns 2..n; then only those patches are read (a multi-turn run's earlier
    # patches never leave the database).
    latest: dict[int, int] = {}
    follow_ups: dict[int, list[str]] = defaultdict(list)
    for run_id, candidate_id, prompt in _select_in(
        "SELECT t.run_id, c.id, CASE WHEN t.number > 1 THEN t.prompt END "
        "FROM {turn} t LEFT JOIN {candidate} c ON c.turn_id = t.id "
        "WHERE t.run_id IN ({ids}) ORDER BY t.number",
        run_ids,
    ):
        if candidate_id is not None:
            latest[run_id] = candidate_id  # later turns overwrite: the latest wins
        if prompt is not None:
            follow_ups[run_id].append(prompt)
    texts = dict(
        _select_in(
            "SELECT id, {patch_bytes} FROM {candidate} WHERE id IN ({ids})",
            latest.values(),
            text_as_bytes=True,
        )
    )
    patches = {run_id: (pk, texts[pk]) for run_id, pk in latest.items()}
    check_rows: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for candidate_id, *values in _select_in(
        "SELECT candidate_id, name, kind, status, passed, failed, errors, skipped "
        "FROM {check} WHERE candidate_id IN ({ids}) ORDER BY check_index",
        [c for c, _ in patches.values()],
    ):
        check_rows[candidate_id].append(tuple(values))
    # Candidates with the same check results share one list, so the writers encode it once.
    check_lists: dict[tuple[tuple[Any, ...], ...], list[dict[str, Any]]] = {}
    checks: dict[int, list[dict[str, Any]]] = {}
    for candidate_id, rows in check_rows.items():
        key = tuple(rows)
        found = check_lists.get(key)
        if found is None:
            found = check_lists[key] = [dict(zip(CHECK_FIELDS, row, strict=True)) for row in rows]
        checks[candidate_id] = found
    judged = [
        (comparison_id, who, rationale)
        for comparison_id, who, rationale, status in _select_in(
            "SELECT comparison_id, annotator_id, rationale, status FROM {judgment} "
            "WHERE comparison_id IN ({ids}) ORDER BY id",
            [d["comparison_id"] for d in decisions],
        )
        if status in EXPERT_JUDGMENTS
    ]
    names = lookups.pseudonyms(
        [who for _, who, _ in judged] + [d["decided_by_id"] for d in decisions]
    )
    experts: dict[int, list[str]] = defaultdict(list)
    rationales: dict[int, list[str]] = defaultdict(list)
    for comparison_id, who, rationale in judged:
        experts[comparison_id].append(names[who])
        rationales[comparison_id].append(rationale)
    for lists in (experts, rationales):
        _one_object_per_value(lists)
    convs = (
        dict(Run.objects.filter(pk__in=run_ids).values_list("pk", "conversation"))
        if conversations
        else {}
    )
    return Chunk(patches, checks, follow_ups, experts, rationales, convs)


def _one_object_per_value(lists: dict[int, list[str]]) -> None:
    """Equal lists of strings become one object, so the writers encode each once per batch."""
    seen: dict[tuple[str, ...], list[str]] = {}
    for key, value in lists.items():
        lists[key] = seen.setdefault(tuple(value), value)


class _Utf8Bytes(Loader):
    """Text columns as the UTF-8 bytes PostgreSQL sent, not decoded into str."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _select_in(
    sql: str, ids: Iterable[int], *, text_as_bytes: bool = False
) -> list[tuple[Any, ...]]:
    """Rows of ``sql``, whose ``IN ({ids})`` becomes one placeholder per id (``= ANY`` of one
    array parameter on PostgreSQL) and whose ``{candidate}``, ``{turn}``, ``{check}`` and
    ``{judgment}`` become those models' quoted table names; the ids (integers) are bound as
    parameters, nothing from a user reaches the text. With ``text_as_bytes`` text columns come
    back as UTF-8 bytes, and ``{patch_bytes}`` names the candidate's patch as such."""
    values = [int(i) for i in ids]
    if not values:
        return []
    params: list[Any]
    postgres = connection.vendor == "postgresql"
    if postgres:
        # One array parameter: psycopg's client-side binding splits the query text at every
        # placeholder, and 4,000 of them per query were a fifth of the export's CPU. The array
        # goes as its text form (integers only) because psycopg's list dumper checks every item
        # in Python.
        sql = sql.replace("IN ({ids})", "= ANY(%s::bigint[])")
        placeholders, params = "", ["{" + ",".join(map(str, values)) + "}"]
    else:
        placeholders, params = ", ".join(["%s"] * len(values)), values
    tables = {
        name: connection.ops.quote_name(model._meta.db_table)
        for name, model in (
            ("candidate", Candidate),
            ("turn", Turn),
            ("check", CheckResult),
            ("judgment", Judgment),
        )
    }
    patch_bytes = "patch" if postgres else "CAST(patch AS BLOB)"
    with connection.cursor() as cursor:
        if text_as_bytes and postgres:
            cursor.cursor.adapters.register_loader("text", _Utf8Bytes)
        cursor.execute(sql.format(ids=placeholders, patch_bytes=patch_bytes, **tables), params)
        return list(cursor.fetchall())


def chunked(
    qs: QuerySet[Decision], size: int = CHUNK, *, as_text: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Decisions as plain values in id order, in lists of ``size``: one query, streamed (a
    server-side cursor on PostgreSQL, fetchmany on SQLite), so memory holds one chunk whatever
    the export's size. With ``as_text`` the ratings and the decision time come as the
    database's text ("ratings_text", "decided_at_text"): decoding 100,000 JSON objects and
    timestamps through Django's converters was a tenth of the export's time, and the ratings
    repeat."""
    fields: tuple[str, ...] = DECISION_FIELDS
    texts: dict[str, Cast] = {}
    if as_text:
        fields = tuple(f for f in DECISION_FIELDS if f not in ("ratings", "decided_at"))
        texts = {
            "ratings_text": Cast("ratings", output_field=TextField()),
            "decided_at_text": Cast("decided_at", output_field=TextField()),
        }
    rows = qs.order_by("pk").values(*fields, **texts).iterator(chunk_size=size)
    while batch := list(itertools.islice(rows, size)):
        yield batch


def preference_decisions(project: Project, filters: DecisionFilters) -> QuerySet[Decision]:
    return decisions_for(project, filters)


# The preference-pair columns, in the order of the rows and of their JSON objects; the
# layout and its types are writers.PREFERENCE_SCHEMA.
PREFERENCE_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "margin",
    "criteria",
    "rationale",
    "rubric",
    "rubric_version",
    "chosen_side",
    "chosen_agent",
    "chosen_agent_version",
    "rejected_agent",
    "rejected_agent_version",
    "chosen_checks",
    "rejected_checks",
    "experts",
    "expert_rationales",
    "decided_by",
    "decision_source",
    "decided_at",
    "comparison_id",
    "task_id",
    "task_external_id",
    "task_kind",
    "repository",
    "base_commit",
    "turns",
    "turn",
)


def preference_batch(
    decisions: list[dict[str, Any]],
    chunk: Chunk,
    lookups: Lookups,
    keys: list[str],
    *,
    conversations: bool,
    criteria_lists: dict[tuple[str | None, int], list[dict[str, Any]]] | None = None,
) -> dict[str, list[Any]]:
    """One chunk's preference rows column by column (PREFERENCE_COLUMNS -> one value per row),
    from decisions read by ``chunked(..., as_text=True)``.

    Every column holds what the row's JSON holds, except "chosen" and "rejected": each value is
    ``(messages, patch)``, the agent's messages before the patch (empty without conversations)
    and the patch as UTF-8 bytes, so patches go from the database to the files without a
    round trip through str. Values that repeat (a task's prompt, a criteria list, a check
    list) are shared objects: read them, don't change them. ``criteria_lists`` caches the
    criteria per (ratings text, overall) across chunks."""
    criteria_lists = criteria_lists if criteria_lists is not None else {}
    tasks = lookups.tasks
    task_ids = [d["comparison__task_id"] for d in decisions]
    overall = [d["overall"] for d in decisions]
    a_chosen = [value < 0 for value in overall]
    pairs = [
        (d["comparison__run_a_id"], d["comparison__run_b_id"], d["comparison__run_a__agent_id"],
         d["comparison__run_b__agent_id"])
        for d in decisions
    ]  # fmt: skip
    # (run, agent) of the chosen and of the rejected side of each row.
    chosen = [
        (a, x) if first else (b, y) for (a, b, x, y), first in zip(pairs, a_chosen, strict=True)
    ]
    rejected = [
        (b, y) if first else (a, x) for (a, b, x, y), first in zip(pairs, a_chosen, strict=True)
    ]
    no_patch: tuple[int | None, bytes] = (None, b"")
    chosen_patches = [chunk.patches.get(run, no_patch) for run, _ in chosen]
    rejected_patches = [chunk.patches.get(run, no_patch) for run, _ in rejected]
    empty: list[Any] = []  # one shared empty list: the writers encode it once per batch
    if conversations:
        convs = chunk.conversations
        chosen_col = [
            (agent_messages(convs.get(run, [])), patch)
            for (run, _), (_, patch) in zip(chosen, chosen_patches, strict=True)
        ]
        rejected_col = [
            (agent_messages(convs.get(run, [])), patch)
            for (run, _), (_, patch) in zip(rejected, rejected_patches, strict=True)
        ]
    else:
        chosen_col = [(empty, patch) for _, patch in chosen_patches]
        rejected_col = [(empty, patch) for _, patch in rejected_patches]
    follow_ups = chunk.follow_ups
    prompts = [
        prompt_messages(tasks[task], follow_ups[run_a])
        if run_a in follow_ups
        else lookups.prompt(task)
        for task, (run_a, *_) in zip(task_ids, pairs, strict=True)
    ]
    criteria = []
    for d, value in zip(decisions, overall, strict=True):
        key = (d["ratings_text"], value)
        found = criteria_lists.get(key)
        if found is None:
            found = criteria_lists[key] = _criteria(key[0], value, keys)
        criteria.append(found)
    versions = [lookups.versions[d["rubric_version_id"]] for d in decisions]
    agents = lookups.agents
    chosen_agents = [agents[agent] for _, agent in chosen]
    rejected_agents = [agents[agent] for _, agent in rejected]
    checks = chunk.checks
    comparison_ids = [d["comparison_id"] for d in decisions]
    names = lookups.pseudonyms(())
    row_tasks = [tasks[task] for task in task_ids]
    turns = [d["comparison__turn_count"] for d in decisions]
    return {
        "prompt": prompts,
        "chosen": chosen_col,
        "rejected": rejected_col,
        "margin": [abs(value) for value in overall],
        "criteria": criteria,
        "rationale": [d["rationale"] for d in decisions],
        "rubric": [rubric for rubric, _ in versions],
        "rubric_version": [number for _, number in versions],
        "chosen_side": ["A" if first else "B" for first in a_chosen],
        "chosen_agent": [name for name, _ in chosen_agents],
        "chosen_agent_version": [version for _, version in chosen_agents],
        "rejected_agent": [name for name, _ in rejected_agents],
        "rejected_agent_version": [version for _, version in rejected_agents],
        "chosen_checks": [checks.get(pk, empty) if pk else empty for pk, _ in chosen_patches],
        "rejected_checks": [checks.get(pk, empty) if pk else empty for pk, _ in rejected_patches],
        "experts": [chunk.experts.get(pk, empty) for pk in comparison_ids],
        "expert_rationales": [chunk.rationales.get(pk, empty) for pk in comparison_ids],
        "decided_by": [
            names[d["decided_by_id"]] if d["decided_by_id"] else None for d in decisions
        ],
        "decision_source": [d["source"] for d in decisions],
        "decided_at": [_isoformat(d["decided_at_text"]) for d in decisions],
        "comparison_id": [d["comparison__public_id"] for d in decisions],
        "task_id": task_ids,
        "task_external_id": [task["external_id"] for task in row_tasks],
        "task_kind": [task["kind"] for task in row_tasks],
        "repository": [task["repository"] for task in row_tasks],
        "base_commit": [task["base_commit"] for task in row_tasks],
        "turns": turns,
        # The turn the decision and both patches are from: the last judged turn (experts judge
        # the comparison's newest turn; earlier turns' preferences are in judgments.jsonl).
        "turn": list(turns),
    }


def _criteria(ratings_text: str | None, overall: int, keys: list[str]) -> list[dict[str, Any]]:
    ratings = (json.loads(ratings_text) if ratings_text is not None else None) or {}
    # Ratings are on the A..B scale (negative prefers A); flip so positive prefers the chosen side.
    sign = -1 if overall < 0 else 1
    criteria = []
    for key in keys:
        value = overall if key == OVERALL_KEY else ratings.get(key)
        criteria.append(
            {"criterion": key, "preference": None if value is None else sign * int(value)}
        )
    return criteria


def _isoformat(text: str) -> str:
    """datetime.isoformat() of the aware UTC datetime Django reads from a DateTimeField, from
    the column's text (PostgreSQL's '2026-12-01 01:02:03.4+00' in the session's UTC, or
    SQLite's naive UTC '2026-12-01 01:02:03.400000')."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def preference_batches(
    project: Project,
    filters: DecisionFilters,
    *,
    conversations: bool = False,
    counts: dict[str, Any] | None = None,
) -> Iterator[dict[str, list[Any]]]:
    """The decided, non-tied comparisons as preference_batch columns, a chunk at a time. Ties
    are counted in `counts["ties_excluded"]`."""
    counts = counts if counts is not None else {}
    counts.setdefault("ties_excluded", 0)
    counts.setdefault("rubric_versions", {})
    keys = criterion_keys(project)
    lookups = Lookups()
    criteria_lists: dict[tuple[str | None, int], list[dict[str, Any]]] = {}
    for batch in chunked(preference_decisions(project, filters), as_text=True):
        chunk = _load_chunk(batch, lookups, conversations=conversations)
        counts["decisions_seen"] = counts.get("decisions_seen", 0) + len(batch)
        kept = [d for d in batch if d["overall"] != 0]
        counts["ties_excluded"] += len(batch) - len(kept)
        for version_id in dict.fromkeys(d["rubric_version_id"] for d in kept):
            rubric, number = lookups.versions[version_id]
            counts["rubric_versions"][f"{rubric} v{number}"] = {
                "rubric": rubric,
                "version": number,
                "rubric_version_id": version_id,
            }
        if kept:
            yield preference_batch(
                kept,
                chunk,
                lookups,
                keys,
                conversations=conversations,
                criteria_lists=criteria_lists,
            )


def preference_rows(
    project: Project,
    filters: DecisionFilters,
    *,
    conversations: bool = False,
    counts: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """One row (a dict in the files' layout) per decided, non-tied comparison; ties are counted
    in `counts["ties_excluded"]`. The export job writes preference_batches directly; this is
    the same data a row at a time."""
    for columns in preference_batches(project, filters, conversations=conversations, counts=counts):
        for values in zip(*columns.values(), strict=True):
            row = dict(zip(PREFERENCE_COLUMNS, values, strict=True))
            for side in ("chosen", "rejected"):
                messages, patch = row[side]
                row[side] = [*messages, {"role": "assistant", "content": patch.decode()}]
            yield row


# --- records ----------------------------------------------------------------------------------


def record_judgments(project: Project, filters: DecisionFilters) -> QuerySet[Judgment]:
    """Every judgment that left the draft stage, voided and sent-back ones included (records are
    the full history; statistics use judgments_for, which keeps only the counted ones)."""
    qs = Judgment.objects.filter(comparison__project=project).exclude(status=JudgmentStatus.DRAFT)
    if filters.task_kind:
        qs = qs.filter(comparison__task__kind=filters.task_kind)
    if filters.agents:
        qs = qs.filter(
            comparison__run_a__agent_id__in=filters.agents,
            comparison__run_b__agent_id__in=filters.agents,
        )
    if filters.since:
        qs = qs.filter(submitted_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(submitted_at__date__lte=filters.until)
    return qs


def judgment_records(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    qs = record_judgments(project, filters).select_related(
        "annotator", "comparison", "rubric_version__rubric"
    )
    for j in qs.order_by("pk").iterator(chunk_size=CHUNK):
        yield {
            "type": "judgment",
            "judgment_id": j.pk,
            "comparison_id": j.comparison.public_id,
            "expert": j.annotator.pseudonym,
            "status": j.status,
            "overall": j.overall,
            "ratings": j.ratings,
            "rationale": j.rationale,
            "confidence": j.confidence,
            "comments": j.comments,
            "turn_notes": j.turn_notes,
            "turn_judged": j.turn_judged,
            "turn_verdicts": j.turn_verdicts,
            "rubric": j.rubric_version.rubric.name,
            "rubric_version": j.rubric_version.number,
            "active_seconds": j.active_seconds,
            "wall_seconds": j.wall_seconds,
            "started_at": j.started_at.isoformat(),
            "submitted_at": j.submitted_at.isoformat() if j.submitted_at else None,
        }


def review_records(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    qs = Review.objects.filter(judgment__in=record_judgments(project, filters)).select_related(
        "reviewer", "judgment__comparison", "rubric_version"
    )
    for r in qs.order_by("pk").iterator(chunk_size=CHUNK):
        yield {
            "type": "review",
            "review_id": r.pk,
            "judgment_id": r.judgment_id,
            "comparison_id": r.judgment.comparison.public_id,
            "reviewer": r.reviewer.pseudonym,
            "verdict": r.verdict,
            "per_criterion": r.per_criterion,
            "reason": r.reason,
            "active_seconds": r.active_seconds,
            "rubric_version": r.rubric_version.number if r.rubric_version else None,
            "superseded_at": r.superseded_at.isoformat() if r.superseded_at else None,
            "created_at": r.created_at.isoformat(),
        }


def decision_records(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    qs = decisions_for(project, filters).select_related(
        "comparison__run_a__agent",
        "comparison__run_b__agent",
        "rubric_version__rubric",
        "decided_by",
    )
    for d in qs.order_by("pk").iterator(chunk_size=CHUNK):
        c = d.comparison
        yield {
            "type": "decision",
            "decision_id": d.pk,
            "comparison_id": c.public_id,
            "task_id": c.task_id,
            "agent_a": str(c.run_a.agent),
            "agent_b": str(c.run_b.agent),
            "source": d.source,
            "overall": d.overall,
            "ratings": d.ratings,
            "rationale": d.rationale,
            "rubric": d.rubric_version.rubric.name,
            "rubric_version": d.rubric_version.number,
            "decided_by": d.decided_by.pseudonym if d.decided_by else None,
            "decided_at": d.decided_at.isoformat(),
            "active_seconds": d.active_seconds,
        }


# --- predictions and tasks --------------------------------------------------------------------


def instance_id(task: Task) -> str:
    return task.external_id or f"marlin-task-{task.pk}"


def model_name(name: str, version_label: str) -> str:
    return f"{name}@{version_label}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "agent"


def prediction_rows(
    project: Project, filters: DecisionFilters, counts: dict[str, Any]
) -> dict[str, list[dict[str, str]]]:
    """model name -> SWE-bench predictions of its winning candidates, one per instance (the
    latest decision wins when an agent won the same task twice)."""
    per_model: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    counts.setdefault("ties_excluded", 0)
    counts.setdefault("duplicates_replaced", 0)
    lookups = Lookups()
    for batch in chunked(preference_decisions(project, filters)):
        chunk = _load_chunk(batch, lookups)
        for d in sorted(batch, key=lambda x: x["decided_at"]):
            if d["overall"] == 0:
                counts["ties_excluded"] += 1
                continue
            side = "a" if d["overall"] < 0 else "b"
            run_id, agent_id = (
                d[f"comparison__run_{side}_id"],
                d[f"comparison__run_{side}__agent_id"],
            )
            if run_id not in chunk.patches:
                continue
            name = model_name(*lookups.agents[agent_id])
            iid = lookups.tasks[d["comparison__task_id"]]["instance_id"]
            if iid in per_model[name]:
                counts["duplicates_replaced"] += 1
            per_model[name][iid] = {
                "instance_id": iid,
                "model_name_or_path": name,
                "model_patch": chunk.patches[run_id][1].decode(),
            }
    return {name: list(rows.values()) for name, rows in sorted(per_model.items())}


def task_rows(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    """Approved tasks as re-runnable specs (the format `marlin.exports.build.task_rows` documents
    in docs/api.md: repository url + commit + prompt + kind + setup + checks)."""
    qs = Task.objects.filter(project=project, status=TaskStatus.APPROVED).select_related(
        "repository"
    )
    if filters.task_kind:
        qs = qs.filter(kind=filters.task_kind)
    for t in qs.order_by("pk").iterator(chunk_size=CHUNK):
        yield {
            "instance_id": instance_id(t),
            "task_id": t.pk,
            "external_id": t.external_id,
            "title": t.title,
            "repo": t.repository.name,
            "repository_url": repository_reference(t.repository),
            "base_ref": t.base_ref,
            "base_commit": t.base_commit,
            "problem_statement": t.prompt,
            "kind": t.kind,
            "setup_command": t.setup_command,
            "environment_spec": t.environment_spec,
            "checks": t.checks,
            **swebench_test_fields(t.checks),
        }


def swebench_test_fields(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """A hidden-tests check as SWE-bench's test fields, so `marlin import swebench-tasks` can read
    the task set back with its hidden tests."""
    hidden = next((c for c in checks or [] if c.get("kind") == "hidden-tests"), None)
    if hidden is None:
        return {}
    return {
        "test_patch": hidden.get("test_patch", ""),
        "FAIL_TO_PASS": hidden.get("fail_to_pass", []),
        "PASS_TO_PASS": hidden.get("pass_to_pass", []),
    }
