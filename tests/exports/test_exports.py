"""Exports written by the real job, read back with pyarrow and json, checked against the
database.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marlin.agents.models import Candidate, Run
from marlin.analytics.queries import DecisionFilters
from marlin.exports.actions import ExportError, do_create_export
from marlin.exports.build import preference_rows
from marlin.exports.jobs import write_export
from marlin.exports.models import Export, ExportStatus
from marlin.exports.writers import (
    PREFERENCE_SCHEMA,
    openai_preference,
    verify_manifest,
    write_parquet,
)
from marlin.review.models import Decision
from tests.analytics_views.factories import league, make_agent, make_project


@pytest.fixture
def decided(db, alice, make_user, bob):
    anna = make_user("anna", "annotator")
    project = make_project("Ledgerlite")
    agents = [
        make_agent("claude-code", "1.0"),
        make_agent("codex", "2"),
        make_agent("aider", "0.9"),
    ]
    # (A, B, overall): negative prefers A. One tie, which preference exports leave out.
    league(
        project,
        agents,
        [(0, 1, -2), (1, 2, 3), (2, 0, 1), (0, 2, 0), (1, 0, -1)],
        annotators=[alice, anna],
        reviewer=bob,
    )
    return project


def run_export(actor, project, kind, **options) -> Export:
    export = do_create_export(actor, project, kind, enqueue=False, **options)
    write_export.call(export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE, export.error
    return export


def test_preference_pairs_read_back_with_pyarrow_match_the_database(decided, erin):
    export = run_export(erin, decided, "preferences")
    directory = Path(export.directory)
    assert directory.parent.name == "exports" and directory.name.startswith(
        f"{export.pk}-preferences-"
    )
    assert verify_manifest(directory) == []
    table = pq.read_table(directory / "preferences.parquet")
    rows = table.to_pylist()
    lines = [
        json.loads(line) for line in (directory / "preferences.jsonl").read_text().splitlines()
    ]
    assert rows == lines
    decisions = {
        d.comparison.public_id: d
        for d in Decision.objects.select_related("comparison__task__repository")
    }
    assert len(rows) == 4 and export.manifest["counts"]["ties_excluded"] == 1
    for row in rows:
        d = decisions[row["comparison_id"]]
        c = d.comparison
        chosen, rejected = (c.run_a, c.run_b) if d.overall < 0 else (c.run_b, c.run_a)
        assert row["chosen"] == [
            {"role": "assistant", "content": chosen.turns.get().candidate.patch}
        ]
        assert row["rejected"] == [
            {"role": "assistant", "content": rejected.turns.get().candidate.patch}
        ]
        assert (
            row["prompt"][0]["role"] == "system"
            and c.task.repository.url in row["prompt"][0]["content"]
        )
        assert row["prompt"][1] == {"role": "user", "content": c.task.prompt}
        assert row["margin"] == abs(d.overall)
        assert row["chosen_side"] == ("A" if d.overall < 0 else "B")
        assert (row["chosen_agent"], row["chosen_agent_version"]) == (
            chosen.agent.name,
            chosen.agent.version_label,
        )
        assert row["rejected_agent"] == rejected.agent.name
        criteria = {c["criterion"]: c["preference"] for c in row["criteria"]}
        assert criteria["overall"] == abs(d.overall) > 0  # chosen's perspective: always positive
        assert criteria["security"] is None
        flip = -1 if d.overall < 0 else 1
        assert criteria["reliability"] == flip * d.ratings["reliability"]
        assert row["rationale"] == d.rationale
        assert row["rubric_version"] == d.rubric_version.number
        assert row["task_id"] == c.task_id and row["base_commit"] == c.task.base_commit
        assert row["repository"] == c.task.repository.url
        check = chosen.turns.get().candidate.check_results.get()
        assert row["chosen_checks"] == [
            {
                "name": "tests",
                "kind": "command",
                "status": check.status,
                "passed": 5,
                "failed": check.failed,
                "errors": 0,
                "skipped": 0,
            }
        ]
        judgments = list(c.judgments.order_by("pk"))
        assert row["experts"] == [j.annotator.pseudonym for j in judgments]
        assert row["expert_rationales"] == [j.rationale for j in judgments]
        assert all(e.startswith("expert-") for e in row["experts"])
        assert "alice" not in json.dumps(row) and "anna" not in json.dumps(row)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["kind"] == "preferences" and manifest["counts"]["rows"] == 4
    assert manifest["counts"]["rubric_versions"][0]["version"] == 1
    assert {f["name"] for f in manifest["files"]} == {
        "preferences.jsonl",
        "preferences.parquet",
        "preferences.openai.jsonl",
    }
    assert manifest["marlin_version"] and manifest["created_at"]


def test_both_preference_files_come_from_one_pass_over_the_decisions(decided, erin):
    def decision_queries(**options) -> int:
        with CaptureQueriesContext(connection) as queries:
            export = run_export(erin, decided, "preferences", **options)
        assert verify_manifest(Path(export.directory)) == []
        return sum('FROM "review_decision"' in q["sql"] for q in queries.captured_queries)

    one_file = decision_queries(formats="jsonl")
    both_files = decision_queries()
    assert one_file > 0
    assert both_files == one_file


def test_both_json_lines_files_are_what_json_dumps_writes(decided, erin):
    # The job encodes each row's patches once for both files; the bytes must still be exactly
    # json.dumps's (key order, separators, non-ASCII kept as written) for the row and for
    # openai_preference(row), with conversations (several messages) and with odd characters.
    for candidate in Candidate.objects.all():
        candidate.patch += '+    label = "Größe \\ 日本"  # \u2028 and a tab\t\n'
        candidate.save(update_fields=["patch"])
    directory = Path(run_export(erin, decided, "preferences", conversations=True).directory)
    # split("\n"), not splitlines(): U+2028 inside a JSON string is not a line end.
    trl = (directory / "preferences.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    openai = (directory / "preferences.openai.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(trl) == len(openai) == 4
    for trl_line, openai_line in zip(trl, openai, strict=True):
        row = json.loads(trl_line)
        assert len(row["chosen"]) > 1 and "日本" in row["chosen"][-1]["content"]
        assert trl_line == json.dumps(row, ensure_ascii=False)
        assert openai_line == json.dumps(openai_preference(row), ensure_ascii=False)


@pytest.mark.parametrize("conversations", [False, True])
def test_the_preference_files_are_the_rows_through_json_dumps_and_from_pylist(
    decided, erin, tmp_path, conversations
):
    # The job writes a batch of rows at a time as columns (patches as the database's bytes,
    # escaped without json; each distinct value encoded once; Parquet from flat arrays). Its
    # files must be byte for byte what the plain way writes from preference_rows: json.dumps
    # per row, and Parquet from pa.Table.from_pylist, also for the control characters JSON
    # spells \u00XX, \b and \f, non-ASCII text, U+2028 and CR.
    for i, candidate in enumerate(Candidate.objects.order_by("pk")):
        controls = "\x01\x0b\b\f\x1f" if i % 2 else ""  # half the patches take each path
        candidate.patch += f'+    label = "Größe \\ 日本 {controls}"  # \u2028 \t\r\n'
        candidate.save(update_fields=["patch"])
    export = run_export(erin, decided, "preferences", conversations=conversations)
    directory = Path(export.directory)
    rows = list(preference_rows(decided, DecisionFilters(), conversations=conversations))
    patches = [row[side][-1]["content"] for row in rows for side in ("chosen", "rejected")]
    assert len(rows) == 4 and all("日本" in patch and "\r" in patch for patch in patches)
    assert {"\x0b" in patch for patch in patches} == {True, False}
    assert (directory / "preferences.jsonl").read_bytes() == "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in rows
    ).encode()
    assert (directory / "preferences.openai.jsonl").read_bytes() == "".join(
        json.dumps(openai_preference(row), ensure_ascii=False) + "\n" for row in rows
    ).encode()
    write_parquet(tmp_path / "plain.parquet", rows, PREFERENCE_SCHEMA)
    assert (directory / "preferences.parquet").read_bytes() == (
        tmp_path / "plain.parquet"
    ).read_bytes()
    # The manifest's digests, taken while writing, are the files'.
    assert verify_manifest(directory) == []


def test_a_tampered_or_extra_file_fails_verification(decided, erin):
    directory = Path(run_export(erin, decided, "preferences", formats="jsonl").directory)
    path = directory / "preferences.jsonl"
    text = path.read_text()
    path.write_text(text.replace('"margin": 2', '"margin": 3', 1))
    problems = verify_manifest(directory)
    assert problems and "preferences.jsonl" in problems[0]
    path.write_text(text)
    assert verify_manifest(directory) == []
    (directory / "extra.txt").write_text("smuggled")
    assert verify_manifest(directory) == ["extra.txt: not listed in the manifest"]


def test_conversations_option_writes_the_agent_messages_then_the_patch(decided, erin):
    export = run_export(erin, decided, "preferences", formats="parquet", conversations=True)
    row = pq.read_table(Path(export.directory) / "preferences.parquet").to_pylist()[0]
    assert row["chosen"][0] == {
        "role": "assistant",
        "content": f"{row['chosen_agent']} edited cli.py",
    }
    assert row["chosen"][-1]["content"].startswith("--- a/cli.py")


def test_records_hold_every_judgment_review_and_decision(decided, erin):
    export = run_export(erin, decided, "records")
    directory = Path(export.directory)
    judgments = [json.loads(x) for x in (directory / "judgments.jsonl").read_text().splitlines()]
    reviews = [json.loads(x) for x in (directory / "reviews.jsonl").read_text().splitlines()]
    decisions = [json.loads(x) for x in (directory / "decisions.jsonl").read_text().splitlines()]
    assert (len(judgments), len(reviews), len(decisions)) == (10, 5, 5)
    assert {"active_seconds", "rubric_version", "submitted_at", "ratings", "expert"} <= set(
        judgments[0]
    )
    assert judgments[0]["active_seconds"] == 600 and judgments[0]["expert"].startswith("expert-")
    assert reviews[0]["verdict"] == "agree"
    assert export.manifest["counts"]["rubric_versions"] == [
        {"rubric": "Ledgerlite rubric", "version": 1}
    ]
    assert verify_manifest(directory) == []


def test_predictions_are_in_swebench_format_one_file_per_agent(decided, erin):
    export = run_export(erin, decided, "predictions")
    directory = Path(export.directory)
    rows = {}
    for path in directory.glob("predictions-*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert set(row) == {"instance_id", "model_name_or_path", "model_patch"}
            rows[(row["model_name_or_path"], row["instance_id"])] = row["model_patch"]
    assert len(rows) == 4
    d = Decision.objects.filter(overall=-2).select_related("comparison__run_a__agent").get()
    winner = d.comparison.run_a
    key = (
        f"{winner.agent.name}@{winner.agent.version_label}",
        f"marlin-task-{d.comparison.task_id}",
    )
    assert rows[key] == winner.turns.get().candidate.patch


def test_task_set_export_can_be_rerun(decided, erin):
    export = run_export(erin, decided, "tasks")
    rows = [
        json.loads(x) for x in (Path(export.directory) / "tasks.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 5
    assert {
        "repository_url",
        "base_commit",
        "problem_statement",
        "kind",
        "setup_command",
        "environment_spec",
        "checks",
    } <= set(rows[0])
    assert rows[0]["environment_spec"] == {}
    assert rows[0]["checks"] == [{"name": "tests", "kind": "command", "command": "pytest -q"}]


def test_annotators_and_reviewers_cannot_create_exports(decided, alice, bob):
    from django.core.exceptions import PermissionDenied

    for user in (alice, bob):
        with pytest.raises(PermissionDenied):
            do_create_export(user, decided, "preferences", enqueue=False)


def test_bad_options_are_explained(decided, erin):
    with pytest.raises(ExportError, match="Parquet is for preferences"):
        do_create_export(erin, decided, "records", formats="parquet", enqueue=False)
    with pytest.raises(ExportError, match="since must be a date"):
        do_create_export(erin, decided, "preferences", {"since": "yesterday"}, enqueue=False)
    with pytest.raises(ExportError, match="unknown format"):
        do_create_export(erin, decided, "preferences", formats="csv", enqueue=False)


def test_filters_select_decisions_and_are_in_the_manifest(decided, erin):
    codex_aider = [Run.objects.filter(agent__name=n).first().agent_id for n in ("codex", "aider")]
    export = run_export(
        erin, decided, "preferences", filters={"agents": codex_aider}, formats="jsonl"
    )
    rows = [
        json.loads(x)
        for x in (Path(export.directory) / "preferences.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 1 and {rows[0]["chosen_agent"], rows[0]["rejected_agent"]} == {
        "codex",
        "aider",
    }
    assert export.manifest["filters"]["agents"] == sorted(codex_aider)


def test_a_second_run_of_the_job_changes_nothing(decided, erin):
    export = run_export(erin, decided, "tasks")
    before = (Path(export.directory) / "manifest.json").read_text()
    write_export.call(export.pk)
    assert (Path(export.directory) / "manifest.json").read_text() == before


def test_the_export_command_writes_into_out(decided, erin, tmp_path, capsys):
    out = tmp_path / "datasets"
    call_command(
        "export", "preferences", "--project", "Ledgerlite", "--format", "parquet", "--out", str(out)
    )
    export = Export.objects.get()
    assert Path(export.directory).parent == out
    assert "written to" in capsys.readouterr().out
    assert verify_manifest(Path(export.directory)) == []
    with pytest.raises(CommandError, match="no project named 'Nope'"):
        call_command("export", "tasks", "--project", "Nope")


def test_admins_create_follow_and_download_exports_through_the_pages(
    decided, erin, client_for, settings, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    client = client_for(erin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/exports/", {"project": decided.pk, "kind": "preferences", "parquet": "on"}
        )
    export = Export.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/exports/{export.pk}/"
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE and export.progress == 100
    detail = client.get(f"/exports/{export.pk}/").content.decode()
    assert "preferences.parquet" in detail and export.manifest["files"][0]["sha256"] in detail
    download = client.get(f"/exports/{export.pk}/files/preferences.jsonl")
    assert download.status_code == 200
    assert (
        b"".join(download.streaming_content)
        == (Path(export.directory) / "preferences.jsonl").read_bytes()
    )
    assert "attachment" in download["Content-Disposition"]


def test_only_files_listed_in_the_manifest_can_be_downloaded(decided, erin, client_for, settings):
    export = run_export(erin, decided, "tasks")
    (settings.DATA_DIR / "secret_key").write_text("not for download")
    client = client_for(erin)
    for name in ("manifest.json", "..%2Fsecret_key", "%2E%2E", "tasks.jsonl%00", "other.jsonl"):
        assert client.get(f"/exports/{export.pk}/files/{name}").status_code == 404, name
    assert client.get(f"/exports/{export.pk}/files/../../secret_key").status_code == 404


def test_annotators_and_reviewers_cannot_reach_export_pages(decided, erin, alice, bob, client_for):
    export = run_export(erin, decided, "tasks")
    for user in (alice, bob):
        client = client_for(user)
        assert client.get("/exports/").status_code == 403
        assert client.get(f"/exports/{export.pk}/").status_code == 403
        assert client.get(f"/exports/{export.pk}/files/tasks.jsonl").status_code == 403


def test_the_task_set_reads_back_with_the_swebench_task_importer(decided, erin):
    from marlin.tasks.imports import do_import_swebench_tasks
    from marlin.tasks.models import Task

    hidden = {
        "kind": "hidden-tests",
        "name": "hidden tests",
        "command": "python -m pytest -q",
        "test_patch": (
            "--- a/tests/test_x.py\n+++ b/tests/test_x.py\n@@ -0,0 +1 @@\n+def test_x(): pass\n"
        ),
        "fail_to_pass": ["tests/test_x.py::test_x"],
        "pass_to_pass": [],
    }
    Task.objects.filter(project=decided).update(checks=[hidden])
    export = run_export(erin, decided, "tasks")
    text = (Path(export.directory) / "tasks.jsonl").read_text()
    rerun = make_project("Rerun")
    report = do_import_swebench_tasks(erin, rerun, text)
    assert report.created == 5 and not report.errors
    for original in Task.objects.filter(project=decided):
        copy = Task.objects.get(project=rerun, external_id=f"marlin-task-{original.pk}")
        assert (copy.prompt, copy.base_commit, copy.repository_id) == (
            original.prompt,
            original.base_commit,
            original.repository_id,
        )
        assert copy.checks[0]["fail_to_pass"] == ["tests/test_x.py::test_x"]
        assert copy.checks[0]["test_patch"] == hidden["test_patch"]


def test_exports_name_a_local_repository_and_never_write_its_path_on_the_server(
    decided, erin, tmp_path
):
    from marlin.catalog.models import Repository

    local = tmp_path / "srv" / "marlin-data" / "ledgerlite"
    local.mkdir(parents=True)
    Repository.objects.update(
        url=str(local), normalized_url=f"local:{local}", host="", is_local=True
    )
    name = Repository.objects.get().name
    out = tmp_path / "datasets"
    for kind, extra in [
        ("preferences", ["--format", "parquet"]),
        ("records", []),
        ("predictions", []),
        ("tasks", []),
    ]:
        call_command("export", kind, "--project", "Ledgerlite", "--out", str(out), *extra)
    rows = []
    for path in sorted(out.rglob("*")):
        if path.suffix == ".parquet":
            rows += pq.read_table(path).to_pylist()
        elif path.suffix in (".jsonl", ".json"):
            text = path.read_text()
            assert str(local) not in text and "marlin-data" not in text, path.name
            if path.suffix == ".jsonl":
                rows += [json.loads(line) for line in text.splitlines()]
    assert rows
    dumped = json.dumps(rows, default=str)
    assert str(local) not in dumped and "marlin-data" not in dumped
    preferences = [row for row in rows if "chosen" in row]
    assert preferences and all(row["repository"] == name for row in preferences)
    assert all(
        f"git repository {name} at commit" in row["prompt"][0]["content"] for row in preferences
    )
    tasks = [row for row in rows if "problem_statement" in row]
    assert tasks and all(row["repository_url"] == name for row in tasks)
