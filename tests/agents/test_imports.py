"""`marlin import swebench-tasks` and `marlin import predictions`: small files written by the tests
for each kind of problem, and the real SWE-bench Lite files from /work/shared/realdata."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marlin.agents import actions
from marlin.agents.models import Agent, Candidate, Provider, Run, Turn, TurnStatus
from marlin.audit.models import AuditEvent
from marlin.catalog.models import MirrorStatus, Repository
from marlin.tasks import actions as task_actions
from marlin.tasks.imports import ImportReport, read_records
from marlin.tasks.models import Project, Task, TaskStatus

REALDATA = Path("/work/shared/realdata/swebench_lite")
SHA = "a" * 40
PATCH = (
    "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n"
    "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
)
TEST_PATCH = (
    "diff --git a/test_calc.py b/test_calc.py\n--- a/test_calc.py\n+++ b/test_calc.py\n"
    "@@ -1 +1,2 @@\n import calc\n+assert calc.add(1, 2) == 3\n"
)


def task_record(instance_id: str, **overrides: object) -> dict:
    record = {
        "repo": "octo/calc",
        "instance_id": instance_id,
        "base_commit": SHA,
        "problem_statement": f"add() subtracts ({instance_id})\nIt should add.",
        "test_patch": TEST_PATCH,
        "FAIL_TO_PASS": json.dumps(
            ["test_calc.py::test_add"]
        ),  # a JSON string, as SWE-bench has it
        "PASS_TO_PASS": "[]",
        "patch": "the gold patch is not used",
    }
    record.update(overrides)
    return record


def run_import(*args: str) -> str:
    out = io.StringIO()
    call_command("import", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def project(db, erin) -> Project:
    return task_actions.do_create_project(erin, "SWE-bench Lite")


def write(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_it_imports_swebench_tasks_with_hidden_tests_and_reports_bad_records(
    project, tmp_path: Path
) -> None:
    lines = [
        json.dumps(task_record("octo__calc-1")),
        "{not json",
        json.dumps(task_record("octo__calc-2", base_commit="main")),
        json.dumps(task_record("octo__calc-3", problem_statement="")),
        json.dumps(task_record("octo__calc-1")),
        json.dumps(task_record("octo__calc-4", FAIL_TO_PASS="not a list")),
        json.dumps(task_record("other__lib-9", repo="other/lib", test_patch="", FAIL_TO_PASS=[])),
    ]
    output = run_import(
        "swebench-tasks", write(tmp_path, "tasks.jsonl", lines), "--project", project.name
    )
    assert "2 tasks imported, 0 already there, 5 bad records, of 7" in output
    for line_no, reason in [
        (2, "malformed JSON"),
        (3, "not a full 40-character commit SHA"),
        (4, "missing problem_statement"),
        (5, "duplicate instance_id octo__calc-1 (first on line 1)"),
        (6, "FAIL_TO_PASS is a string but not a JSON list"),
    ]:
        assert any(
            row.startswith(f"  line {line_no}: ") and reason in row for row in output.splitlines()
        ), (line_no, output)
    task = Task.objects.get(external_id="octo__calc-1")
    assert task.status == TaskStatus.DRAFT and task.kind == "bug_fix" and task.source == "swebench"
    assert task.base_commit == SHA and task.title.startswith("octo__calc-1: add() subtracts")
    [check] = task.checks
    assert check["kind"] == "hidden-tests" and check["fail_to_pass"] == ["test_calc.py::test_add"]
    assert check["command"] == "python -m pytest -q" and check["test_patch"] == TEST_PATCH
    assert Task.objects.get(external_id="other__lib-9").checks == []
    repository = Repository.objects.get(name="octo/calc")
    assert (
        repository.url == "https://github.com/octo/calc"
        and repository.mirror_status == MirrorStatus.PENDING
    )
    assert AuditEvent.objects.filter(verb="task.import").count() == 1

    # Importing again skips what is there and creates nothing twice.
    again = run_import(
        "swebench-tasks", write(tmp_path, "again.jsonl", lines[:1]), "--project", project.name
    )
    assert "0 tasks imported, 1 already there" in again
    assert Task.objects.filter(project=project).count() == 2 and Repository.objects.count() == 2


def test_approving_imported_tasks_needs_a_reviewer(project, tmp_path: Path, dave, erin) -> None:
    path = write(tmp_path, "t.jsonl", [json.dumps(task_record("octo__calc-1"))])
    with pytest.raises(CommandError, match="reviewer or admin"):
        run_import("swebench-tasks", path, "--project", project.name, "--approve", "--as", "dave")
    assert not Task.objects.exists()
    run_import(
        "swebench-tasks",
        path,
        "--project",
        project.name,
        "--approve",
        "--test-command",
        "pytest -x",
    )
    task = Task.objects.get()
    assert task.status == TaskStatus.APPROVED and task.checks[0]["command"] == "pytest -x"


@pytest.fixture
def calc_tasks(project, tmp_path: Path) -> Project:
    lines = [json.dumps(task_record(f"octo__calc-{n}")) for n in (1, 2)]
    run_import("swebench-tasks", write(tmp_path, "tasks.jsonl", lines), "--project", project.name)
    return project


def test_a_malformed_prediction_file_is_reported_line_by_line_and_the_rest_imported(
    calc_tasks, tmp_path: Path, dave
) -> None:
    actions.do_create_agent(dave, name="taken", provider=Provider.OPENAI, settings={"model": "m"})
    pred = {
        "instance_id": "octo__calc-1",
        "model_name_or_path": "agent-x",
        "model_patch": "\n\n" + PATCH,
    }
    lines = [
        json.dumps(pred),
        '{"instance_id": "octo__calc-2", "model_name_or_path": ',
        json.dumps({**pred, "instance_id": "octo__calc-404"}),
        json.dumps({**pred, "instance_id": "octo__calc-2", "model_patch": ""}),
        json.dumps({**pred, "instance_id": "octo__calc-2", "model_patch": "this is not a diff\n"}),
        json.dumps(pred),
        json.dumps(
            {
                "task_id": Task.objects.get(external_id="octo__calc-2").pk,
                "agent": "agent-y",
                "patch": PATCH,
            }
        ),
        json.dumps({**pred, "model_name_or_path": "taken"}),
        json.dumps({"instance_id": "octo__calc-2"}),
        "[1, 2]",
    ]
    output = run_import(
        "predictions", write(tmp_path, "preds.jsonl", lines), "--project", calc_tasks.name
    )
    assert "2 candidates imported, 0 already there, 8 bad records, of 10" in output
    for line_no, reason in [
        (2, "malformed JSON"),
        (3, "unknown instance id or task 'octo__calc-404'"),
        (4, "empty patch"),
        (5, "the patch does not parse"),
        (6, "duplicate prediction of agent-x for octo__calc-1 (first on line 1)"),
        (8, "is not an import agent"),
        (9, "missing model_name_or_path or agent"),
        (10, "expected a JSON object"),
    ]:
        assert any(
            row.startswith(f"  line {line_no}: ") and reason in row for row in output.splitlines()
        ), (line_no, output)
    candidate = Candidate.objects.get(turn__run__agent__name="agent-x")
    assert candidate.patch == PATCH  # leading blank lines dropped
    assert (candidate.files_changed, candidate.lines_added, candidate.lines_removed) == (1, 1, 1)
    turn = candidate.turn
    assert (turn.number, turn.status, turn.exit_status) == (1, TurnStatus.DONE, "imported")
    assert turn.prompt == turn.run.task.prompt
    assert Agent.objects.get(name="agent-x").provider == Provider.IMPORT
    assert Candidate.objects.filter(turn__run__agent__name="agent-y").count() == 1
    # Lines that failed left nothing behind: no run of "taken", no run for the unknown id.
    assert Run.objects.count() == Turn.objects.count() == Candidate.objects.count() == 2

    again = run_import(
        "predictions", write(tmp_path, "again.jsonl", lines[:1]), "--project", calc_tasks.name
    )
    assert "0 candidates imported, 1 already there" in again


def test_a_json_list_reports_records_by_their_line(calc_tasks) -> None:
    text = (
        '[\n  {"instance_id": "octo__calc-1",\n'
        '   "model_name_or_path": "a", "model_patch": ""},\n  7\n]\n'
    )
    report = ImportReport()
    records = list(read_records(text, report))
    assert [line for line, _ in records] == [2]
    assert report.errors[0].line_no == 4 and "expected a JSON object" in report.errors[0].reason
    broken = ImportReport()
    assert list(read_records('[{"a": 1},\n {"b": ]', broken)) == [(1, {"a": 1})]
    assert (
        broken.errors[0].line_no == 2
        and "records after it were not read" in broken.errors[0].reason
    )


def test_a_file_with_nothing_to_import_exits_1_and_an_unreadable_one_2(
    calc_tasks, tmp_path: Path
) -> None:
    with pytest.raises(CommandError) as nothing:
        run_import(
            "predictions", write(tmp_path, "bad.jsonl", ["{oops"]), "--project", calc_tasks.name
        )
    assert nothing.value.returncode == 1
    with pytest.raises(CommandError) as missing:
        run_import("predictions", str(tmp_path / "absent.jsonl"), "--project", calc_tasks.name)
    assert missing.value.returncode == 2
    with pytest.raises(CommandError, match="no project named 'Nope'") as project:
        run_import("predictions", write(tmp_path, "ok.jsonl", ["{}"]), "--project", "Nope")
    assert project.value.returncode == 2


@pytest.mark.slow
@pytest.mark.skipif(
    not REALDATA.is_dir(), reason=f"the real SWE-bench Lite files are not at {REALDATA}"
)
def test_it_imports_the_real_swebench_lite_tasks_and_three_prediction_files(project) -> None:
    output = run_import(
        "swebench-tasks",
        str(REALDATA / "tasks" / "swe-bench-lite.test.json"),
        "--project",
        project.name,
        "--setup",
        str(REALDATA / "tasks" / "acr_setup_info.lite.jsonl"),
    )
    assert "300 tasks imported, 0 already there, 0 bad records, of 300 (format: json)" in output
    assert Repository.objects.count() == 12  # the twelve SWE-bench repositories
    django_task = Task.objects.get(external_id="django__django-15202")
    assert django_task.checks[0]["fail_to_pass"] and django_task.base_commit.startswith("4fd3044c")
    assert Task.objects.exclude(setup_command="").count() > 250

    files = {
        "autocoderover-run2.json": 238,
        "coder-2024-06-04.jsonl": 300,
        "swe-agent-cost2-run2.jsonl": 268,
    }
    expected_total = 0
    for name, records in files.items():
        path = REALDATA / "predictions" / name
        raw = (
            json.loads(path.read_text())
            if name.endswith(".json")
            else [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        )
        empty = sum(1 for r in raw if not (r.get("model_patch") or "").strip())
        output = run_import("predictions", str(path), "--project", project.name)
        imported = int(output.split(" candidates imported")[0].split()[-1])
        assert f"of {records} " in output
        # Every record is imported except empty patches, each reported.
        assert imported == records - empty, output
        assert output.count("empty patch") == empty
        expected_total += imported
    assert Candidate.objects.count() == expected_total
    assert Agent.objects.filter(provider=Provider.IMPORT).count() == 3
    flagged = Candidate.objects.exclude(fingerprints=[]).count()
    assert flagged < expected_total / 4  # fingerprints are for real giveaways, not every patch


def test_the_same_predictions_under_another_version_label_are_a_new_agent(
    calc_tasks, tmp_path: Path
) -> None:
    line = json.dumps(
        {"instance_id": "octo__calc-1", "model_name_or_path": "agent-x", "model_patch": PATCH}
    )
    path = write(tmp_path, "p.jsonl", [line])
    run_import("predictions", path, "--project", calc_tasks.name)
    output = run_import(
        "predictions", path, "--project", calc_tasks.name, "--version-label", "rerun"
    )
    assert "1 candidates imported, 0 already there" in output
    assert sorted(Agent.objects.values_list("version_label", flat=True)) == ["1", "rerun"]


@pytest.mark.parametrize(
    ("field", "char", "reason"),
    [
        ("problem_statement", "\x00", "problem_statement contains a NUL character (U+0000)"),
        ("instance_id", "\x00", "instance_id contains a NUL character (U+0000)"),
        ("test_patch", "\x00", "test_patch contains a NUL character (U+0000)"),
        ("hints_text", "\x00", "hints_text contains a NUL character (U+0000)"),
        ("problem_statement", "\x1b", "problem_statement contains the control character U+001B"),
        ("repo", "\x07", "repo contains the control character U+0007"),
    ],
)
def test_a_nul_or_control_character_in_a_task_record_is_refused_with_its_line(
    project, tmp_path: Path, field: str, char: str, reason: str
) -> None:
    poisoned = task_record("octo__calc-2")
    poisoned[field] = f"{poisoned.get(field, 'hint')}{char}tail"
    lines = [
        json.dumps(task_record("octo__calc-1")),
        json.dumps(poisoned),
        json.dumps(task_record("octo__calc-3")),
    ]
    output = run_import(
        "swebench-tasks", write(tmp_path, "tasks.jsonl", lines), "--project", project.name
    )
    assert "2 tasks imported, 0 already there, 1 bad records, of 3" in output, output
    assert f"  line 2: {reason}" in output, output
    assert "remove it" in output and "unique constraint" not in output
    assert sorted(Task.objects.values_list("external_id", flat=True)) == [
        "octo__calc-1",
        "octo__calc-3",
    ]


def test_json_nested_too_deeply_is_a_bad_record_not_a_crash(project, tmp_path: Path) -> None:
    deep = '{"instance_id": ' + "[" * 100_000 + "]" * 100_000 + "}"
    lines = [deep, json.dumps(task_record("octo__calc-1"))]
    output = run_import(
        "swebench-tasks", write(tmp_path, "tasks.jsonl", lines), "--project", project.name
    )
    assert "  line 1: the JSON nests too deeply to be a record" in output, output
    assert Task.objects.get().external_id == "octo__calc-1"


def test_tabs_form_feeds_and_line_ends_in_records_are_kept(project, tmp_path: Path) -> None:
    text = "Steps:\r\n\tadd(1, 2)\x0c\nreturns -1"
    lines = [json.dumps(task_record("octo__calc-1", problem_statement=text))]
    run_import("swebench-tasks", write(tmp_path, "tasks.jsonl", lines), "--project", project.name)
    assert Task.objects.get().prompt == text


def test_a_nul_character_in_a_prediction_is_refused_with_its_line(
    calc_tasks, tmp_path: Path
) -> None:
    pred = {"instance_id": "octo__calc-1", "model_name_or_path": "agent-x", "model_patch": PATCH}
    lines = [
        json.dumps({**pred, "model_patch": PATCH.replace("a + b", "a +\x00 b")}),
        json.dumps({**pred, "model_name_or_path": "agent-\x00y"}),
        json.dumps({**pred, "instance_id": "octo__calc-2"}),
    ]
    output = run_import(
        "predictions", write(tmp_path, "preds.jsonl", lines), "--project", calc_tasks.name
    )
    assert "1 candidates imported, 0 already there, 2 bad records, of 3" in output, output
    assert "  line 1: model_patch contains a NUL character (U+0000)" in output
    assert "  line 2: model_name_or_path contains a NUL character (U+0000)" in output
    assert all("\x00" not in name for name in Agent.objects.values_list("name", flat=True))
    assert Candidate.objects.get().turn.run.task.external_id == "octo__calc-2"


def test_the_import_api_refuses_a_nul_character_with_its_line(calc_tasks, client, dave) -> None:
    from marlin.accounts.models import ApiToken

    _, raw = ApiToken.issue(dave, "tests")
    text = json.dumps(
        {"instance_id": "octo__calc-1", "model_name_or_path": "a\x00", "model_patch": PATCH}
    )
    response = client.post(
        "/api/imports/predictions",
        {"project_id": calc_tasks.pk, "text": text},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["created"] == 0
    assert body["errors"][0]["line"] == 1
    assert "model_name_or_path contains a NUL character" in body["errors"][0]["reason"]
