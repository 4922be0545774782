"""`marlin import swebench-tasks` on real records: SWE-bench Lite instances become swebench
checks with their environment spec, a registered repository is found by owner/name (or named
with --repository), BugsInPy-derived records without a problem statement come in with a
warning, and every record is reported in the file's order."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marlin.catalog.models import MirrorStatus, Repository
from marlin.grading import swebench
from marlin.tasks import actions as task_actions
from marlin.tasks.models import Project, Task

REALDATA = Path(os.environ.get("MARLIN_REALDATA", "/work/shared/realdata"))
LITE = REALDATA / "swebench_lite" / "tasks" / "swe-bench-lite.test.json"
BUGSINPY = REALDATA / "task_repos" / "bugsinpy_derived_tasks.jsonl"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "dave",
    "GIT_AUTHOR_EMAIL": "dave@example.org",
    "GIT_COMMITTER_NAME": "dave",
    "GIT_COMMITTER_EMAIL": "dave@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
}

needs_realdata = pytest.mark.skipif(
    not LITE.is_file() or not BUGSINPY.is_file(), reason=f"no real data at {REALDATA}"
)


def run_import(*args: str) -> str:
    out = io.StringIO()
    call_command("import", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def project(db, erin) -> Project:
    return task_actions.do_create_project(erin, "Real data")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def local_repository(root: Path, name: str, files: dict[str, str]) -> tuple[Repository, str]:
    """A mirrored local repository registered as `name`, holding `files`; and its commit."""
    src = root / "src"
    for path, text in files.items():
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text(text)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "base")
    mirror = root / "mirror.git"
    git(root, "clone", "-q", "--mirror", str(src), str(mirror))
    repository = Repository.objects.create(
        url=str(src),
        normalized_url=f"local:{src}",
        name=name,
        is_local=True,
        mirror_status=MirrorStatus.READY,
        mirror_path=str(mirror),
    )
    return repository, git(src, "rev-parse", "HEAD")


def lite_records(repo: str) -> list[dict]:
    return [r for r in json.loads(LITE.read_text()) if r["repo"] == repo]


@needs_realdata
def test_lite_instances_become_swebench_checks_in_the_registered_repository(
    project: Project, tmp_path: Path
) -> None:
    flask, _ = local_repository(tmp_path, "pallets/flask", {"README.md": "flask\n"})
    path = tmp_path / "flask.json"
    path.write_text(json.dumps(lite_records("pallets/flask")))
    output = run_import("swebench-tasks", str(path), "--project", project.name)
    assert "3 tasks imported, 0 already there, 0 bad records, of 3" in output
    # Found by owner/name: no second, unmirrorable github.com row.
    assert Repository.objects.count() == 1
    task = Task.objects.get(external_id="pallets__flask-4992")
    assert task.repository == flask
    [check] = task.checks
    assert check["kind"] == "swebench" and check["command"] == "pytest -rA"
    assert (check["repo"], check["version"], check["log_parser"]) == (
        "pallets/flask",
        "2.3",
        swebench.parser_for("pallets/flask"),
    )
    assert task.environment_spec["python"] == "3.11"
    assert "Werkzeug==2.3.7" in task.environment_spec["pip_packages"]
    # The environment setup commit is not in this small mirror: said, not silently dropped.
    assert any("requirements file could not be read" in w for w in task.import_warnings)
    for line_no, instance_id in enumerate(
        ["pallets__flask-4045", "pallets__flask-4992", "pallets__flask-5063"]
    ):
        assert f"  line {line_no + 2} {instance_id}: created" in output or instance_id in output


@needs_realdata
def test_repository_option_names_the_repository_for_every_record(
    project: Project, tmp_path: Path
) -> None:
    mirror, _ = local_repository(tmp_path, "mirrors/flask-copy", {"README.md": "flask\n"})
    path = tmp_path / "flask.json"
    path.write_text(json.dumps(lite_records("pallets/flask")[:1]))
    with pytest.raises(CommandError, match="no registered repository 'nowhere/none'"):
        run_import(
            "swebench-tasks", str(path), "--project", project.name, "--repository", "nowhere/none"
        )
    assert not Task.objects.exists()
    run_import(
        "swebench-tasks", str(path), "--project", project.name, "--repository", "mirrors/flask-copy"
    )
    task = Task.objects.get()
    assert task.repository == mirror
    assert any("imported into mirrors/flask-copy as asked" in w for w in task.import_warnings)


@needs_realdata
def test_bugsinpy_records_without_a_problem_statement_are_imported_with_a_warning(
    project: Project, tmp_path: Path, client_for, erin
) -> None:
    records = [json.loads(line) for line in BUGSINPY.read_text().splitlines()[:2]]
    record = records[0]
    base = record["base_commit"]
    # A mirror of PySnooper holding the test file at a commit of its own; the task's base
    # commit is the record's, which this mirror lacks: ids cannot be checked there.
    local_repository(tmp_path, "cool-RR/PySnooper", {"tests/test_chinese.py": "def test_x(): 1\n"})
    nothing = {"instance_id": "empty-1", "repo": "cool-RR/PySnooper", "base_commit": base}
    lines = [json.dumps(records[0]), json.dumps(nothing), json.dumps(records[1])]
    path = tmp_path / "bugsinpy.jsonl"
    path.write_text("\n".join(lines) + "\n")
    output = run_import("swebench-tasks", str(path), "--project", project.name)
    assert "2 tasks imported, 0 already there, 1 bad records, of 3" in output
    report = output[output.index("Per record") :].splitlines()[1:]
    assert report[0].startswith("  line 1 PySnooper-bugsinpy-1: created (the record has no")
    assert report[1].startswith("  line 2 empty-1: error (missing problem_statement (nor any of")
    assert report[2].startswith("  line 3 PySnooper-bugsinpy-2: created")
    task = Task.objects.get(external_id="PySnooper-bugsinpy-1")
    assert task.prompt == record["fixed_commit_subject"]
    assert task.checks[0]["kind"] == "hidden-tests"
    page = client_for(erin).get(f"/tasks/{task.pk}/").content.decode()
    assert "Import warnings:" in page and "fixed_commit_subject" in page


def test_listed_ids_absent_at_the_base_commit_are_warned_about_on_import(
    project: Project, tmp_path: Path
) -> None:
    _, commit = local_repository(
        tmp_path,
        "octo/calc",
        {
            "tests/test_calc.py": "import pytest\n\n\nclass TestAdd:\n    def test_small(self):\n"
            "        pass\n\n\n@pytest.mark.parametrize('x', [1])\ndef test_param(x):\n    pass\n",
        },
    )
    test_patch = (
        "diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1,2 @@\n+def test_added():\n+    pass\n"
    )
    record = {
        "instance_id": "octo__calc-1",
        "repo": "octo/calc",
        "base_commit": commit,
        "problem_statement": "Add things.",
        "test_patch": test_patch,
        "FAIL_TO_PASS": ["tests/test_new.py::test_added", "tests/test_calc.py::TestAdd"],
        "PASS_TO_PASS": [
            "tests/test_calc.py::test_param[1]",
            "tests/test_calc.py::TestAdd::test_gone",
            "tests/test_missing.py::test_a",
        ],
    }
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record) + "\n")
    run_import("swebench-tasks", str(path), "--project", project.name)
    warnings = Task.objects.get().import_warnings
    assert warnings == [
        "test id tests/test_calc.py::TestAdd::test_gone may not exist in this repository: no "
        "function or class test_gone in tests/test_calc.py at the base commit with the test patch",
        "test id tests/test_missing.py::test_a does not exist in this repository: "
        "tests/test_missing.py is neither at the base commit nor added by the test patch",
    ]
    # Importing the same record again changes nothing; a changed draft is updated.
    again = run_import("swebench-tasks", str(path), "--project", project.name)
    assert "line 1 octo__calc-1: skipped (octo__calc-1 is already a task of this project, " in again
    record["problem_statement"] = "Add things, and fast."
    path.write_text(json.dumps(record) + "\n")
    updated = run_import("swebench-tasks", str(path), "--project", project.name)
    assert "line 1 octo__calc-1: updated" in updated
    assert Task.objects.get().prompt == "Add things, and fast."


def test_a_repository_is_named_by_its_name_url_path_or_id(db, tmp_path: Path) -> None:
    from marlin.tasks.imports import find_repository

    github = Repository.objects.create(
        url="https://github.com/pallets/flask",
        normalized_url="github.com/pallets/flask",
        name="pallets/flask",
        host="github.com",
    )
    local, _ = local_repository(tmp_path, "mirrors/tqdm", {"README.md": "tqdm\n"})
    assert find_repository("Pallets/Flask") == github
    assert find_repository("https://github.com/pallets/flask.git") == github
    assert find_repository(str(tmp_path / "src")) == local
    assert find_repository(str(local.pk)) == local
    assert find_repository("https://github.com/pallets/quart") is None
    assert find_repository("/etc") is None


def test_a_local_mirror_in_the_owner_plus_name_layout_is_found_by_owner_name(
    project: Project, tmp_path: Path
) -> None:
    mirror, commit = local_repository(tmp_path / "pallets+flask" / "repo", "x/y", {"a.py": ""})
    mirror.normalized_url = f"local:{tmp_path}/pallets+flask/repo"
    mirror.save()
    record = {
        "instance_id": "pallets__flask-1",
        "repo": "pallets/flask",
        "base_commit": commit,
        "problem_statement": "Fix it.",
    }
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record) + "\n")
    run_import("swebench-tasks", str(path), "--project", project.name)
    assert Task.objects.get().repository == mirror
    assert Repository.objects.count() == 1
