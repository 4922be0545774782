"""The recovery sweep's hand-off step in one process, for the cases the worker-process tests do
not reach: what it must leave alone (a voided comparison, a task edited since, a task with no
checks) and that a second sweep changes nothing. tests/agents/test_handoff_crash.py drives the
same step through real `marlin worker` processes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marlin.agents.actions import link_partners
from marlin.agents.models import Agent, Candidate, Provider, Run, RunStatus, Turn, TurnStatus
from marlin.catalog.models import MirrorStatus, Repository
from marlin.checks.models import CheckResult
from marlin.management.commands.worker import hand_on_stranded_turns, recover_all
from marlin.review import queue
from marlin.review.models import Claim, Comparison, ComparisonState
from marlin.tasks.models import Project, Rubric, Task, TaskStatus
from tests.review.factories import make_comparison, make_project

pytestmark = pytest.mark.django_db

CHECKS = [{"kind": "command", "name": "tests", "command": "true"}]


def stranded_pair(checks: list[dict] | None = None) -> tuple[Task, Run, Run]:
    """Two partnered runs, both done with a candidate, never handed on: no check rows, no
    comparison (what a worker of the previous release left when it died in between)."""
    repository = Repository.objects.create(
        url="https://github.com/example/ledger",
        normalized_url="github.com/example/ledger",
        name="example/ledger",
        mirror_status=MirrorStatus.READY,
    )
    rubric = Rubric.objects.create(name="r")
    project = Project.objects.create(name="p", rubric=rubric)
    task = Task.objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit="0" * 40,
        title="Skip missing entries",
        prompt="Make total skip None.",
        checks=CHECKS if checks is None else checks,
        status=TaskStatus.APPROVED,
    )
    runs = []
    for name in ("atlas", "corvid"):
        agent = Agent.objects.create(name=name, provider=Provider.COMMAND, settings={"argv": "x"})
        run = Run.objects.create(task=task, agent=agent, status=RunStatus.WAITING)
        now = timezone.now()
        turn = Turn.objects.create(
            run=run, number=1, prompt=task.prompt, status=TurnStatus.DONE, finished_at=now
        )
        Candidate.objects.create(turn=turn, patch="", created_at=now + timedelta(seconds=1))
        runs.append(run)
    link_partners(runs[0], runs[1])
    return task, runs[0], runs[1]


def test_the_sweep_hands_on_a_stranded_pair_once() -> None:
    task, first, second = stranded_pair()
    assert len(hand_on_stranded_turns()) == 2
    assert CheckResult.objects.filter(candidate__turn__run__task=task).count() == 2
    comparison = Comparison.objects.get(task=task)
    assert {comparison.run_a_id, comparison.run_b_id} == {first.pk, second.pk}
    assert hand_on_stranded_turns() == []
    assert recover_all(sweep=False).handed_on == []
    assert CheckResult.objects.filter(candidate__turn__run__task=task).count() == 2
    assert Comparison.objects.filter(task=task).count() == 1


def test_the_sweep_does_not_bring_back_a_voided_comparison() -> None:
    task, first, second = stranded_pair(checks=[])
    assert len(hand_on_stranded_turns()) == 1  # one hand-off pairs both runs
    Comparison.objects.filter(task=task).update(state=ComparisonState.VOIDED)
    assert hand_on_stranded_turns() == []
    assert Comparison.objects.filter(task=task).count() == 1


def test_the_sweep_leaves_tasks_without_checks_and_tasks_edited_since_to_their_author() -> None:
    task, first, second = stranded_pair(checks=[])
    Comparison.objects.create(project=task.project, task=task, run_a=first, run_b=second)
    assert hand_on_stranded_turns() == []  # no checks to queue, already compared
    Task.objects.filter(pk=task.pk).update(checks=CHECKS, updated_at=timezone.now())
    # Checks added after the candidates were made run on them only through a re-run.
    Candidate.objects.filter(turn__run__task=task).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    assert hand_on_stranded_turns() == []
    assert not CheckResult.objects.filter(candidate__turn__run__task=task).exists()


def test_the_sweep_releases_idle_claims_and_gives_their_places_back(make_user) -> None:
    """Idle claims go back to the queue in the worker's sweep, not in the requests of the
    annotators who ask for work."""
    comparison = make_comparison(make_project(overlap=1, claim_timeout_minutes=30))
    first, second = make_user("ann1", "annotator"), make_user("ann2", "annotator")
    assert queue.next_comparison(first) == comparison
    Claim.objects.filter(annotator=first).update(
        last_seen_at=timezone.now() - timedelta(minutes=31)
    )
    assert queue.next_comparison(second) is None  # asking releases nothing
    recovered = recover_all(sweep=False)
    assert recovered.claims == 1 and "1 idle claim(s) released" in str(recovered)
    comparison.refresh_from_db()
    assert comparison.slots_taken == 0
    assert queue.next_comparison(second) == comparison
    assert recover_all(sweep=False).claims == 0
