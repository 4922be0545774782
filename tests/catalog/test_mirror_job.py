"""The mirror job against real git repositories built in the test."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from marlin.catalog.actions import do_add_repository, do_request_mirror
from marlin.catalog.jobs import claim, mirror_path_for, mirror_repository
from marlin.catalog.mirror import list_refs
from marlin.catalog.models import MirrorStatus, Repository
from marlin.paths import mirrors_dir
from tests.catalog.conftest import git


@pytest.fixture
def local_repo(db, erin, settings, upstream: Path) -> Repository:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    return do_add_repository(erin, str(upstream), language="Python", mirror=False)


def test_it_clones_a_mirror_then_fetches_new_commits(
    local_repo: Repository, upstream: Path
) -> None:
    mirror_repository.call(local_repo.pk)
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.READY, local_repo.last_error
    mirror = Path(local_repo.mirror_path)
    assert mirror == mirror_path_for(local_repo) and mirror.parent == mirrors_dir()
    assert mirror.name == f"{local_repo.pk}-upstream-demo.git"
    first_fetch = local_repo.last_fetched_at
    assert {(r.kind, r.name) for r in list_refs(mirror)} == {
        ("branch", "main"),
        ("branch", "feature/x"),
        ("tag", "v1.0"),
    }

    (upstream / "NEW.md").write_text("new\n")
    git("add", "NEW.md", cwd=upstream)
    git("commit", "-q", "-m", "second", cwd=upstream)
    git("branch", "-D", "feature/x", cwd=upstream)
    head = git("rev-parse", "HEAD", cwd=upstream).strip()

    mirror_repository.call(local_repo.pk)
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.READY
    assert local_repo.last_fetched_at > first_fetch
    refs = {(r.kind, r.name): r.sha for r in list_refs(mirror)}
    assert refs[("branch", "main")] == head
    assert ("branch", "feature/x") not in refs, "fetch must prune deleted branches"
    # No staging folders are left beside the mirror.
    assert [p.name for p in mirrors_dir().iterdir()] == [mirror.name]


def test_it_marks_a_broken_repository_failed_with_a_reason_but_not_the_servers_paths(
    db, erin, settings, tmp_path: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    not_a_repo = tmp_path / "empty-dir"
    not_a_repo.mkdir()
    repo = do_add_repository(erin, str(not_a_repo), mirror=False)
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.FAILED
    # The page shows last_error to every author; git's own message named the folder.
    assert repo.last_error == "git clone failed: there is no git repository at this URL"
    assert "empty-dir" not in repo.last_error and str(tmp_path) not in repo.last_error
    assert repo.last_fetched_at is None
    assert not mirror_path_for(repo).exists()
    assert list(mirrors_dir().iterdir()) == [], "a failed clone leaves nothing behind"


def test_a_clone_slower_than_marlin_git_timeout_is_stopped_and_reported(
    local_repo: Repository, settings
) -> None:
    # Starting git alone takes longer than a millisecond, so the operator's limit must stop it.
    settings.GIT_TIMEOUT_SECONDS = 0.001
    mirror_repository.call(local_repo.pk)
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.FAILED
    assert "timed out after 0.001 s" in local_repo.last_error
    assert not mirror_path_for(local_repo).exists()


def test_it_refuses_a_url_that_was_changed_behind_validations_back(db, erin, git_log: Path) -> None:
    repo = do_add_repository(erin, "https://github.com/owner/name", mirror=False)
    Repository.objects.filter(pk=repo.pk).update(url="ext::sh -c touch% /tmp/marlin-pwned")
    mirror_repository.call(repo.pk)
    repo.refresh_from_db()
    assert repo.mirror_status == MirrorStatus.FAILED and "ext::" in repo.last_error
    assert not git_log.exists()


def test_it_does_not_mirror_local_repositories_once_the_admin_disallows_them(
    local_repo: Repository, settings, git_log: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = False
    mirror_repository.call(local_repo.pk)
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.FAILED
    assert "MARLIN_ALLOW_LOCAL_REPOSITORIES" in local_repo.last_error
    assert not git_log.exists()


def test_it_skips_a_repository_another_worker_is_mirroring_until_its_lease_expires(
    local_repo: Repository, settings, git_log: Path
) -> None:
    first = claim(local_repo.pk)
    assert first is not None
    mirror_repository.call(local_repo.pk)  # a second worker: the lease is fresh, so nothing runs
    assert not git_log.exists()
    assert Repository.objects.get(pk=local_repo.pk).mirror_status == MirrorStatus.MIRRORING

    stale = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS + 1)
    Repository.objects.filter(pk=local_repo.pk).update(mirror_started_at=stale)
    mirror_repository.call(local_repo.pk)  # the first worker died; its lease is taken over
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.READY
    assert "clone --mirror" in git_log.read_text()


def test_requesting_a_mirror_enqueues_the_job_after_commit(
    local_repo: Repository, erin, tasks_immediate, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        do_request_mirror(erin, local_repo)
    local_repo.refresh_from_db()
    assert local_repo.mirror_status == MirrorStatus.READY
