"""What the setup builds into the checkout is there for every check (issue 13): the setup's tree
is kept as the read-only base of each candidate's workspace, a copy-on-write layer over it.

Runs the check jobs for real (bwrap, the demo repository's mirror, the shared tools venv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlin import paths
from marlin.checks.jobs import enqueue_checks, run_candidate_checks
from marlin.checks.models import CheckResult
from marlin.demo.sample_repo import head_commit
from marlin.tasks.jobs import environment_for
from marlin.tasks.models import EnvironmentStatus
from tests.checks.scenario import demo_patches, demo_source, demo_task, make_candidate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# What a build writes into the source tree: a generated module (like setuptools_scm's
# _version.py, which asks git for the version) and a file the checks must not be able to change.
SETUP = (
    "set -e; "
    'printf "VERSION = %s\\n" "\\"$(git rev-parse HEAD)\\"" > generated_version.py; '
    "git status --porcelain --untracked-files=no > git-status.txt; "
    "echo from-setup > built-by-setup.txt"
)
IMPORTS_GENERATED = (
    "python -c 'import generated_version; print(\"generated\", generated_version.VERSION)'"
)
# Writes over a build output and adds a file: both stay in this candidate's layer.
WRITES = "echo changed > built-by-setup.txt && echo mine > only-in-my-layer.txt"


def _rows(candidate) -> dict[str, CheckResult]:  # type: ignore[no-untyped-def]
    return {row.name: row for row in CheckResult.objects.filter(candidate=candidate)}


def test_a_module_the_setup_generated_is_importable_by_every_check_of_every_candidate() -> None:
    checks = [
        {"kind": "command", "name": "imports generated", "command": IMPORTS_GENERATED},
        {"kind": "command", "name": "writes", "command": WRITES},
        # git works inside the check too, and sees the patch applied in the layer.
        {"kind": "command", "name": "sees its patch", "command": "git diff --name-only HEAD"},
    ]
    task = demo_task(checks=checks, setup_command=SETUP)
    commit = head_commit(demo_source())
    patches = demo_patches()
    candidates = [
        make_candidate(task, patches["good"], "agent-a"),
        make_candidate(task, patches["flawed"], "agent-b"),
    ]
    for candidate in candidates:
        enqueue_checks(candidate)
        run_candidate_checks.call(candidate.pk)

    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.READY, environment.log
    tree = Path(environment.path) / "tree"
    for candidate in candidates:
        rows = _rows(candidate)
        imported = rows["imports generated"]
        assert imported.status == "passed", imported.log + imported.detail
        # git inside the setup's sandbox answered from the mirror: the version is the commit.
        assert f"generated {commit}" in imported.log
        assert rows["writes"].status == "passed", rows["writes"].log + rows["writes"].detail
        diffed = rows["sees its patch"]
        assert diffed.status == "passed", diffed.log + diffed.detail
        assert "ledgerlite/money.py" in diffed.log
    # One base for both candidates, untouched by their checks; the clean checkout had no
    # local changes in git's eyes.
    assert (tree / "built-by-setup.txt").read_text() == "from-setup\n"
    assert not (tree / "only-in-my-layer.txt").exists()
    assert (tree / "git-status.txt").read_text() == ""
    assert sorted(p.name for p in Path(environment.path).iterdir()) == [
        "base.json",
        "env",
        "git",
        "tree",
    ]
    # The layers are gone once the checks finished; nothing is left in the workspaces folder.
    assert list(paths.workspaces_dir().iterdir()) == []


def test_a_failed_setup_keeps_no_tree() -> None:
    task = demo_task(
        checks=[{"kind": "command", "name": "imports generated", "command": IMPORTS_GENERATED}],
        setup_command="echo half > generated_version.py; exit 2",
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)
    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.FAILED
    assert environment.path == ""
    assert not (paths.environments_dir() / str(environment.pk)).exists()
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "error" and "the environment is failed" in row.detail
