"""Database rows to export rows. Decisions are read in chunks with their related rows fetched in
bulk per chunk, so a 100,000-comparison export makes a few queries per chunk, not per row."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from marlin.agents.models import Candidate, CheckResult, Turn
from marlin.analytics.queries import DecisionFilters, criterion_keys, decisions_for
from marlin.review.models import Decision, Judgment, JudgmentStatus, Review
from marlin.tasks.models import Project, Task, TaskStatus
from marlin.tasks.rubric import OVERALL_KEY

CHUNK = 2000
EXPERT_JUDGMENTS = (JudgmentStatus.SUBMITTED, JudgmentStatus.ACCEPTED, JudgmentStatus.REJECTED)


def system_message(task: Task) -> str:
    repo = task.repository
    return (
        f"You are working in the git repository {repo.name} ({repo.url}) at commit "
        f"{task.base_commit}. Make the change the user asks for and answer with the patch "
        "(a unified diff against that commit)."
    )


def prompt_messages(task: Task, follow_ups: list[str]) -> list[dict[str, str]]:
    messages = [
        {"role": "system", "content": system_message(task)},
        {"role": "user", "content": task.prompt},
    ]
    messages += [{"role": "user", "content": text} for text in follow_ups]
    return messages


def _message(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {"role": "assistant", "content": str(raw)}
    content = raw.get("content")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
    if raw.get("tool_calls"):
        text += "\n" + json.dumps({"tool_calls": raw["tool_calls"]}, ensure_ascii=False, default=str)
    return {"role": str(raw.get("role", "assistant")), "content": text}


def continuation(conversation: list[Any], patch: str) -> list[dict[str, str]]:
    """The agent's side of a conversation (everything after the first user message), then the
    final patch as the last assistant message, so the rows stay comparable to patch-only ones."""
    messages = [_message(m) for m in conversation or []]
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), -1)
    return messages[first_user + 1 :] + [{"role": "assistant", "content": patch}]


def check_summary(results: Iterable[CheckResult | dict[str, Any]]) -> list[dict[str, Any]]:
    fields = ("name", "kind", "status", "passed", "failed", "errors", "skipped")
    out = []
    for r in results:
        out.append({f: (r[f] if isinstance(r, dict) else getattr(r, f)) for f in fields})
    return out


@dataclass
class Chunk:
    """Related rows for one chunk of decisions, fetched in bulk."""

    candidates: dict[int, Candidate]  # run id -> latest candidate
    checks: dict[int, list[dict[str, Any]]]  # candidate id -> check summaries
    follow_ups: dict[int, list[str]]  # run id -> prompts of turns 2..n
    experts: dict[int, list[str]]  # comparison id -> pseudonyms of the judging experts


def _load_chunk(decisions: list[Decision]) -> Chunk:
    run_ids = [r for d in decisions for r in (d.comparison.run_a_id, d.comparison.run_b_id)]
    candidates: dict[int, Candidate] = {}
    for candidate in (
        Candidate.objects.filter(turn__run_id__in=run_ids)
        .select_related("turn")
        .only("patch", "files_changed", "lines_added", "lines_removed", "turn__run_id", "turn__number")
        .order_by("turn__number")
    ):
        candidates[candidate.turn.run_id] = candidate  # later turns overwrite: the latest wins
    checks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        CheckResult.objects.filter(candidate_id__in=[c.pk for c in candidates.values()])
        .order_by("check_index")
        .values("candidate_id", "name", "kind", "status", "passed", "failed", "errors", "skipped")
    ):
        checks[row.pop("candidate_id")].append(row)
    follow_ups: dict[int, list[str]] = defaultdict(list)
    for run_id, prompt in (
        Turn.objects.filter(run_id__in=run_ids, number__gt=1).order_by("number").values_list("run_id", "prompt")
    ):
        follow_ups[run_id].append(prompt)
    experts: dict[int, list[str]] = defaultdict(list)
    for judgment in (
        Judgment.objects.filter(comparison_id__in=[d.comparison_id for d in decisions], status__in=EXPERT_JUDGMENTS)
        .select_related("annotator")
        .only("comparison", "annotator__id", "annotator__date_joined")
        .order_by("pk")
    ):
        experts[judgment.comparison_id].append(judgment.annotator.pseudonym)
    return Chunk(candidates, checks, follow_ups, experts)


def chunked(qs: QuerySet[Decision], size: int = CHUNK) -> Iterator[list[Decision]]:
    """Keyset pagination by primary key: stable and constant-cost per chunk."""
    last = 0
    while True:
        batch = list(qs.filter(pk__gt=last).order_by("pk")[:size])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


def preference_decisions(project: Project, filters: DecisionFilters) -> QuerySet[Decision]:
    return decisions_for(project, filters).select_related(
        "comparison__task__repository",
        "comparison__run_a__agent",
        "comparison__run_b__agent",
        "rubric_version__rubric",
        "decided_by",
    )


def preference_row(decision: Decision, chunk: Chunk, keys: list[str], *, conversations: bool) -> dict[str, Any]:
    comparison = decision.comparison
    task = comparison.task
    a_chosen = decision.overall < 0
    chosen_run, rejected_run = (comparison.run_a, comparison.run_b) if a_chosen else (comparison.run_b, comparison.run_a)
    chosen_c = chunk.candidates.get(chosen_run.pk)
    rejected_c = chunk.candidates.get(rejected_run.pk)
    chosen_patch = chosen_c.patch if chosen_c else ""
    rejected_patch = rejected_c.patch if rejected_c else ""
    if conversations:
        chosen = continuation(chosen_run.conversation, chosen_patch)
        rejected = continuation(rejected_run.conversation, rejected_patch)
    else:
        chosen = [{"role": "assistant", "content": chosen_patch}]
        rejected = [{"role": "assistant", "content": rejected_patch}]
    # Ratings are on the A..B scale (negative prefers A); flip so positive prefers the chosen side.
    sign = -1 if a_chosen else 1
    ratings = decision.ratings or {}
    criteria = []
    for key in keys:
        value = decision.overall if key == OVERALL_KEY else ratings.get(key)
        criteria.append({"criterion": key, "preference": None if value is None else sign * int(value)})
    return {
        "prompt": prompt_messages(task, chunk.follow_ups.get(comparison.run_a_id, [])),
        "chosen": chosen,
        "rejected": rejected,
        "margin": abs(decision.overall),
        "criteria": criteria,
        "rationale": decision.rationale,
        "rubric": decision.rubric_version.rubric.name,
        "rubric_version": decision.rubric_version.number,
        "chosen_side": "A" if a_chosen else "B",
        "chosen_agent": chosen_run.agent.name,
        "chosen_agent_version": chosen_run.agent.version_label,
        "rejected_agent": rejected_run.agent.name,
        "rejected_agent_version": rejected_run.agent.version_label,
        "chosen_checks": chunk.checks.get(chosen_c.pk, []) if chosen_c else [],
        "rejected_checks": chunk.checks.get(rejected_c.pk, []) if rejected_c else [],
        "experts": chunk.experts.get(comparison.pk, []),
        "decided_by": decision.decided_by.pseudonym if decision.decided_by else None,
        "decision_source": decision.source,
        "decided_at": decision.decided_at.isoformat(),
        "comparison_id": comparison.public_id,
        "task_id": task.pk,
        "task_external_id": task.external_id,
        "task_kind": task.kind,
        "repository": task.repository.url,
        "base_commit": task.base_commit,
        "turns": comparison.turn_count,
    }


def preference_rows(
    project: Project, filters: DecisionFilters, *, conversations: bool = False, counts: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """One row per decided, non-tied comparison. Ties are counted in `counts["ties_excluded"]`."""
    counts = counts if counts is not None else {}
    counts.setdefault("ties_excluded", 0)
    counts.setdefault("rubric_versions", {})
    keys = criterion_keys(project)
    for batch in chunked(preference_decisions(project, filters)):
        chunk = _load_chunk(batch)
        for decision in batch:
            counts["decisions_seen"] = counts.get("decisions_seen", 0) + 1
            if decision.overall == 0:
                counts["ties_excluded"] += 1
                continue
            version = decision.rubric_version
            counts["rubric_versions"][f"{version.rubric.name} v{version.number}"] = {
                "rubric_id": version.rubric_id, "version": version.number, "rubric_version_id": version.pk,
            }
            yield preference_row(decision, chunk, keys, conversations=conversations)


# --- records ----------------------------------------------------------------------------------


def record_judgments(project: Project, filters: DecisionFilters) -> QuerySet[Judgment]:
    """Every judgment that left the draft stage, voided and sent-back ones included (records are
    the full history; statistics use judgments_for, which keeps only the counted ones)."""
    qs = Judgment.objects.filter(comparison__project=project).exclude(status=JudgmentStatus.DRAFT)
    if filters.task_kind:
        qs = qs.filter(comparison__task__kind=filters.task_kind)
    if filters.agents:
        qs = qs.filter(comparison__run_a__agent_id__in=filters.agents, comparison__run_b__agent_id__in=filters.agents)
    if filters.since:
        qs = qs.filter(submitted_at__date__gte=filters.since)
    if filters.until:
        qs = qs.filter(submitted_at__date__lte=filters.until)
    return qs


def judgment_records(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    qs = record_judgments(project, filters).select_related("annotator", "comparison", "rubric_version__rubric")
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
    qs = preference_decisions(project, filters)
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


def model_name(agent: Any) -> str:
    return f"{agent.name}@{agent.version_label}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "agent"


def prediction_rows(project: Project, filters: DecisionFilters, counts: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """model name -> SWE-bench predictions of its winning candidates, one per instance (the
    latest decision wins when an agent won the same task twice)."""
    per_model: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    counts.setdefault("ties_excluded", 0)
    counts.setdefault("duplicates_replaced", 0)
    for batch in chunked(preference_decisions(project, filters)):
        chunk = _load_chunk(batch)
        for d in sorted(batch, key=lambda x: x.decided_at):
            if d.overall == 0:
                counts["ties_excluded"] += 1
                continue
            run = d.comparison.run_a if d.overall < 0 else d.comparison.run_b
            candidate = chunk.candidates.get(run.pk)
            if candidate is None:
                continue
            name, iid = model_name(run.agent), instance_id(d.comparison.task)
            if iid in per_model[name]:
                counts["duplicates_replaced"] += 1
            per_model[name][iid] = {"instance_id": iid, "model_name_or_path": name, "model_patch": candidate.patch}
    return {name: list(rows.values()) for name, rows in sorted(per_model.items())}


def task_rows(project: Project, filters: DecisionFilters) -> Iterator[dict[str, Any]]:
    """Approved tasks as re-runnable specs (the format `marlin.exports.build.task_rows` documents
    in docs/api.md: repository url + commit + prompt + kind + setup + checks)."""
    qs = Task.objects.filter(project=project, status=TaskStatus.APPROVED).select_related("repository")
    if filters.task_kind:
        qs = qs.filter(kind=filters.task_kind)
    for t in qs.order_by("pk").iterator(chunk_size=CHUNK):
        yield {
            "instance_id": instance_id(t),
            "task_id": t.pk,
            "external_id": t.external_id,
            "title": t.title,
            "repo": t.repository.name,
            "repository_url": t.repository.url,
            "base_ref": t.base_ref,
            "base_commit": t.base_commit,
            "problem_statement": t.prompt,
            "kind": t.kind,
            "setup_command": t.setup_command,
            "checks": t.checks,
        }
