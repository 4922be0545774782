"""The BugsInPy-derived tasks of ../shared/realdata that reproduce give the recorded verdict for
the fix, no change and the tests alone, through the real import, environment and check jobs.

The repositories' history comes from local bare mirrors of PySnooper, thefuck and tqdm (the
fetch layout: MARLIN_REALDATA_MIRRORS/<owner>+<name>/repo), copied into the test's directory;
tests never download a repository. The environments install each task's recorded packages from
the package registry through the sandbox's egress proxy, so the test runs only when the mirrors
are given (benchmarks/swebench_fidelity.py --bugsinpy runs the same tasks and records the
result in docs/benchmarks.md).
"""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from marlin.agents.imports import do_import_predictions
from marlin.agents.models import Candidate
from marlin.catalog.models import MirrorStatus, Repository
from marlin.checks.jobs import run_candidate_checks
from marlin.checks.models import CheckResult
from marlin.tasks import actions as task_actions
from marlin.tasks.imports import do_import_swebench_tasks

REALDATA = Path(os.environ.get("MARLIN_REALDATA", "/work/shared/realdata"))
TASKS = REALDATA / "task_repos" / "bugsinpy_derived_tasks.jsonl"
MIRRORS = os.environ.get("MARLIN_REALDATA_MIRRORS", "")
REPOS = ("cool-RR/PySnooper", "nvbn/thefuck", "tqdm/tqdm")
# A change that touches no code: the bug stays.
NO_OP = (
    "diff --git a/NOOP.md b/NOOP.md\nnew file mode 100644\n--- /dev/null\n+++ b/NOOP.md\n"
    "@@ -0,0 +1 @@\n+No change.\n"
)


def _missing() -> str:
    if not TASKS.is_file():
        return f"no BugsInPy-derived tasks at {TASKS}"
    if not MIRRORS:
        return (
            "MARLIN_REALDATA_MIRRORS is not set: give a directory holding bare mirrors "
            "<owner>+<name>/repo of " + ", ".join(REPOS) + " (the environments then install "
            "the tasks' recorded packages from the registry)"
        )
    absent = [r for r in REPOS if not (Path(MIRRORS) / r.replace("/", "+") / "repo").is_dir()]
    return f"no mirror of {', '.join(absent)} under {MIRRORS}" if absent else ""


pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(bool(_missing()), reason=_missing()),
]


def reproducing_tasks() -> list[dict]:
    tasks = []
    for line in TASKS.read_text().splitlines():
        record = json.loads(line)
        verified = record["verified_here"]
        if isinstance(verified, str):
            verified = ast.literal_eval(verified)
        if not verified.get("reproduces"):
            continue
        python = ".".join(str(verified["python"]).split(".")[:2])
        # The environment in Marlin's own spec format: the Python and packages that verified it.
        record["environment"] = {
            "python": python,
            "pip_packages": shlex.split(verified["pip_install"]),
        }
        tasks.append(record)
    return tasks


def test_reproducing_bugsinpy_tasks_give_the_recorded_verdicts(erin, settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.EGRESS_INTERNAL_HOSTS = ["pypi.org", "files.pythonhosted.org"]
    records = reproducing_tasks()
    assert len(records) == 13
    for repo in REPOS:
        mirror = tmp_path / f"{repo.replace('/', '+')}.git"
        source = Path(MIRRORS) / repo.replace("/", "+") / "repo"
        subprocess.run(["git", "clone", "-q", "--mirror", str(source), str(mirror)], check=True)
        Repository.objects.create(
            url=str(mirror),
            normalized_url=f"local:{mirror}",
            name=repo,
            is_local=True,
            mirror_status=MirrorStatus.READY,
            mirror_path=str(mirror),
        )
    project = task_actions.do_create_project(erin, "BugsInPy")
    project.allow_setup_network = True
    project.save()
    report = do_import_swebench_tasks(erin, project, json.dumps(records), approve=True)
    assert report.created == 13, [e.reason for e in report.errors]
    patches = {"fix": "patch", "no-op": None, "tests-only": "test_patch"}
    for name, field in patches.items():
        predictions = [
            {
                "instance_id": r["instance_id"],
                "model_name_or_path": name,
                "model_patch": r[field] if field else NO_OP,
            }
            for r in records
        ]
        assert do_import_predictions(erin, project, json.dumps(predictions)).created == 13
    for candidate in Candidate.objects.filter(turn__run__task__project=project):
        run_candidate_checks.call(candidate.pk)
    verdicts = {
        (r.candidate.turn.run.task.external_id, r.candidate.turn.run.agent.name): r
        for r in CheckResult.objects.select_related("candidate__turn__run__task__project")
    }
    wrong = [
        f"{instance} [{name}]: {result.status}: {result.detail[:200]}"
        for (instance, name), result in sorted(verdicts.items())
        if (result.status == "passed") != (name == "fix")
    ]
    assert len(verdicts) == 39
    assert not wrong, "\n".join(wrong)
