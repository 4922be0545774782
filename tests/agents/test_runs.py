"""Runs and turns as jobs, end to end: fake model servers over real HTTP, the demo repository's
mirror, real worktrees and the real bwrap sandbox; the job is called as the worker would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marlin.agents import actions
from marlin.agents.jobs import recover_expired_runs, run_turn
from marlin.agents.models import (
    Agent,
    Candidate,
    Provider,
    Run,
    RunStatus,
    TrajectoryStep,
    Turn,
    TurnStatus,
)
from marlin.devtools.model_server import Call, Fail, FakeModelServer, Reply
from marlin.review.models import Comparison
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Task

KEY_ENV = "MARLIN_TEST_MODEL_KEY"
FIRST_EDIT = {
    "path": "README.md",
    "old_str": "# ledgerlite\n",
    "new_str": "# ledgerlite\n\nTurn one was here.\n",
}
TURN_ONE = [
    Reply(text="Looking at the readme.", tool_calls=[Call("view_file", {"path": "README.md"})]),
    Fail(429, retry_after=0.01),
    Reply(tool_calls=[Call("edit_file", FIRST_EDIT)]),
    Reply(tool_calls=[Call("bash", '{"command": ')]),  # malformed: reported back, not a crash
    Reply(tool_calls=[Call("finish", {"summary": "readme edited"})]),
]
TURN_TWO = [
    Reply(
        tool_calls=[Call("write_file", {"path": "CHANGES.md", "content": "Turn two added this.\n"})]
    ),
    Reply(tool_calls=[Call("finish", {"summary": "changelog added"})]),
]


@pytest.fixture
def demo_task(db, erin, dave) -> Task:
    from marlin import paths
    from marlin.demo.load import ensure_demo_repository
    from marlin.demo.sample_repo import head_commit

    repository = ensure_demo_repository()
    project = task_actions.do_create_project(erin, "Agents pilot")
    return task_actions.do_create_task(
        dave,
        project,
        repository=repository,
        base_ref="main",
        base_commit=head_commit(paths.data_dir() / "demo-src" / "ledgerlite"),
        title="Say hello in the readme",
        kind="docs",
        prompt="Add a line to README.md.",
        checks=[],
    )


def api_agent(
    actor: Any, provider: str, server: FakeModelServer, name: str = "scripted", **extra: Any
) -> Agent:
    base_url = server.openai_base_url if provider == "openai" else server.anthropic_base_url
    settings = {
        "model": "fake-model",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "timeout_s": 5,
        "max_attempts": 3,
        "backoff_base_s": 0.01,
        **extra,
    }
    return actions.do_create_agent(actor, name=name, provider=provider, settings=settings)


def run_until_done(turn: Turn) -> Turn:
    run_turn.call(turn.pk)
    turn.refresh_from_db()
    return turn


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_turn_makes_a_candidate_and_a_follow_up_builds_on_it(
    provider: str, demo_task: Task, dave, alice, erin, model_server_factory, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")
    server = model_server_factory(TURN_ONE)
    agent = api_agent(dave, provider, server)
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run_until_done(run.turns.get())
    assert turn.status == TurnStatus.DONE, turn.error
    assert turn.exit_status == "submitted"
    candidate = turn.candidate
    assert "+Turn one was here." in candidate.patch
    assert (candidate.files_changed, candidate.lines_added, candidate.lines_removed) == (1, 2, 0)
    assert candidate.input_tokens == 400 and candidate.output_tokens == 80
    assert not candidate.fingerprints
    # Every step was saved, the malformed call included, with what the tool answered.
    steps = list(turn.steps.order_by("index"))
    assert [s.index for s in steps] == [1, 2, 3, 4]
    assert "not a JSON object" in steps[2].content["tool_outputs"][0]
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING and Path(run.workspace_path).is_dir()
    assert run.conversation[1] == {"role": "user", "content": "Add a line to README.md."}

    # A follow-up on a comparison continues both runs in their conversation and workspace.
    server.add(*TURN_TWO)
    other = actions.do_start_run(dave, demo_task, api_agent(dave, provider, server, name="other"))
    Turn.objects.filter(run=other).update(status=TurnStatus.DONE)
    Candidate.objects.create(turn=other.turns.get(), patch="")
    comparison = Comparison.objects.create(
        project=demo_task.project, task=demo_task, run_a=run, run_b=other
    )
    before = len(server.requests)
    follow_ups = actions.do_start_follow_up(alice, comparison, "Also add a CHANGES.md.")
    assert [t.number for t in follow_ups] == [2, 2]
    second = run_until_done(Turn.objects.get(run=run, number=2))
    assert second.status == TurnStatus.DONE, second.error
    history = json.dumps(server.requests[before].body)
    assert "Turn one was here." in history and "readme edited" in history
    assert "Also add a CHANGES.md." in history
    patch = second.candidate.patch
    assert "+Turn one was here." in patch and "+Turn two added this." in patch
    assert second.candidate.files_changed == 2
    assert [s.index for s in second.steps.order_by("index")] == [1, 2]


@pytest.mark.slow
def test_the_workspace_is_rebuilt_from_the_last_candidate_when_it_is_gone(
    demo_task: Task, dave, alice, model_server_factory, monkeypatch
) -> None:
    from marlin.sandbox.workspace import remove_workspace

    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")
    server = model_server_factory(
        [Reply(tool_calls=[Call("edit_file", FIRST_EDIT)]), *TURN_TWO[1:], *TURN_TWO]
    )
    run = actions.do_start_run(dave, demo_task, api_agent(dave, "openai", server))
    assert run_until_done(run.turns.get()).status == TurnStatus.DONE
    run.refresh_from_db()
    old_path = Path(run.workspace_path)
    remove_workspace(old_path)  # what a worker restart's sweep does
    turn = Turn.objects.create(run=run, number=2, prompt="Add CHANGES.md", status=TurnStatus.QUEUED)
    second = run_until_done(turn)
    assert second.status == TurnStatus.DONE, second.error
    run.refresh_from_db()
    assert Path(run.workspace_path) != old_path and Path(run.workspace_path).is_dir()
    assert "+Turn one was here." in second.candidate.patch
    assert "+Turn two added this." in second.candidate.patch


@pytest.mark.slow
def test_a_command_line_agent_in_the_sandbox_produces_a_candidate(demo_task: Task, dave) -> None:
    script = (
        "import sys; prompt = sys.stdin.read(); "
        "open('NOTES.md', 'w').write('notes\\n'); "
        "print('Earlier in this session' in prompt, 'done')"
    )
    agent = actions.do_create_agent(
        dave,
        name="script",
        provider=Provider.COMMAND,
        settings={"argv": ["python3", "-c", script], "timeout": 60},
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run_until_done(run.turns.get())
    assert turn.status == TurnStatus.DONE, turn.error
    assert turn.candidate.patch.count("+notes") == 1 and turn.candidate.files_changed == 1
    step = turn.steps.get()
    assert step.kind == "output" and "False done" in step.content["output"]
    # The follow-up gets the earlier transcript in front of its prompt.
    follow = Turn.objects.create(run=run, number=2, prompt="Again", status=TurnStatus.QUEUED)
    assert run_until_done(follow).status == TurnStatus.DONE
    assert "True done" in follow.steps.get().content["output"]


def test_a_command_agent_that_fails_and_changes_nothing_fails_the_turn(
    demo_task: Task, dave
) -> None:
    agent = actions.do_create_agent(
        dave,
        name="broken",
        provider=Provider.COMMAND,
        settings={"argv": "echo no such tool >&2; exit 3", "timeout": 30},
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run_until_done(run.turns.get())
    assert turn.status == TurnStatus.FAILED
    assert "exit:3" in turn.error and "no such tool" in turn.error
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and not Candidate.objects.filter(turn=turn).exists()


def test_a_provider_error_fails_the_turn_without_the_key(
    demo_task: Task, dave, model_server_factory, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-the-secret-value-42")
    server = model_server_factory([Fail(401, message="bad key sk-test-the-secret-value-42")])
    run = actions.do_start_run(dave, demo_task, api_agent(dave, "openai", server))
    turn = run_until_done(run.turns.get())
    assert turn.status == TurnStatus.FAILED
    assert "HTTP 401" in turn.error and "check the API key" in turn.error
    assert "sk-test-the-secret-value-42" not in turn.error and "[redacted]" in turn.error


def test_a_missing_key_fails_the_turn_with_what_to_do(
    demo_task: Task, dave, model_server_factory, monkeypatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    server = model_server_factory([])
    run = actions.do_start_run(dave, demo_task, api_agent(dave, "openai", server))
    turn = run_until_done(run.turns.get())
    assert turn.status == TurnStatus.FAILED
    assert f"{KEY_ENV} is not set" in turn.error
    assert server.requests == []


def test_an_unmirrored_repository_fails_the_turn_with_what_to_do(demo_task: Task, dave) -> None:
    demo_task.repository.mirror_status = "pending"
    demo_task.repository.save(update_fields=["mirror_status"])
    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    turn = run_until_done(actions.do_start_run(dave, demo_task, agent).turns.get())
    assert turn.status == TurnStatus.FAILED and "marlin repos mirror" in turn.error


def test_fingerprints_in_the_patch_and_the_trajectory_flag_the_candidate(
    demo_task: Task, dave, model_server_factory, monkeypatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")
    trailer = "Co-Authored-By: Claude <noreply@anthropic.com>"
    server = model_server_factory(
        [
            Reply(
                text="I am Claude, fixing this.",
                tool_calls=[
                    Call("write_file", {"path": "NOTES.md", "content": f"notes\n\n{trailer}\n"})
                ],
            ),
            Reply(tool_calls=[Call("finish", {"summary": "done"})]),
        ]
    )
    run = actions.do_start_run(dave, demo_task, api_agent(dave, "openai", server))
    candidate = run_until_done(run.turns.get()).candidate
    kinds = {(f["where"], f["kind"]) for f in candidate.fingerprints}
    assert ("patch", "trailer") in kinds and ("trajectory step 1", "model") in kinds
    assert trailer in candidate.patch and "Co-Authored-By" not in candidate.patch_for_experts
    step = TrajectoryStep.objects.get(turn__run=run, index=1)
    assert "Claude" in step.content["text"] and "Claude" not in json.dumps(step.scrubbed_content)


def test_a_command_agents_output_is_scrubbed_like_a_models_steps(demo_task: Task, dave) -> None:
    # The CLI's output names its model the ways the scrubber used to miss (a zero-width space,
    # a Cyrillic С, a non-breaking hyphen).
    script = (
        "printf 'Done by Cl\\u200baude and \\u0421laude on GPT\\u20114o\\n'; "
        "echo 'Made by the agent.' >> README.md"
    )
    agent = actions.do_create_agent(
        dave, name="printer", provider=Provider.COMMAND, settings={"argv": ["bash", "-c", script]}
    )
    run = actions.do_start_run(dave, demo_task, agent)
    candidate = run_until_done(run.turns.get()).candidate
    assert [(f["where"], f["kind"]) for f in candidate.fingerprints] == [
        ("trajectory step 1", "model")
    ] * 3
    step = TrajectoryStep.objects.get(turn__run=run, index=1)
    assert "Done by Cl\u200baude and \u0421laude on GPT\u20114o" in step.content["output"]
    assert "Done by [model] and [model] on [model]" in step.scrubbed_content["output"]


def test_a_turn_is_claimed_once(demo_task: Task, dave) -> None:
    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run.turns.get()
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.DONE)
    run_turn.call(turn.pk)  # a duplicate delivery of the job does nothing
    assert not Candidate.objects.filter(turn=turn).exists() and not turn.steps.exists()


def test_turns_whose_lease_expired_are_queued_again(
    demo_task: Task, dave, django_capture_on_commit_callbacks
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    run = actions.do_start_run(dave, demo_task, agent)
    turn = run.turns.get()
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.RUNNING)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert recover_expired_runs() == 0
    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as callbacks:
        assert recover_expired_runs() == 1
    assert len(callbacks) == 1
    turn.refresh_from_db()
    assert turn.status == TurnStatus.QUEUED


def test_starting_a_run_queues_turn_one_with_the_task_prompt(
    demo_task: Task, dave, alice, django_capture_on_commit_callbacks
) -> None:
    from django.core.exceptions import PermissionDenied

    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    with django_capture_on_commit_callbacks() as callbacks:
        run = actions.do_start_run(dave, demo_task, agent)
    assert len(callbacks) == 1
    turn = run.turns.get()
    assert (turn.number, turn.prompt, turn.status) == (1, demo_task.prompt, TurnStatus.QUEUED)
    with pytest.raises(PermissionDenied):
        actions.do_start_run(alice, demo_task, agent)


def test_a_follow_up_needs_both_sides_finished_and_a_prompt(demo_task: Task, dave, alice) -> None:
    from django.core.exceptions import ValidationError

    agent = actions.do_create_agent(
        dave, name="s", provider=Provider.COMMAND, settings={"argv": ["true"]}
    )
    a, b = (
        actions.do_start_run(dave, demo_task, agent),
        actions.do_start_run(dave, demo_task, agent),
    )
    comparison = Comparison.objects.create(
        project=demo_task.project, task=demo_task, run_a=a, run_b=b
    )
    with pytest.raises(ValidationError, match="Write the follow-up prompt"):
        actions.do_start_follow_up(alice, comparison, "  ")
    with pytest.raises(actions.IllegalTransition, match="turn 1 is queued"):
        actions.do_start_follow_up(alice, comparison, "more")


@pytest.mark.slow
def test_a_paired_task_becomes_a_comparison_when_both_runs_finish(
    demo_task: Task, dave, erin
) -> None:
    from marlin.agents.pairing import do_pair_task

    agents = [
        actions.do_create_agent(
            dave,
            name=f"writer-{n}",
            provider=Provider.COMMAND,
            settings={"argv": f"echo 'by writer {n}' > WRITER.md", "timeout": 30},
        )
        for n in (1, 2)
    ]
    actions.do_set_agent_pool(erin, demo_task.project, agents)
    first, second = do_pair_task(dave, demo_task, seed=1)
    run_until_done(first.turns.get())
    assert not Comparison.objects.exists()  # the partner has not finished yet
    run_until_done(second.turns.get())
    comparison = Comparison.objects.get()
    assert {comparison.run_a_id, comparison.run_b_id} == {first.pk, second.pk}
    patches = {
        c.turn.run.agent.name: c.patch for c in Candidate.objects.select_related("turn__run__agent")
    }
    assert "+by writer 1" in patches["writer-1"] and "+by writer 2" in patches["writer-2"]


@pytest.mark.slow
def test_a_turn_whose_worker_died_is_retried_on_a_clean_workspace_keeping_the_old_steps(
    demo_task: Task, dave, model_server_factory, monkeypatch
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from marlin.agents.jobs import prepare_workspace

    monkeypatch.setenv(KEY_ENV, "sk-test-0123456789abcdef")
    server = model_server_factory(
        [Reply(tool_calls=[Call("edit_file", FIRST_EDIT)]), *TURN_TWO[1:]]
    )
    run = actions.do_start_run(dave, demo_task, api_agent(dave, "openai", server))
    turn = run.turns.get()
    # What a worker that died mid-turn leaves: a running turn, an expired lease, a saved step and
    # a half-edited workspace.
    workspace = prepare_workspace(run, turn)
    (workspace / "HALF_DONE.txt").write_text("from the attempt that died\n")
    TrajectoryStep.objects.create(
        turn=turn, index=1, kind="model", content={"text": "first attempt"}
    )
    Turn.objects.filter(pk=turn.pk).update(status=TurnStatus.RUNNING, started_at=timezone.now())
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert recover_expired_runs() == 1
    turn = run_until_done(turn)
    assert turn.status == TurnStatus.DONE, turn.error
    assert [s.index for s in turn.steps.order_by("index")] == [1, 2, 3]
    assert turn.steps.get(index=1).content == {"text": "first attempt"}
    assert "HALF_DONE" not in turn.candidate.patch and "+Turn one was here." in turn.candidate.patch
    assert not workspace.exists()
