"""Changes to agents, runs and turns. Each do_* runs in one transaction and writes one audit
event; runs and turns are worked on by the run_turn job (jobs.py), enqueued when the
transaction commits.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from marlin.accounts.models import User
from marlin.agents.forms import SettingsError, validate_agent_settings
from marlin.agents.jobs import run_turn  # jobs imports this module's neighbours
from marlin.agents.models import Agent, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.audit.actions import record
from marlin.errors import IllegalTransition
from marlin.permissions import require_role
from marlin.tasks.models import Project, Task, TaskStatus

AGENT_FIELDS = ["name", "version_label", "provider", "settings", "description", "is_active"]


def _agent_values(agent: Agent) -> dict[str, Any]:
    return {name: getattr(agent, name) for name in AGENT_FIELDS}


def _clean_settings(provider: str, settings: Any) -> dict[str, Any]:
    try:
        return validate_agent_settings(provider, settings)
    except SettingsError as exc:
        raise ValidationError(str(exc)) from None


# Settings that say where the key is or how requests are retried, not what the agent does.
OPERATIONAL_SETTINGS = {
    "api_key_env",
    "api_key_file",
    "timeout_s",
    "max_attempts",
    "backoff_base_s",
    "backoff_max_s",
}


def _behaviour_changes(agent: Agent, provider: str, settings: dict[str, Any]) -> list[str]:
    changed = ["provider"] if provider != agent.provider else []
    names = (set(settings) | set(agent.settings)) - OPERATIONAL_SETTINGS
    changed += sorted(n for n in names if settings.get(n) != agent.settings.get(n))
    return changed


@transaction.atomic
def do_create_agent(
    actor: User,
    *,
    name: str,
    provider: str,
    settings: dict[str, Any],
    version_label: str = "1",
    description: str = "",
    is_active: bool = True,
) -> Agent:
    require_role(actor, "author")
    agent = Agent(
        name=name.strip(),
        version_label=version_label.strip() or "1",
        provider=provider,
        settings=_clean_settings(provider, settings),
        description=description,
        is_active=is_active,
        created_by=actor,
    )
    agent.full_clean()
    agent.save()
    record(actor, "agent.create", agent, new=_agent_values(agent))
    return agent


@transaction.atomic
def do_update_agent(
    actor: User, agent: Agent, changes: dict[str, Any], *, reason: str = ""
) -> Agent:
    require_role(actor, "author")
    unknown = set(changes) - set(AGENT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown agent field(s): {', '.join(sorted(unknown))}")
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    old = _agent_values(agent)
    provider = changes.get("provider", agent.provider)
    if "settings" in changes or "provider" in changes:
        changes = {
            **changes,
            "settings": _clean_settings(provider, changes.get("settings", agent.settings)),
        }
    if agent.runs.exists():
        # Runs already made by this definition must keep meaning what they meant: only where
        # the key is and how requests are retried may change; anything else is a new version.
        behaviour = _behaviour_changes(agent, provider, changes.get("settings", agent.settings))
        if behaviour:
            raise IllegalTransition(
                f"{agent} already has runs, so {', '.join(behaviour)} cannot change; "
                "create a new version of the agent instead."
            )
    changed = {name: value for name, value in changes.items() if old[name] != value}
    if not changed:
        return agent
    for name, value in changed.items():
        setattr(agent, name, value)
    agent.full_clean()
    agent.save(update_fields=list(changed))
    record(
        actor, "agent.update", agent, old={k: old[k] for k in changed}, new=changed, reason=reason
    )
    return agent


@transaction.atomic
def do_set_agent_pool(
    actor: User, project: Project, agents: list[Agent], *, reason: str = ""
) -> Project:
    require_role(actor, "admin")
    project = Project.objects.select_for_update().get(pk=project.pk)
    old = sorted(project.agent_pool.values_list("pk", flat=True))
    new = sorted(agent.pk for agent in agents)
    imported = [str(a) for a in agents if a.provider == Provider.IMPORT]
    if imported:
        raise ValidationError(
            "Import agents cannot be in a pool (they only label imported candidates): "
            f"{', '.join(imported)}."
        )
    if old == new:
        return project
    project.agent_pool.set(agents)
    record(
        actor,
        "project.agent_pool",
        project,
        old={"agents": old},
        new={"agents": new},
        reason=reason,
    )
    return project


def _enqueue_turn(turn: Turn) -> None:

    turn_id = turn.pk
    transaction.on_commit(lambda: run_turn.enqueue(turn_id))


def create_run(actor: User, task: Task, agent: Agent, *, partner: Run | None = None) -> Run:
    """A run with turn 1 queued (inside the caller's transaction; no audit event of its own)."""
    if task.status == TaskStatus.RETIRED:
        raise IllegalTransition("The task is retired; agents cannot be run on it.")
    if not agent.is_active:
        raise IllegalTransition(f"{agent} is not active.")
    if agent.provider == Provider.IMPORT:
        raise IllegalTransition(
            f"{agent} is an import label; its candidates come from `marlin import predictions`."
        )
    run = Run.objects.create(
        task=task, agent=agent, status=RunStatus.QUEUED, created_by=actor, partner=partner
    )
    turn = Turn.objects.create(run=run, number=1, prompt=task.prompt, requested_by=actor)
    _enqueue_turn(turn)
    return run


@transaction.atomic
def do_start_run(actor: User, task: Task, agent: Agent) -> Run:
    require_role(actor, "author")
    run = create_run(actor, task, agent)
    record(
        actor,
        "run.start",
        run,
        new={"task": task.pk, "agent": str(agent)},
        project_id=task.project_id,
    )
    return run


def link_partners(first: Run, second: Run) -> None:
    first.partner = second
    second.partner = first
    first.save(update_fields=["partner"])
    second.save(update_fields=["partner"])


# Blind: says that a side cannot continue, never which agent it is.
CANNOT_CONTINUE = (
    "Follow-ups are not available on this comparison: at least one side is a result imported "
    "from a file (a fixed patch, not an agent that runs), so it cannot answer a new prompt. "
    "Judge the turn shown."
)


def follow_up_refusal(run_ids: list[int]) -> str:
    """Why these runs cannot take a follow-up turn ("" when they can): an imported candidate
    has no agent behind it to continue the conversation."""
    imported = Run.objects.filter(pk__in=run_ids, agent__provider=Provider.IMPORT).exists()
    return CANNOT_CONTINUE if imported else ""


# `comparison` is a review.Comparison; agents sit below review, so it is not named here.
@transaction.atomic
def do_start_follow_up(actor: User, comparison: Any, prompt: str) -> list[Turn]:
    """Turn N+1 on both runs of the comparison, in the same conversation and workspace."""
    require_role(actor, "annotator")
    refusal = follow_up_refusal([comparison.run_a_id, comparison.run_b_id])
    if refusal:
        raise IllegalTransition(refusal)
    prompt = (prompt or "").strip()
    if not prompt:
        raise ValidationError("Write the follow-up prompt: what both agents should do next.")
    runs = list(
        Run.objects.select_for_update()
        .filter(pk__in=[comparison.run_a_id, comparison.run_b_id])
        .order_by("pk")
    )
    turns: list[Turn] = []
    for run in runs:
        last = run.turns.order_by("-number").first()
        if last is None or last.status != TurnStatus.DONE:
            state = "has no turn" if last is None else f"turn {last.number} is {last.status}"
            # Blinded users see this message: name no agent, only that a side is not ready.
            raise IllegalTransition(
                f"Both sides must have finished before a follow-up; one {state}."
            )
        turns.append(Turn(run=run, number=last.number + 1, prompt=prompt, requested_by=actor))
    try:
        for turn in turns:
            turn.save()
    except IntegrityError:
        raise IllegalTransition(
            "A follow-up was just started on this comparison; reload the page."
        ) from None
    for run, turn in zip(runs, turns, strict=True):
        run.status = RunStatus.QUEUED
        run.error = ""
        run.save(update_fields=["status", "error"])
        _enqueue_turn(turn)
    record(
        actor,
        "comparison.follow_up",
        comparison,
        new={"prompt": prompt, "turn": turns[0].number},
        project_id=comparison.project_id,
    )
    return turns


@transaction.atomic
def do_retry_turn(actor: User, turn: Turn) -> Turn:
    """Queue a failed turn again (after fixing a key or a mirror, for example)."""
    require_role(actor, "author")
    turn = Turn.objects.select_for_update().select_related("run").get(pk=turn.pk)
    if turn.status != TurnStatus.FAILED:
        raise IllegalTransition(f"Only a failed turn can be retried; this one is {turn.status}.")
    old = {"status": turn.status, "error": turn.error}
    turn.status = TurnStatus.QUEUED
    turn.error = ""
    turn.save(update_fields=["status", "error"])
    Run.objects.filter(pk=turn.run_id).update(status=RunStatus.QUEUED, error="")
    _enqueue_turn(turn)
    record(
        actor,
        "turn.retry",
        turn,
        old=old,
        new={"status": turn.status},
        project_id=turn.run.task.project_id,
    )
    return turn
