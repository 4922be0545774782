"""Finding 2, the unaudited half: what the jobs change is in the audit log, one event per job
outcome (a turn done with its candidate, a failed turn, each check's result, an environment's
build, a mirror), not one per step or log line. The jobs are called as the worker calls them,
on the demo repository, with real git and the real sandbox."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from marlin.agents import actions
from marlin.agents.jobs import recover_expired_runs, run_turn
from marlin.agents.models import Candidate, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.audit.models import AuditEvent
from marlin.catalog.actions import do_add_repository
from marlin.catalog.jobs import mirror_repository
from marlin.checks.jobs import recover_checks
from marlin.checks.models import CheckResult, CheckStatus
from marlin.tasks.jobs import recover_environments
from marlin.tasks.models import Environment, EnvironmentStatus
from tests.catalog.conftest import upstream  # noqa: F401 - a fixture, used by name
from tests.checks.scenario import demo_task, link_shared_tools

pytestmark = pytest.mark.django_db

UNIT_TESTS = [{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
WRITES_NOTES = (
    "import sys; sys.stdin.read(); "
    "[print('step', n) for n in range(200)]; "  # a chatty agent: many log lines, one outcome
    "open('NOTES.md', 'w').write('notes\\n')"
)


def _system_events(after: int = 0) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor=None, sequence__gt=after).order_by("sequence"))


def _newest() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


@pytest.fixture
def jobs_run_on_commit(settings, django_capture_on_commit_callbacks):
    """Jobs run when their transaction commits, in this process, as a worker would run them."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.mark.slow
def test_a_turn_and_its_checks_write_one_event_per_outcome(
    dave, _data_dir: Path, jobs_run_on_commit, capsys
):
    link_shared_tools(_data_dir)
    task = demo_task(checks=UNIT_TESTS, setup_command="true")
    agent = actions.do_create_agent(
        dave,
        name="notes",
        provider=Provider.COMMAND,
        settings={"argv": ["python3", "-c", WRITES_NOTES], "timeout": 60},
    )
    run = actions.do_start_run(dave, task, agent)
    before = _newest()
    with jobs_run_on_commit():
        run_turn.call(run.turns.get().pk)

    turn = run.turns.get()
    assert turn.status == TurnStatus.DONE, turn.error
    check = CheckResult.objects.get(candidate=turn.candidate)
    assert check.status == CheckStatus.PASSED, check.detail
    events = _system_events(before)
    assert Counter(e.verb for e in events) == {
        "turn.done": 1,
        "environment.create": 1,
        "environment.build": 1,
        "check.finished": 1,
    }
    by_verb = {e.verb: e for e in events}
    done = by_verb["turn.done"]
    assert (done.object_type, done.object_id) == ("agents.turn", str(turn.pk))
    assert done.project_id == task.project_id and done.actor_name == "system"
    assert done.new_values["candidate"] == turn.candidate.pk
    assert done.new_values["files_changed"] == 1
    finished = by_verb["check.finished"]
    assert finished.object_id == str(check.pk)
    assert finished.new_values["status"] == "passed"
    assert finished.new_values["passed"] == check.passed > 0
    assert "step 199" not in str(finished.new_values)  # logs stay on their rows
    assert by_verb["environment.build"].new_values["status"] == EnvironmentStatus.READY

    call_command("audit", "verify")
    assert "events verified" in capsys.readouterr().out


def test_a_failed_turn_is_one_event_that_says_why(dave, _data_dir: Path):
    task = demo_task(checks=UNIT_TESTS)
    agent = actions.do_create_agent(
        dave,
        name="broken",
        provider=Provider.COMMAND,
        settings={"argv": "echo no such tool >&2; exit 3", "timeout": 30},
    )
    run = actions.do_start_run(dave, task, agent)
    before = _newest()
    run_turn.call(run.turns.get().pk)

    # Agent runs work on the task's built tree: its environment is made first (its own event).
    events = _system_events(before)
    assert [e.verb for e in events if not e.verb.startswith("turn.")] == ["environment.create"]
    [event] = [e for e in events if e.verb.startswith("turn.")]
    assert event.verb == "turn.failed"
    assert event.new_values["status"] == TurnStatus.FAILED
    assert "exit:3" in event.new_values["error"] and "no such tool" in event.new_values["error"]
    assert not CheckResult.objects.exists()


def test_a_mirror_writes_its_outcome_ready_or_failed(erin, settings, upstream: Path):  # noqa: F811
    settings.ALLOW_LOCAL_REPOSITORIES = True
    repository = do_add_repository(erin, str(upstream), mirror=False)
    before = _newest()
    mirror_repository.call(repository.pk)
    [ready] = _system_events(before)
    assert (ready.verb, ready.object_id) == ("repository.mirror", str(repository.pk))
    assert ready.new_values == {"mirror_status": "ready", "last_error": ""}

    settings.ALLOW_LOCAL_REPOSITORIES = False
    mirror_repository.call(repository.pk)
    [failed] = _system_events(ready.sequence)
    assert failed.new_values["mirror_status"] == "failed"
    assert "MARLIN_ALLOW_LOCAL_REPOSITORIES" in failed.new_values["last_error"]


def test_the_recovery_sweeps_record_what_a_dead_worker_left(dave, _data_dir: Path):
    task = demo_task(checks=UNIT_TESTS, setup_command="pip install -e .")
    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    run = actions.do_start_run(dave, task, agent)
    turn = run.turns.get()
    expired = timezone.now() - timedelta(seconds=1)
    # A worker died holding the turn, a check and an environment build.
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.RUNNING)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_expires_at=expired)
    other_turn = Turn.objects.create(run=run, number=2, prompt="p", status=TurnStatus.DONE)
    candidate = Candidate.objects.create(turn=other_turn, patch="")
    running = CheckResult.objects.create(
        candidate=candidate, check_index=0, status=CheckStatus.RUNNING, lease_expires_at=expired
    )
    CheckResult.objects.create(  # queued, its job maybe lost: queued again, nothing changes
        candidate=candidate, check_index=1, status=CheckStatus.QUEUED, lease_expires_at=expired
    )
    environment = Environment.objects.create(
        repository=task.repository,
        commit=task.base_commit,
        setup_hash="x" * 64,
        setup_command="pip install -e .",
        status=EnvironmentStatus.BUILDING,
        lease_expires_at=expired,
    )
    before = _newest()

    assert recover_expired_runs() == 1
    assert recover_checks() == [candidate.pk]
    assert recover_environments() == [environment.pk]

    events = {(e.verb, e.object_id): e for e in _system_events(before)}
    assert set(events) == {
        ("turn.requeued", str(turn.pk)),
        ("check.requeued", str(running.pk)),
        ("environment.requeued", str(environment.pk)),
    }
    for event in events.values():
        assert "stopped renewing its lease" in event.reason
    assert events[("turn.requeued", str(turn.pk))].project_id == task.project_id
