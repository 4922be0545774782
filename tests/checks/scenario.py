"""Rows for check-job tests and the checks benchmark: the demo repository, a task with the demo's
checks, and candidates made directly with the ORM (no agent runs).

Also a small command line for tests that drive real worker processes against a database file:

    python -m tests.checks.scenario setup --command "sleep 3 && python -m pytest -q"
    python -m tests.checks.scenario status CANDIDATE_ID
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from marlin.sandbox.tools import ensure_tools

SHARED_TOOLS_ROOT = Path(os.environ.get("MARLIN_TEST_TOOLS_ROOT", "/tmp/marlin-test-tools"))  # noqa: S108
DEMO_KEY = "paren-negatives"


def link_shared_tools(data_dir: Path) -> None:
    """Point the data directory's tools venv at the one tests share: building it takes a minute
    and the registry, so it is built once per machine."""
    shared = ensure_tools(SHARED_TOOLS_ROOT)
    link = Path(data_dir) / "tools"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared, target_is_directory=True)


def demo_source() -> Path:
    from marlin import paths

    return paths.data_dir() / "demo-src" / "ledgerlite"


def demo_task(
    key: str = DEMO_KEY,
    *,
    checks: list[dict] | None = None,
    setup_command: str = "",
    title: str | None = None,
    allow_setup_network: bool = False,
):  # type: ignore[no-untyped-def]
    """A task on the mirrored demo repository with the demo's checks for `key` (or `checks`)."""
    from marlin.demo.load import demo_checks, ensure_demo_repository
    from marlin.demo.sample_repo import head_commit, patch_for, task_definition
    from marlin.tasks.models import Project, Rubric, Task, TaskStatus

    repository = ensure_demo_repository()
    source = demo_source()
    if checks is None:
        spec = dict(task_definition(key))
        if spec.get("hidden_test"):
            spec["hidden_test_patch"] = patch_for(
                source, {spec["hidden_test_path"]: spec["hidden_test"]}
            )
        checks = [c for c in demo_checks(spec) if c["kind"] in ("command", "hidden-tests")]
    rubric, _ = Rubric.objects.get_or_create(name="checks rubric")
    project, _ = Project.objects.get_or_create(
        name=f"checks project (network {'on' if allow_setup_network else 'off'})",
        defaults={"rubric": rubric, "allow_setup_network": allow_setup_network},
    )
    return Task.objects.create(
        project=project,
        repository=repository,
        base_ref="main",
        base_commit=head_commit(source),
        title=title or f"demo task {key}",
        prompt="Make the hidden tests pass.",
        setup_command=setup_command,
        checks=checks,
        status=TaskStatus.APPROVED,
    )


def make_candidate(task, patch: str, agent_name: str = "agent-good"):  # type: ignore[no-untyped-def]
    from marlin.agents.models import Agent, Candidate, Provider, Run, RunStatus, Turn, TurnStatus

    agent, _ = Agent.objects.get_or_create(
        name=agent_name, version_label="1", defaults={"provider": Provider.IMPORT}
    )
    run = Run.objects.create(task=task, agent=agent, status=RunStatus.WAITING)
    turn = Turn.objects.create(run=run, number=1, prompt=task.prompt, status=TurnStatus.DONE)
    return Candidate.objects.create(turn=turn, patch=patch)


def demo_patches(key: str = DEMO_KEY) -> dict[str, str]:
    from marlin.demo.load import ensure_demo_repository
    from marlin.demo.sample_repo import candidate_patches

    ensure_demo_repository()  # builds the source repository on first use
    return candidate_patches(demo_source(), key)


def _setup(args: argparse.Namespace) -> None:
    from django.db import transaction

    from marlin import paths
    from marlin.checks.jobs import enqueue_checks

    link_shared_tools(paths.data_dir())
    checks = [{"kind": "command", "name": "slow tests", "command": args.command}]
    with transaction.atomic():
        task = demo_task(checks=checks)
        candidate = make_candidate(task, demo_patches()[args.patch])
        enqueue_checks(candidate)
    print(json.dumps({"candidate": candidate.pk, "task": task.pk}))


def _status(args: argparse.Namespace) -> None:
    from marlin.checks.models import CheckResult

    rows = list(
        CheckResult.objects.filter(candidate_id=args.candidate).values(
            "status", "attempts", "passed", "failed", "detail"
        )
    )
    print(json.dumps(rows))


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marlin.settings")
    import django

    django.setup()
    parser = argparse.ArgumentParser(prog="scenario")
    sub = parser.add_subparsers(dest="action", required=True)
    setup = sub.add_parser("setup")
    setup.add_argument("--command", default="python -m pytest -q")
    setup.add_argument("--patch", choices=["good", "flawed"], default="good")
    status = sub.add_parser("status")
    status.add_argument("candidate", type=int)
    args = parser.parse_args(argv)
    {"setup": _setup, "status": _status}[args.action](args)


if __name__ == "__main__":
    main(sys.argv[1:])
