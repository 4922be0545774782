"""Workers on other machines: each has its own data directory (and so its own mirrors), all
share one database. A worker that needs a repository whose mirror another machine made clones
it into its own data directory, once, under a lock, then proceeds (catalog.jobs.local_mirror).
Here two data directories stand for two machines; the PostgreSQL pass of the suite makes them
share a PostgreSQL database."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from marlin.catalog.actions import do_add_repository
from marlin.catalog.jobs import local_mirror, mirror_path_for, mirror_repository
from marlin.catalog.mirror import is_mirror, list_refs
from marlin.catalog.models import MirrorStatus


def _clones(log: Path) -> list[str]:
    """The git clones run so far (the git_log fixture logs every git command)."""
    text = log.read_text() if log.exists() else ""
    return [line for line in text.splitlines() if " clone --mirror " in line]


def test_a_worker_without_the_mirror_clones_it_once_under_a_lock(
    db, erin, settings, upstream: Path, tmp_path: Path, git_log: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    repository = do_add_repository(erin, str(upstream), language="Python", mirror=False)
    mirror_repository.call(repository.pk)  # the worker of machine A
    repository.refresh_from_db()
    assert repository.mirror_status == MirrorStatus.READY, repository.last_error
    on_a = Path(repository.mirror_path)
    assert local_mirror(repository) == on_a  # machine A uses its own mirror
    # Machine A's disk is not machine B's: its mirrors folder is not there for B.
    shutil.move(on_a.parent, tmp_path / "machine-a-mirrors")
    settings.DATA_DIR = tmp_path / "machine-b"
    clones_before = len(_clones(git_log))

    found: list[Path | None] = []
    barrier = threading.Barrier(4)

    def job() -> None:
        barrier.wait(timeout=30)
        found.append(local_mirror(repository))

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    on_b = mirror_path_for(repository)
    assert on_b.is_relative_to(tmp_path / "machine-b")
    assert found == [on_b] * 4  # every job proceeds with B's own mirror
    assert is_mirror(on_b)
    assert {r.name for r in list_refs(on_b)} == {"main", "feature/x", "v1.0"}
    assert len(_clones(git_log)) - clones_before == 1, "four jobs at once, one clone"
    # The row still names the mirror machine A made: each machine finds its own.
    repository.refresh_from_db()
    assert Path(repository.mirror_path) == on_a
    assert local_mirror(repository) == on_b
    assert len(_clones(git_log)) - clones_before == 1


def test_a_repository_never_mirrored_is_not_cloned_by_a_worker(
    db, erin, settings, upstream: Path, git_log: Path
) -> None:
    settings.ALLOW_LOCAL_REPOSITORIES = True
    repository = do_add_repository(erin, str(upstream), language="Python", mirror=False)
    assert local_mirror(repository) is None
    assert _clones(git_log) == []
