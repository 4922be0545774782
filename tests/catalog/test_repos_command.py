"""The `repos` management command (what `marlin repos ...` forwards to)."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from marlin.audit.models import AuditEvent
from marlin.catalog.models import MirrorStatus, Repository

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    out = StringIO()
    call_command("repos", *args, stdout=out)
    return out.getvalue()


def test_import_prints_the_report_with_line_numbers_and_succeeds_when_some_lines_are_good(
    erin, tmp_path: Path, git_log: Path
) -> None:
    listing = tmp_path / "repos.txt"
    listing.write_text(
        "https://github.com/a/one\n--upload-pack=touch /tmp/x\nhttps://github.com/a/one.git\n"
    )
    output = _run("import", str(listing))
    assert "1 added, 0 already in the catalog, 1 duplicate lines, 1 bad lines" in output
    assert "2" in output and "option injection" in output and "--upload-pack=touch /tmp/x" in output
    assert Repository.objects.get().created_by == erin
    assert AuditEvent.objects.get(verb="repository.import").actor == erin
    assert not git_log.exists()


def test_import_exits_1_when_nothing_is_valid(erin, tmp_path: Path) -> None:
    listing = tmp_path / "bad.txt"
    listing.write_text("fd::17\nhttp://x/y\n")
    with pytest.raises(CommandError) as excinfo:
        _run("import", str(listing))
    assert excinfo.value.returncode == 1
    assert "no valid repository line" in str(excinfo.value)


def test_import_acts_as_the_named_user_and_refuses_unknown_or_unauthorised_ones(
    dave, alice, tmp_path: Path
) -> None:
    listing = tmp_path / "r.csv"
    listing.write_text("url,language\nhttps://github.com/a/one,Go\n")
    _run("import", str(listing), "--as", "dave")
    assert Repository.objects.get().created_by == dave
    with pytest.raises(CommandError) as excinfo:
        _run("import", str(listing), "--as", "nobody")
    assert excinfo.value.returncode == 2
    with pytest.raises(CommandError, match="needs one of these roles") as excinfo:
        _run("import", str(listing), "--as", "alice")
    assert excinfo.value.returncode == 2


def test_add_then_mirror_by_id_runs_the_clone(erin, settings, upstream: Path) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    _run("add", str(upstream), "--no-mirror", "--tag", "demo")
    repo = Repository.objects.get()
    assert repo.mirror_status == MirrorStatus.PENDING
    output = _run("mirror", str(repo.pk))
    assert "1 of 1 mirrors ready" in output
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.READY
    with pytest.raises(CommandError) as excinfo:
        _run("mirror", "999")
    assert excinfo.value.returncode == 2


def test_it_exits_2_on_an_unreadable_file_in_a_real_process(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MARLIN_DATA_DIR": str(tmp_path / "data"),
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
    }
    env.pop("MARLIN_DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "django", "repos", "import", str(tmp_path / "missing.txt")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "cannot read" in result.stderr and "missing.txt" in result.stderr


def test_import_prints_hostile_lines_literally(erin, tmp_path: Path) -> None:
    listing = tmp_path / "r.txt"
    listing.write_text("https://github.com/a/one\n[bold red]ext::sh[/bold red]\n")
    output = _run("import", str(listing))
    assert "[bold red]ext::sh[/bold red]" in output
