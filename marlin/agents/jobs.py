"""The run_turn job: one turn of a run, from a claimed row to a Candidate.

Our rows are the truth, not the queue. A turn is claimed atomically (queued -> running, with its
start time as the claim token); the run holds a lease that every saved step extends, so a worker
that dies leaves a turn that ``recover_expired_runs`` queues again. A retried turn keeps the steps
the crashed attempt saved and starts from a workspace rebuilt from the last candidate.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.db.models import Max
from django.utils import timezone
from django_tasks import task

from marlin.agents.clis import (
    cli_env,
    cli_mounts,
    ensure_home,
    read_text,
    trajectory_path,
    turn_command,
    written_during,
)
from marlin.agents.command import CommandAgentResult, CommandAgentSpec, run_command_agent
from marlin.agents.fingerprints import find_fingerprints, scrub
from marlin.agents.forms import api_settings, command_settings
from marlin.agents.loop import AgentLimits, Step, run_agent
from marlin.agents.models import (
    Candidate,
    Provider,
    Run,
    RunStatus,
    TrajectoryStep,
    Turn,
    TurnStatus,
)
from marlin.agents.providers import ProviderError, ProviderSettings, load_model
from marlin.agents.secrets import SecretError, redact, resolve_api_key
from marlin.agents.signals import candidate_ready
from marlin.agents.tools import SandboxEnvironment
from marlin.agents.trajectories import Trajectory, parse_trajectory, summary
from marlin.audit.actions import record
from marlin.catalog.jobs import local_mirror
from marlin.catalog.validation import InvalidRepositoryURL
from marlin.diffs.parse import DiffParseError, patch_stats
from marlin.leases import heartbeat
from marlin.paths import workspaces_dir
from marlin.sandbox import EgressFailed, Mount
from marlin.sandbox.egress import Egress, ModelRoute
from marlin.sandbox.gitutil import GitError
from marlin.sandbox.workspace import (
    PatchRejected,
    WorkspaceError,
    apply_patch,
    create_layer,
    create_workspace,
    diff_workspace,
    read_marker,
    remove_workspace,
)
from marlin.tasks.jobs import (
    environment_base,
    environment_for,
    environment_mounts,
    ready_environment,
)
from marlin.tasks.models import Environment, EnvironmentStatus, Task

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a software engineer working in a git repository, which is your current directory. "
    "Make the change the user asks for with the tools: run shell commands (there is no network), "
    "view and edit files. Keep the change focused; do not commit. When the change is complete, "
    "call finish with a short summary of what you changed."
)


class TurnError(Exception):
    """The turn cannot run for a reason an operator can fix; the message says how."""


@dataclass
class Outcome:
    exit_status: str
    message: str
    conversation: list[dict[str, Any]]
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    failed: bool = False  # no candidate: the provider failed, or a command agent changed nothing
    fingerprints: list[dict[str, Any]] = field(default_factory=list)


def claim_turn(turn_id: int) -> datetime | None:
    """queued -> running; the returned start time is the claim token. None if not ours to run."""
    now = timezone.now()
    if (
        Turn.objects.filter(pk=turn_id, status=TurnStatus.QUEUED).update(
            status=TurnStatus.RUNNING, started_at=now, error="", finished_at=None
        )
        != 1
    ):
        return None
    run_id = Turn.objects.values_list("run_id", flat=True).get(pk=turn_id)
    Run.objects.filter(pk=run_id).update(
        status=RunStatus.RUNNING,
        error="",
        lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    )
    return now


@task()
def run_turn(turn_id: int) -> None:
    """Run one turn (agent loop, command agent) and turn its workspace into a Candidate."""
    claimed_at = claim_turn(turn_id)
    if claimed_at is None:
        logger.info(
            "turn %s is not queued (done, failed or taken by another worker); skipping", turn_id
        )
        return
    turn = Turn.objects.select_related("run__agent", "run__task__repository").get(pk=turn_id)
    secrets: list[str | None] = []
    try:
        _run(turn, claimed_at, secrets)
    except TurnError as exc:
        _fail(turn, claimed_at, redact(str(exc), secrets))
    except EgressFailed as exc:
        # Not the agent's fault: say why on the run and let the lease sweep queue the turn
        # again (now, not when the lease would have run out).
        _leave_for_the_sweep(turn, claimed_at, redact(str(exc), secrets))
    except (OperationalError, InterfaceError):
        # The database is away, not the turn at fault: leave the turn running and its run's
        # lease brings it back once the database is (a failed turn needs a person to retry).
        raise
    except Exception as exc:  # noqa: BLE001 - any crash must release the row, with a safe message
        message = redact(f"internal error: {exc!r}", secrets)
        logger.error("turn %s failed:\n%s", turn_id, redact(traceback.format_exc(), secrets))
        _fail(turn, claimed_at, message)


def after_candidate(candidate: Candidate) -> None:
    """Hand the stored candidate on to the apps above: its checks, then its comparison. Call it
    inside the transaction that creates the candidate (receivers add their rows to it and queue
    their jobs on commit), so a worker that dies can leave a turn undone but never done and
    stranded."""
    candidate_ready.send(sender=Candidate, candidate=candidate)


def _run(turn: Turn, claimed_at: datetime, secrets: list[str | None]) -> Candidate | None:
    run = turn.run
    started = time.monotonic()
    workdir = prepare_workspace(run, turn)
    provider = run.agent.provider
    if provider not in (Provider.OPENAI, Provider.ANTHROPIC, Provider.COMMAND):
        raise TurnError(
            f"{run.agent} labels imported candidates; there is nothing to run "
            "(import its candidates with `marlin import predictions`)."
        )
    # The heartbeat keeps the lease while one long step or a command agent runs.
    with heartbeat(
        Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING),
        lease_seconds=settings.JOB_LEASE_SECONDS,
        on_thread_exit=connections.close_all,
    ):
        if provider == Provider.COMMAND:
            outcome = _run_command_agent(turn, workdir, secrets)
        else:
            outcome = _run_api_agent(turn, workdir, secrets)
    patch = _diff(workdir, run.task.base_commit)
    if outcome.failed and (provider != Provider.COMMAND or not patch.strip()):
        raise TurnError(outcome.message)
    return _save_candidate(turn, claimed_at, outcome, patch, time.monotonic() - started)


def prepare_workspace(run: Run, turn: Turn) -> Path:
    """The run's workspace, kept between turns; rebuilt from the last candidate when it is gone
    (a worker restart sweeps it) or when this turn is a retry of a crashed attempt."""

    repository = run.task.repository
    if not repository.is_mirrored:
        raise TurnError(
            f"The repository {repository.name} is not mirrored yet ({repository.mirror_status}); "
            "mirror it (`marlin repos mirror --pending`) and retry the turn."
        )
    current = Path(run.workspace_path) if run.workspace_path else None
    retry = turn.steps.exists()
    if current is not None and current.is_dir() and not retry:
        try:
            read_marker(current)
            return current
        except WorkspaceError:
            pass
    if current is not None:
        remove_workspace(current)
    base = environment_base(_built_environment(run))
    try:
        # Over the tree the task's setup built, like its checks, when it has one: the agent
        # then runs the repository's tests with what the build generated and /env mounted.
        if base is not None:
            path = create_layer(base, workspaces_dir())
        else:
            # On a worker of another machine the mirror is cloned here first (catalog.jobs).
            mirror = local_mirror(repository)
            if mirror is None:
                raise WorkspaceError(f"{repository.name} has no mirror yet")
            path = create_workspace(mirror, run.task.base_commit, workspaces_dir())
    except (GitError, WorkspaceError, InvalidRepositoryURL) as exc:
        raise TurnError(
            f"Cannot check out {run.task.base_commit[:12]} of {repository.name}: {exc}"
        ) from None
    last = (
        Candidate.objects.filter(
            turn__run=run, turn__number__lt=turn.number, turn__status=TurnStatus.DONE
        )
        .order_by("-turn__number")
        .first()
    )
    if last is not None and last.patch.strip():
        try:
            apply_patch(path, last.patch)
        except PatchRejected as exc:
            remove_workspace(path)
            raise TurnError(
                f"Cannot rebuild the workspace from turn {last.turn.number}'s candidate: "
                f"{exc.reason}"
            ) from None
    Run.objects.filter(pk=run.pk).update(workspace_path=str(path))
    run.workspace_path = str(path)
    return path


def _built_environment(run: Run) -> Environment:
    """The task's environment, built first if it needs a build (as its checks would); the run's
    lease is kept while it is built or waited for. A failed build leaves the agent a plain
    worktree."""
    environment = environment_for(run.task)
    if environment.status in (EnvironmentStatus.READY, EnvironmentStatus.FAILED):
        return environment
    with heartbeat(
        Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING),
        lease_seconds=settings.JOB_LEASE_SECONDS,
        on_thread_exit=connections.close_all,
    ):
        return ready_environment(run.task)


def _environment_mounts(task: Task) -> list[Mount]:
    """/env (and the interpreter it links to) for the agent's sandbox, when the environment the
    workspace was made from is ready."""
    return environment_mounts(environment_for(task))


def _diff(workdir: Path, base_commit: str) -> str:

    return diff_workspace(workdir, base_commit)


def _extend_lease(run_id: int, seconds: float) -> None:
    Run.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
        lease_expires_at=timezone.now() + timedelta(seconds=seconds)
    )


def _redacted(value: Any, secrets: list[str | None]) -> Any:
    if not any(secrets):
        return value
    return json.loads(redact(json.dumps(value), [json.dumps(s)[1:-1] for s in secrets if s]))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value) if find_fingerprints(value) else value
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def save_step(
    turn: Turn, index: int, kind: str, content: dict[str, Any], **fields: Any
) -> list[dict[str, Any]]:
    """Save one step at once (a crash keeps it); returns the fingerprints found in it."""
    found = [
        {
            "where": f"trajectory step {index}",
            "kind": f.kind,
            "match": f.match,
            "line": f.line,
            "severity": f.severity,
        }
        for text in _strings(content)
        for f in find_fingerprints(text)
    ]
    TrajectoryStep.objects.create(
        turn=turn,
        index=index,
        kind=kind,
        content=content,
        scrubbed_content=_scrubbed(content) if found else None,
        **fields,
    )
    return found


def _next_step_index(turn: Turn) -> int:
    return turn.steps.aggregate(top=Max("index"))["top"] or 0


def _run_api_agent(turn: Turn, workdir: Path, secrets: list[str | None]) -> Outcome:

    run, agent = turn.run, turn.run.agent
    config = api_settings(agent)
    try:
        key = resolve_api_key(config.model_dump())
    except SecretError as exc:
        raise TurnError(f"{agent}: {exc}") from None
    secrets.append(key)
    try:
        model = load_model(
            ProviderSettings.from_dict(config.provider_settings(agent.provider)), api_key=key
        )
    except (ProviderError, ValueError) as exc:
        raise TurnError(f"{agent}: {exc}") from None
    history = list(run.conversation) or [
        {"role": "system", "content": config.system_prompt or DEFAULT_SYSTEM_PROMPT}
    ]
    history.append({"role": "user", "content": turn.prompt})
    offset = _next_step_index(turn)
    found: list[dict[str, Any]] = []

    def on_step(step: Step) -> None:
        content = _redacted(
            {
                "text": step.text,
                "tool_calls": step.tool_calls,
                "tool_outputs": step.tool_outputs,
                "cost_usd": step.cost_usd,
            },
            secrets,
        )
        found.extend(
            save_step(
                turn,
                offset + step.index,
                "model",
                content,
                input_tokens=step.input_tokens,
                output_tokens=step.output_tokens,
                latency_seconds=step.latency_s,
            )
        )
        _extend_lease(run.pk, settings.JOB_LEASE_SECONDS)

    result = run_agent(
        model,
        SandboxEnvironment(
            workdir, mounts=_environment_mounts(run.task), backend=settings.SANDBOX_BACKEND
        ),
        history,
        limits=AgentLimits(**config.limits.model_dump()),
        on_step=on_step,
    )
    return Outcome(
        exit_status=result.exit_status,
        message=redact(result.message, secrets),
        conversation=_redacted(result.messages, secrets),
        input_tokens=result.totals.input_tokens,
        output_tokens=result.totals.output_tokens,
        cost_usd=result.totals.cost_usd,
        failed=result.exit_status == "error",
        fingerprints=found,
    )


def transcript(conversation: list[dict[str, Any]]) -> str:
    """The earlier turns of a command agent, as the text its follow-up prompt starts with."""
    parts = []
    for message in conversation:
        who = "Request" if message.get("role") == "user" else "Your output"
        parts.append(f"## {who}\n\n{message.get('content') or ''}")
    return "\n\n".join(parts)


def command_egress(agent: Any, config: Any, secrets: list[str | None]) -> Egress | None:
    """What a command agent in proxy mode may reach: its allow list and its model APIs, with
    the keys read now (kept for redaction in `secrets`, never passed into the sandbox)."""
    if config.network != "proxy":
        return None
    routes = []
    for api in config.model_apis:
        try:
            key = resolve_api_key(api.model_dump())
        except SecretError as exc:
            raise TurnError(f"{agent}: model_apis ({api.kind}): {exc}") from None
        secrets.append(key)
        routes.append(
            ModelRoute(
                api.kind,
                api.real_base_url(),
                api_key=key,
                input_price_per_mtok=api.input_price_per_mtok,
                output_price_per_mtok=api.output_price_per_mtok,
            )
        )
    return Egress(
        allow=tuple(config.allow),
        models=tuple(routes),
        max_cost_usd=config.max_cost_usd,
        internal_hosts=tuple(settings.EGRESS_INTERNAL_HOSTS),
    )


def _run_command_agent(turn: Turn, workdir: Path, secrets: list[str | None]) -> Outcome:

    run, agent = turn.run, turn.run.agent
    config = command_settings(agent)
    if config.network == "host" and not run.task.project.allow_host_network:
        raise TurnError(
            f"{agent} asks for the host's network, which project {run.task.project} does not "
            "allow; an administrator can allow it on the project, or give the agent "
            '"network": "proxy" with an allow list'
        )
    home = ensure_home(workspaces_dir(), run.pk)
    tools_dir = Path(settings.AGENT_TOOLS_DIR)
    earlier = run.conversation[-1] if run.conversation else {}
    command = turn_command(
        config.argv,
        config.resume_argv,
        earlier_turn=bool(run.conversation),
        session_id=earlier.get("session_id") if isinstance(earlier, dict) else None,
    )
    try:
        spec = CommandAgentSpec(
            argv=command.argv,
            prompt_via=config.prompt_via,
            network=config.network,
            timeout=config.timeout,
            env={**cli_env(tools_dir), **config.env},
            egress=command_egress(agent, config, secrets),
        )
    except ValueError as exc:
        raise TurnError(f"{agent}: {exc}") from None
    trajectory_file = trajectory_path(home, config.trajectory_file)
    before = read_text(trajectory_file)
    started = time.monotonic()
    result = run_command_agent(
        spec,
        workdir,
        turn.prompt,
        transcript="" if command.resumed else transcript(run.conversation),
        mounts=[*cli_mounts(home, tools_dir), *_environment_mounts(run.task)],
        backend=settings.SANDBOX_BACKEND,
    )
    seconds = time.monotonic() - started
    Turn.objects.filter(pk=turn.pk).update(
        network_log=[entry.as_dict() for entry in result.network_log],
        network_log_dropped=result.network_log_dropped,
    )
    usage = result.model_usage
    parsed = parse_trajectory(
        config.trajectory, result.stdout, written_during(before, read_text(trajectory_file))
    )
    found = _save_cli_steps(turn, config.trajectory, parsed, result, secrets, seconds)
    if result.timed_out:
        status = "limit:wall"
    elif result.killed_reason == "cost-limit":
        status = "limit:cost"
    else:
        status = "submitted" if result.returncode == 0 else f"exit:{result.returncode}"
    tail = result.output[-2000:]
    # The proxy's count is the one billed; a CLI's own count stands in without the proxy.
    counted = usage is not None and usage.requests > 0
    said = result.output if config.trajectory == "text" else summary(parsed)
    return Outcome(
        exit_status=status,
        message=redact(
            f"The agent exited with {status} and changed nothing. Its output ends with:\n{tail}",
            secrets,
        ),
        conversation=[
            *run.conversation,
            {"role": "user", "content": turn.prompt},
            {
                "role": "assistant",
                "content": redact(said, secrets),
                "session_id": parsed.session_id,
            },
        ],
        input_tokens=usage.input_tokens if counted and usage else parsed.input_tokens,
        output_tokens=usage.output_tokens if counted and usage else parsed.output_tokens,
        cost_usd=usage.cost_usd if usage else 0.0,
        failed=status != "submitted",
        fingerprints=found,
    )


def _save_cli_steps(
    turn: Turn,
    fmt: str,
    parsed: Trajectory,
    result: CommandAgentResult,
    secrets: list[str | None],
    seconds: float,
) -> list[dict[str, Any]]:
    """The CLI's trajectory as steps (the whole output as one step for the text format), then
    what it printed on stderr and how it exited."""
    offset = _next_step_index(turn)
    found: list[dict[str, Any]] = []
    if fmt == "text":
        content = {
            "prompt": turn.prompt,
            "output": redact(result.output, secrets),
            "returncode": result.returncode,
            "timed_out": result.timed_out,
        }
        usage = result.model_usage
        return save_step(
            turn,
            offset + 1,
            "output",
            content,
            input_tokens=usage.input_tokens if usage else 0,
            output_tokens=usage.output_tokens if usage else 0,
            latency_seconds=seconds,
        )
    for number, step in enumerate(parsed.steps, start=offset + 1):
        found += save_step(
            turn,
            number,
            "model",
            _redacted(step.content(), secrets),
            input_tokens=step.input_tokens,
            output_tokens=step.output_tokens,
        )
    ending = {
        "output": redact(result.stderr[-20_000:], secrets),
        "returncode": result.returncode,
        "timed_out": result.timed_out,
    }
    found += save_step(
        turn, offset + len(parsed.steps) + 1, "output", ending, latency_seconds=seconds
    )
    return found


def candidate_fields(patch: str) -> dict[str, Any]:
    """Stats, fingerprints and the scrubbed copy of a patch (also used by imports)."""

    try:
        stats = patch_stats(patch)
        files, added, removed = stats.files, stats.added, stats.removed
    except DiffParseError:
        files = added = removed = 0
    found = [
        {"where": "patch", "kind": f.kind, "match": f.match, "line": f.line, "severity": f.severity}
        for f in find_fingerprints(patch)
    ]
    return {
        "patch": patch,
        "files_changed": files,
        "lines_added": added,
        "lines_removed": removed,
        "fingerprints": found,
        "scrubbed_patch": scrub(patch) if found else "",
    }


def _save_candidate(
    turn: Turn, claimed_at: datetime, outcome: Outcome, patch: str, seconds: float
) -> Candidate | None:
    fields = candidate_fields(patch)
    fields["fingerprints"] = fields["fingerprints"] + outcome.fingerprints
    if fields["fingerprints"] and not fields["scrubbed_patch"]:
        fields["scrubbed_patch"] = patch
    now = timezone.now()
    with transaction.atomic():
        finished = Turn.objects.filter(
            pk=turn.pk, status=TurnStatus.RUNNING, started_at=claimed_at
        ).update(
            status=TurnStatus.DONE, exit_status=outcome.exit_status[:40], error="", finished_at=now
        )
        if finished != 1:
            # The lease ran out and another worker took the turn over: its result wins.
            logger.warning("turn %s: lease lost before finishing; result dropped", turn.pk)
            return None
        candidate = Candidate.objects.create(
            turn=turn,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            cost_usd=Decimal(str(round(outcome.cost_usd, 6))),
            duration_seconds=seconds,
            **fields,
        )
        Run.objects.filter(pk=turn.run_id).update(
            status=RunStatus.WAITING,
            conversation=outcome.conversation,
            error="",
            lease_expires_at=None,
        )
        # One event for the job's outcome: the turn is done and this is its candidate.
        record(
            None,
            "turn.done",
            turn,
            old={"status": TurnStatus.RUNNING},
            new={
                "status": TurnStatus.DONE,
                "exit_status": outcome.exit_status[:40],
                "candidate": candidate.pk,
                "files_changed": candidate.files_changed,
                "lines_added": candidate.lines_added,
                "lines_removed": candidate.lines_removed,
                "cost_usd": candidate.cost_usd,
            },
            project_id=turn.run.task.project_id,
        )
        after_candidate(candidate)
    return candidate


def _fail(turn: Turn, claimed_at: datetime, message: str) -> None:
    with transaction.atomic():
        updated = Turn.objects.filter(
            pk=turn.pk, status=TurnStatus.RUNNING, started_at=claimed_at
        ).update(status=TurnStatus.FAILED, error=message, finished_at=timezone.now())
        if updated == 1:
            Run.objects.filter(pk=turn.run_id).update(
                status=RunStatus.FAILED,
                error=f"Turn {turn.number}: {message}"[:5000],
                lease_expires_at=None,
            )
            record(
                None,
                "turn.failed",
                turn,
                old={"status": TurnStatus.RUNNING},
                new={"status": TurnStatus.FAILED, "error": message[:2000]},
                project_id=turn.run.task.project_id,
            )
    logger.warning("turn %s of run %s failed: %s", turn.number, turn.run_id, message)


def _leave_for_the_sweep(turn: Turn, claimed_at: datetime, message: str) -> None:
    """The turn's infrastructure failed (its egress proxy stopped): keep the turn running, say
    why on the run, and end the lease now so the next sweep queues the turn again."""
    now = timezone.now()
    if Turn.objects.filter(pk=turn.pk, status=TurnStatus.RUNNING, started_at=claimed_at).exists():
        Run.objects.filter(pk=turn.run_id, status=RunStatus.RUNNING).update(
            error=f"Turn {turn.number}: {message}; it will be tried again"[:5000],
            lease_expires_at=now,
        )
    logger.warning(
        "turn %s of run %s: %s; left for the lease sweep", turn.number, turn.run_id, message
    )


def recover_expired_runs() -> int:
    """Queue again the turns whose worker stopped extending the lease; return how many.
    Call it when a worker starts and now and then while it runs."""
    now = timezone.now()
    stuck = list(
        Turn.objects.filter(status=TurnStatus.RUNNING, run__lease_expires_at__lt=now).values_list(
            "pk", "run_id", "run__task__project_id"
        )
    )
    recovered = 0
    for turn_id, run_id, project_id in stuck:
        with transaction.atomic():
            if (
                Turn.objects.filter(pk=turn_id, status=TurnStatus.RUNNING).update(
                    status=TurnStatus.QUEUED
                )
                != 1
            ):
                continue
            Run.objects.filter(pk=run_id).update(status=RunStatus.QUEUED, lease_expires_at=None)
            record(
                None,
                "turn.requeued",
                object_type="agents.turn",
                object_id=turn_id,
                old={"status": TurnStatus.RUNNING},
                new={"status": TurnStatus.QUEUED},
                reason="the worker running it stopped renewing its lease",
                project_id=project_id,
            )
            transaction.on_commit(partial(run_turn.enqueue, turn_id))
        recovered += 1
        logger.info("turn %s: lease expired; queued again", turn_id)
    return recovered
