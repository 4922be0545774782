"""No stranded turns: a worker killed while it hands a finished turn's candidate on (to its checks
and its comparison) leaves nothing half done, and turns that an older worker did strand are
completed by the recovery sweep. Real `marlin worker` processes on a SQLite database file, real
command-line agents in the sandbox, SIGKILL from a fault hook that only tests load
(tests/agents/faulty_worker.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.checks.scenario import link_shared_tools
from tests.checks.test_worker_recovery import Workers
from tests.migrated_sqlite import copy_migrated_sqlite

pytestmark = pytest.mark.slow


@pytest.fixture
def workers(
    tmp_path: Path, _data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    link_shared_tools(_data_dir)
    pool = Workers(tmp_path, _data_dir)
    copy_migrated_sqlite(tmp_path_factory, pool.db)
    yield pool
    for process in pool.started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def state(workers: Workers, task: int) -> dict[str, Any]:
    out = workers.call("-m", "tests.agents.handoff_scenario", "state", str(task))
    return dict(json.loads(out))


def wait_for_both_compared_and_checked(workers: Workers, task: int, log: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = state(workers, task)
        runs = now["runs"].values()
        if now["comparisons"] and all(r["checks"] and "queued" not in r["checks"] for r in runs):
            if all("running" not in r["checks"] for r in runs):
                return now
        time.sleep(0.5)
    raise AssertionError(f"still {state(workers, task)}\n{workers.log(log)[-3000:]}")


def test_a_worker_killed_while_handing_a_candidate_on_strands_nothing(workers: Workers) -> None:
    made = json.loads(workers.call("-m", "tests.agents.handoff_scenario", "pair"))
    task, (first_run, second_run) = made["task"], made["runs"]

    faulty = workers.start(
        "faulty",
        module="tests.agents.faulty_worker",
        env={"MARLIN_TEST_KILL_IN_HANDOFF_OF_RUN": str(second_run)},
    )
    assert faulty.wait(timeout=120) == -signal.SIGKILL, workers.log("faulty")
    after_crash = state(workers, task)["runs"][str(second_run)]
    # Killed after the candidate row was written and before its checks: nothing of it stayed.
    assert after_crash["turn"] == "running" and after_crash["candidate"] is None, after_crash

    workers.start("next")
    done = wait_for_both_compared_and_checked(workers, task, "next")
    assert [r["turn"] for r in done["runs"].values()] == ["done", "done"]
    assert [r["checks"] for r in done["runs"].values()] == [["passed"], ["passed"]]
    assert len(done["comparisons"]) == 1
    assert {done["comparisons"][0]["run_a"], done["comparisons"][0]["run_b"]} == {
        first_run,
        second_run,
    }
    assert "1 agent run(s) recovered" in workers.log("next")


def test_the_recovery_sweep_completes_turns_a_dead_worker_stranded(workers: Workers) -> None:
    made = json.loads(workers.call("-m", "tests.agents.handoff_scenario", "stranded"))
    task = made["task"]
    stranded = state(workers, task)
    assert stranded["comparisons"] == []
    assert [r["checks"] for r in stranded["runs"].values()] == [[], []]

    workers.start("worker")
    done = wait_for_both_compared_and_checked(workers, task, "worker")
    assert [r["checks"] for r in done["runs"].values()] == [["passed"], ["passed"]]
    assert len(done["comparisons"]) == 1
    time.sleep(2)  # a few more sweeps (every 0.5 s): completing them again changes nothing
    again = state(workers, task)
    assert again == done
    log = workers.log("worker")
    assert "2 finished turn(s) handed on again" in log, log
    assert log.count("finished turn(s) handed on again") == 1, log
