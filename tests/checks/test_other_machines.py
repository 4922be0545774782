"""A check run by the worker of another machine: its own data directory, the same database. The
repository's mirror was made on machine A; machine B's worker clones its own, then runs the
checks in its sandbox (catalog.jobs.local_mirror). The PostgreSQL pass of the suite makes the
two share a PostgreSQL database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marlin.catalog.jobs import mirror_path_for
from marlin.catalog.mirror import is_mirror
from marlin.checks.jobs import enqueue_checks, run_candidate_checks
from marlin.checks.models import CheckResult
from tests.checks.scenario import demo_patches, demo_task, link_shared_tools, make_candidate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_a_worker_of_another_machine_clones_the_mirror_then_runs_the_checks(
    settings, tmp_path: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True  # the demo repository is a local one
    task = demo_task()  # machine A made the mirror, in its data directory
    candidate = make_candidate(task, demo_patches()["good"])
    on_a = Path(task.repository.mirror_path)
    shutil.move(on_a.parent, tmp_path / "machine-a-mirrors")  # not on machine B's disk
    machine_b = tmp_path / "machine-b"
    link_shared_tools(machine_b)
    settings.DATA_DIR = machine_b

    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)

    results = list(CheckResult.objects.filter(candidate=candidate))
    assert results and {r.status for r in results} == {"passed"}, [
        (r.status, r.detail) for r in results
    ]
    on_b = mirror_path_for(task.repository)
    assert on_b.is_relative_to(machine_b) and is_mirror(on_b)
