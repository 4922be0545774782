"""Comparisons from finished turns: who pairs with whom, random sides, follow-up turn counts."""

from __future__ import annotations

import pytest

from marlin.agents.models import Candidate, Run, RunStatus, Turn, TurnStatus
from marlin.audit.models import AuditEvent
from marlin.review.comparisons import PairingError, create_comparison, turn_finished
from marlin.review.models import Comparison
from tests.review.factories import PATCH, _task, make_project
from tests.review.workspace_factories import make_agent


def _run(task, name: str, *, partner: Run | None = None, finished: bool = True) -> Run:
    from marlin.agents.models import Agent

    agent = Agent.objects.filter(name=name).first() or make_agent(name)
    run = Run.objects.create(task=task, agent=agent, status=RunStatus.WAITING, partner=partner)
    turn = Turn.objects.create(
        run=run, number=1, prompt="p", status=TurnStatus.DONE if finished else TurnStatus.RUNNING
    )
    if finished:
        Candidate.objects.create(turn=turn, patch=PATCH.replace("{note}", name))
    return run


def _finish(run: Run, number: int) -> Turn:
    turn, _ = Turn.objects.get_or_create(run=run, number=number, defaults={"prompt": "more"})
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.DONE)
    Candidate.objects.get_or_create(
        turn=turn, defaults={"patch": PATCH.replace("{note}", f"turn {number}")}
    )
    return turn


@pytest.fixture
def task(db):
    return _task(make_project(overlap=1))


def test_the_second_run_of_a_pair_to_finish_creates_the_comparison(task):
    first = _run(task, "alpha")
    assert turn_finished(first.turns.get()) is None  # its partner has not finished
    second = _run(task, "beta")
    comparison = turn_finished(second.turns.get())
    assert {comparison.run_a, comparison.run_b} == {first, second}
    assert (
        comparison.task == task
        and comparison.project == task.project
        and comparison.turn_count == 1
    )
    assert AuditEvent.objects.filter(verb="comparison.created").count() == 1


def test_calling_it_again_creates_nothing_new(task):
    first, second = _run(task, "alpha"), _run(task, "beta")
    turn_finished(first.turns.get())
    comparison = turn_finished(second.turns.get())
    assert turn_finished(second.turns.get()) == comparison
    assert turn_finished(first.turns.get()) == comparison
    assert Comparison.objects.count() == 1


def test_runs_started_as_a_pair_wait_for_each_other(task):
    first = _run(task, "alpha")
    second = _run(task, "beta", partner=first, finished=False)
    Run.objects.filter(pk=first.pk).update(partner=second)
    first.refresh_from_db()
    stranger = _run(task, "gamma")
    assert turn_finished(first.turns.get()) is None  # not paired with the stranger
    _finish(second, 1)
    comparison = turn_finished(second.turns.get())
    assert {comparison.run_a_id, comparison.run_b_id} == {first.pk, second.pk}
    assert stranger.pk not in (comparison.run_a_id, comparison.run_b_id)


def test_two_runs_of_the_same_agent_do_not_pair_by_themselves(task):
    _run(task, "alpha")
    again = _run(task, "alpha")
    assert turn_finished(again.turns.get()) is None


def test_sides_are_assigned_at_random(task):
    first, second = _run(task, "alpha"), _run(task, "beta")
    firsts_side = {
        create_comparison(task.project, task, first, second).run_a_id == first.pk for _ in range(40)
    }
    assert firsts_side == {True, False}


def test_pairing_refuses_runs_that_cannot_be_compared(task):
    first = _run(task, "alpha")
    other = _run(_task(task.project), "beta")
    with pytest.raises(PairingError, match="two different runs"):
        create_comparison(task.project, task, first, first)
    with pytest.raises(PairingError, match="on the comparison's task"):
        create_comparison(task.project, task, first, other)


def test_a_follow_up_turn_counts_once_both_sides_finished_it(task):
    first, second = _run(task, "alpha"), _run(task, "beta")
    turn_finished(first.turns.get())
    comparison = turn_finished(second.turns.get())
    turn_finished(_finish(first, 2))
    comparison.refresh_from_db()
    assert comparison.turn_count == 1
    turn_finished(_finish(second, 2))
    comparison.refresh_from_db()
    assert comparison.turn_count == 2
    assert AuditEvent.objects.filter(verb="comparison.turn_finished").count() == 1
