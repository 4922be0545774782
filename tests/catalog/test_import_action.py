"""Importing through the action: the database, the audit trail, and no git unless asked."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied

from marlin.audit.models import AuditEvent
from marlin.catalog.actions import CatalogError, do_add_repository, do_import_repositories
from marlin.catalog.models import MirrorStatus, Repository, Tag
from tests.catalog.conftest import generate_list


@pytest.mark.slow
@pytest.mark.django_db
def test_it_imports_ten_thousand_lines_keeping_good_ones_reporting_bad_ones_and_running_no_git(
    dave, git_log: Path, tasks_immediate, django_capture_on_commit_callbacks
) -> None:
    text, expected = generate_list(10_000)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = do_import_repositories(dave, text, filename="big.txt")
    assert result.created == expected["good"] == Repository.objects.count()
    assert [b.line_no for b in result.report.bad] == expected["bad"]
    assert all(b.reason for b in result.report.bad)
    assert result.report.duplicates == expected["duplicates"]
    assert not result.mirror_enqueued and callbacks == []
    assert not git_log.exists(), "importing must not run git"
    assert not Path("/tmp/marlin-pwned").exists()
    assert set(Repository.objects.values_list("mirror_status", flat=True)) == {MirrorStatus.PENDING}
    events = AuditEvent.objects.filter(verb="repository.import")
    assert events.count() == 1 and AuditEvent.objects.count() == 1
    assert events.get().new_values["created"] == expected["good"]
    assert events.get().new_values["bad"] == len(expected["bad"])
    assert events.get().new_values["filename"] == "big.txt"


@pytest.mark.django_db
def test_it_skips_repositories_already_in_the_catalog(dave) -> None:
    do_add_repository(dave, "https://github.com/owner/name", mirror=False)
    result = do_import_repositories(
        dave, "git@github.com:Owner/Name.git\nhttps://github.com/owner/other\n", filename="l.txt"
    )
    assert result.created == 1
    assert result.already_present == [(1, "git@github.com:Owner/Name.git")]
    assert Repository.objects.count() == 2


@pytest.mark.django_db
def test_it_attaches_tags_from_csv_in_bulk(dave) -> None:
    text = "url,language,stars,tags\nhttps://github.com/a/one,Python,10,web;cli\nhttps://github.com/a/two,Go,3,cli\n"
    result = do_import_repositories(dave, text, filename="r.csv")
    assert result.created == 2
    one = Repository.objects.get(name="a/one")
    assert (one.language, one.stars) == ("Python", 10)
    assert sorted(one.tags.values_list("name", flat=True)) == ["cli", "web"]
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["cli", "web"]


@pytest.mark.django_db
def test_it_mirrors_only_the_good_urls_when_asked(
    dave,
    settings,
    upstream: Path,
    git_log: Path,
    tasks_immediate,
    django_capture_on_commit_callbacks,
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    text = "\n".join(
        [
            str(upstream),
            "--upload-pack=touch /tmp/marlin-pwned",
            "ext::sh -c touch% /tmp/marlin-pwned",
            f"file://{upstream}",
        ]
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = do_import_repositories(dave, text, filename="local.txt", mirror=True)
    assert result.created == 1 and result.report.duplicates == [(4, 1)]
    invocations = git_log.read_text().splitlines()
    assert len(invocations) == 1
    assert "clone --mirror --quiet -- " + str(upstream.resolve()) in invocations[0]
    assert "upload-pack" not in git_log.read_text() and "ext::" not in git_log.read_text()
    assert Repository.objects.get().mirror_status == MirrorStatus.READY


@pytest.mark.django_db
def test_it_refuses_imports_and_adds_from_people_without_the_author_role(alice, mallory) -> None:
    for person in (alice, mallory):
        with pytest.raises(PermissionDenied):
            do_import_repositories(person, "https://github.com/a/b\n", filename="x")
        with pytest.raises(PermissionDenied):
            do_add_repository(person, "https://github.com/a/b")
    assert Repository.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_local_paths_unless_the_admin_allowed_them(
    erin, settings, upstream: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = False
    with pytest.raises(CatalogError, match="MARLIN_ALLOW_LOCAL_REPOSITORIES"):
        do_add_repository(erin, str(upstream))
    with pytest.raises(CatalogError, match="already in the catalog"):
        do_add_repository(erin, "https://github.com/a/b", mirror=False)
        do_add_repository(erin, "git@github.com:a/b.git", mirror=False)
    assert AuditEvent.objects.filter(verb="repository.add").count() == 1
