import os
import time

import pytest

from marlin.sandbox.limits import find_cgroup_root, sweep_empty_cgroups


def test_it_removes_old_empty_run_cgroups_and_keeps_fresh_ones():
    root = find_cgroup_root()
    if root is None:
        pytest.skip("no writable pids cgroup on this machine")
    parent = root / "marlin"
    parent.mkdir(exist_ok=True)
    old, fresh = parent / "run-sweeptest-old", parent / "run-sweeptest-fresh"
    for group in (old, fresh):
        group.mkdir(exist_ok=True)
    long_ago = time.time() - 3600
    os.utime(old, (long_ago, long_ago))
    try:
        sweep_empty_cgroups(older_than_seconds=60)
        assert not old.exists()
        assert fresh.exists()
    finally:
        for group in (old, fresh):
            if group.exists():
                group.rmdir()
