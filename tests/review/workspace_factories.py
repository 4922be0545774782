"""Build real comparisons for the expert-workspace tests: the demo repository mirrored into the
test's DATA_DIR, a task on it, two runs whose candidates are real patches of that repository,
trajectory steps and check results, paired by ``turn_finished`` as the agents' job does."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

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
from marlin.checks.models import CheckResult
from marlin.demo.load import demo_source_path, ensure_demo_repository
from marlin.demo.sample_repo import build_sample_repository, head_commit, patch_for, task_definition
from marlin.devtools.model_server import Call, FakeModelServer, Reply
from marlin.diffs.parse import patch_stats
from marlin.review.comparisons import turn_finished
from marlin.review.models import Comparison
from marlin.tasks.actions import do_approve_task, do_create_project, do_create_task
from marlin.tasks.models import Project, Task

TASK_KEY = "paren-negatives"
# Building the demo repository takes seconds; it is built once per test session and copied into
# each test's DATA_DIR (its commits have fixed dates, so every copy has the same SHAs).
_TEMPLATE: list[Path] = []
_PATCHES: dict[str, str] = {}


def prepare_demo_repository():
    source = demo_source_path()
    if not source.exists():
        if not _TEMPLATE:
            _TEMPLATE.append(
                build_sample_repository(
                    Path(tempfile.mkdtemp(prefix="marlin-demo-")) / "ledgerlite"
                )
            )
        shutil.copytree(_TEMPLATE[0], source, symlinks=True)
    return ensure_demo_repository()


def make_project(admin: Any, name: str = "Pilot", **policy: Any) -> Project:
    return do_create_project(admin, name, **policy)


def make_task(
    author: Any,
    project: Project,
    *,
    reviewer: Any = None,
    title: str | None = None,
    checks: list[dict] | None = None,
) -> Task:
    repository = prepare_demo_repository()
    spec = task_definition(TASK_KEY)
    task = do_create_task(
        author,
        project,
        repository=repository,
        base_ref="main",
        base_commit=head_commit(demo_source_path()),
        title=title or spec["title"],
        kind=spec["kind"],
        prompt=spec["prompt"],
        setup_command="",
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
        if checks is None
        else checks,
    )
    if reviewer is not None:
        do_approve_task(reviewer, task, comment="ok")
    return task


def demo_patch(files: dict[str, str]) -> str:
    key = repr(sorted(files.items()))
    if key not in _PATCHES:
        _PATCHES[key] = patch_for(demo_source_path(), files)
    return _PATCHES[key]


def candidate_files(kind: str) -> dict[str, str]:
    return dict(task_definition(TASK_KEY)["candidates"][kind])


def add_turn(
    run: Run,
    number: int,
    patch: str,
    *,
    prompt: str = "",
    pk: int | None = None,
    scrubbed_patch: str = "",
    fingerprints: list | None = None,
    steps: list[dict] | None = None,
    checks: list[dict] | None = None,
) -> Turn:
    turn = Turn.objects.create(
        pk=pk, run=run, number=number, prompt=prompt or run.task.prompt, status=TurnStatus.DONE
    )
    stats = patch_stats(patch)
    Candidate.objects.create(
        pk=pk and pk + 1,
        turn=turn,
        patch=patch,
        files_changed=stats.files,
        lines_added=stats.added,
        lines_removed=stats.removed,
        scrubbed_patch=scrubbed_patch,
        fingerprints=fingerprints or [],
    )
    for index, content in enumerate(steps or [], 1):
        TrajectoryStep.objects.create(turn=turn, index=index, kind="model", content=content)
    for index, check in enumerate(checks or []):
        CheckResult.objects.create(
            candidate=turn.candidate, check_index=index, kind="command", **check
        )
    return turn


def make_run(task: Task, agent: Agent, *, pk: int | None = None) -> Run:
    return Run.objects.create(pk=pk, task=task, agent=agent, status=RunStatus.WAITING)


def make_agent(name: str, *, pk: int | None = None) -> Agent:
    return Agent.objects.create(
        pk=pk, name=name, provider=Provider.IMPORT, settings={"model": f"{name.lower()}-coder-7b"}
    )


def make_comparison(
    admin: Any,
    author: Any,
    *,
    project: Project | None = None,
    names: tuple[str, str] = ("Zephyr", "Quokka"),
    pk_base: int | None = None,
    steps: dict[str, list[dict]] | None = None,
    **policy: Any,
) -> Comparison:
    """Two runs on a fresh task with the demo's good and flawed candidates, paired as the agents'
    job pairs them. ``pk_base`` gives every agent/run/turn/candidate a large distinctive id."""
    project = project or make_project(admin, **policy)
    task = make_task(author, project)
    runs = []
    for offset, (name, kind) in enumerate(zip(names, ("good", "flawed"), strict=True)):
        pk = None if pk_base is None else pk_base + offset * 1000
        agent = Agent.objects.filter(name=name).first() or make_agent(name, pk=pk)
        run = make_run(task, agent, pk=pk and pk + 100)
        runs.append(run)
        add_turn(
            run,
            1,
            demo_patch(candidate_files(kind)),
            pk=pk and pk + 200,
            steps=(steps or {}).get(name),
            checks=[
                {
                    "name": "unit tests",
                    "status": "passed" if kind == "good" else "failed",
                    "passed": 4,
                    "failed": 0 if kind == "good" else 2,
                }
            ],
        )
    turn_finished(runs[0].turns.get(number=1))
    comparison = turn_finished(runs[1].turns.get(number=1))
    assert comparison is not None
    return comparison


def source_path() -> Path:
    return demo_source_path()


KEY_ENV = "MARLIN_TEST_MODEL_KEY"
NAMES = ("SecretAgentZephyr", "SecretAgentQuokka")


def model_writes(path: str, content: str, summary: str) -> list[Reply]:
    return [
        Reply(
            text=f"Writing {path}.",
            tool_calls=[Call("write_file", {"path": path, "content": content})],
        ),
        Reply(tool_calls=[Call("finish", {"summary": summary})]),
    ]


def paired_comparison(
    erin, dave, server: FakeModelServer, *, checks: list[dict] | None = None, **policy: Any
) -> Comparison:
    """Two API agents answered by one fake model server, paired by the agents' pairing action
    and run by the real run_turn job; turn 1 of each run adds a different line to the README."""
    from marlin.agents import actions as agent_actions
    from marlin.agents.jobs import run_turn
    from marlin.agents.pairing import do_pair_task

    project = make_project(erin, **policy)
    task = make_task(dave, project, reviewer=erin, checks=checks)
    agents = [
        agent_actions.do_create_agent(
            erin,
            name=name,
            provider="openai",
            settings={
                "model": f"{name.lower()}-1",
                "base_url": server.openai_base_url,
                "api_key_env": KEY_ENV,
                "timeout_s": 10,
                "max_attempts": 2,
                "backoff_base_s": 0.01,
            },
        )
        for name in NAMES
    ]
    agent_actions.do_set_agent_pool(erin, project, agents)
    first, second = do_pair_task(erin, task, seed=1)
    for run, text in ((first, "first"), (second, "second")):
        edit = {
            "path": "README.md",
            "old_str": "# ledgerlite\n",
            "new_str": f"# ledgerlite\n\nThe {text} run was here.\n",
        }
        server.add(
            Reply(tool_calls=[Call("edit_file", edit)]),
            Reply(tool_calls=[Call("finish", {"summary": "readme"})]),
        )
        run_turn.call(run.turns.get(number=1).pk)
        assert run.turns.get(number=1).status == TurnStatus.DONE, run.turns.get(number=1).error
    return Comparison.objects.get(task=task)
