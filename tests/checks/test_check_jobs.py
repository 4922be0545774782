"""Check jobs on the demo repository, in the real sandbox: rows, claims, outcomes, environments."""

from __future__ import annotations

import pytest

from marlin.checks.jobs import (
    claim_check,
    enqueue_checks,
    recover_checks,
    run_candidate_checks,
)
from marlin.checks.models import CheckResult, CheckStatus
from marlin.tasks.jobs import ENV_DIR, build_environment, environment_for
from marlin.tasks.models import Environment, EnvironmentStatus
from tests.checks.scenario import demo_patches, demo_task, make_candidate

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

F2P_PREFIX = "tests/test_negative_parentheses.py::test_parse_amount_accepts_accounting_negatives"


def _results(candidate) -> dict[str, CheckResult]:  # type: ignore[no-untyped-def]
    return {r.kind: r for r in CheckResult.objects.filter(candidate=candidate)}


def test_the_good_candidate_passes_and_the_flawed_one_fails_with_per_test_results() -> None:
    task = demo_task()
    patches = demo_patches()
    good = make_candidate(task, patches["good"], "agent-good")
    flawed = make_candidate(task, patches["flawed"], "agent-flawed")
    for candidate in (good, flawed):
        enqueue_checks(candidate)
        run_candidate_checks.call(candidate.pk)

    good_results, flawed_results = _results(good), _results(flawed)
    assert {r.status for r in good_results.values()} == {"passed"}
    hidden = good_results["hidden-tests"]
    assert hidden.passed == 5 and hidden.failed == 0
    assert hidden.detail.startswith("5 of 5 required tests passed")
    assert good_results["command"].passed > 10  # the whole suite, test by test
    assert hidden.limits["timeout_seconds"] == 600 and hidden.limits["memory_mb"] == 2048
    assert hidden.duration_seconds and hidden.finished_at and hidden.attempts == 1

    flawed_hidden = flawed_results["hidden-tests"]
    assert flawed_hidden.status == "failed"
    outcomes = {t["name"]: t["outcome"] for t in flawed_hidden.tests}
    # The flawed patch accepts "(12.50" too: the guard test catches it, the others still pass.
    unbalanced = (
        "tests/test_negative_parentheses.py::test_parse_amount_rejects_unbalanced_parentheses"
    )
    assert outcomes[unbalanced] == "failed"
    assert outcomes[f"{F2P_PREFIX}[(12.50)--1250]"] == "passed"
    assert outcomes["tests/test_money.py::test_format_cents"] == "passed"
    assert (flawed_hidden.passed, flawed_hidden.failed) == (4, 1)
    assert f"{unbalanced} (PASS_TO_PASS: failed)" in flawed_hidden.detail
    failing = [t for t in flawed_hidden.tests if t["outcome"] == "failed"]
    assert failing and all(t["message"] for t in failing)


def test_running_the_job_twice_runs_each_check_once() -> None:
    task = demo_task(
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)
    enqueue_checks(candidate)  # idempotent: still one row per check
    assert run_candidate_checks.call(candidate.pk) == {"ran": 1, "skipped": 0}
    assert run_candidate_checks.call(candidate.pk) == {"ran": 0, "skipped": 0}
    row = CheckResult.objects.get(candidate=candidate)
    assert (row.status, row.attempts) == ("passed", 1)


def test_a_rejected_patch_is_an_error_that_says_why() -> None:
    task = demo_task(
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    )
    escaping = (
        "diff --git a/../outside.py b/../outside.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/../outside.py\n@@ -0,0 +1 @@\n+print('escaped')\n"
    )
    candidate = make_candidate(task, escaping)
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "error"
    assert row.detail.startswith("the candidate's patch was rejected:")
    assert "'..'" in row.detail or "not a valid patch" in row.detail


def test_an_environment_is_built_once_and_shared_read_only_by_two_candidates() -> None:
    setup = (
        "mkdir -p /env/bin && printf '#!/bin/sh\\necho ledger-env-ok\\n' > /env/bin/ledger-env "
        "&& chmod +x /env/bin/ledger-env && echo built > /env/built-by-setup"
    )
    # The check proves /env is mounted and on PATH, and that it cannot write there.
    command = "ledger-env && ! touch /env/written-by-check 2>/dev/null && python -m pytest -q"
    checks = [{"kind": "command", "name": "with env", "command": command}]
    first = demo_task(checks=checks, setup_command=setup, title="first")
    second = demo_task(checks=checks, setup_command=setup, title="second")
    environment = environment_for(first)
    assert environment_for(second) == environment  # same repository, commit and setup
    patches = demo_patches()
    candidates = [
        make_candidate(first, patches["good"], "a"),
        make_candidate(second, patches["good"], "b"),
    ]
    for candidate in candidates:
        enqueue_checks(candidate)
        run_candidate_checks.call(candidate.pk)

    environment.refresh_from_db()
    assert environment.status == EnvironmentStatus.READY, environment.log
    assert Environment.objects.count() == 1
    for candidate in candidates:
        row = CheckResult.objects.get(candidate=candidate)
        assert row.status == "passed", row.log + row.detail
        assert "ledger-env-ok" in row.log
    from pathlib import Path

    env_dir = Path(environment.path) / ENV_DIR
    assert (env_dir / "built-by-setup").read_text() == "built\n"
    assert not (env_dir / "written-by-check").exists()
    # A second build request finds the environment ready and does nothing.
    finished_at = environment.finished_at
    assert build_environment.call(environment.pk) == "ready"
    environment.refresh_from_db()
    assert environment.finished_at == finished_at


def test_a_failing_setup_is_kept_with_its_log_and_the_checks_say_why() -> None:
    setup = "echo installing ledgerlite; echo 'no such package: ledgerlite-extras' >&2; exit 3"
    task = demo_task(
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}],
        setup_command=setup,
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)
    run_candidate_checks.call(candidate.pk)
    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.FAILED
    assert "installing ledgerlite" in environment.log
    assert "no such package: ledgerlite-extras" in environment.log
    assert "[setup exited 3]" in environment.log
    assert environment.path == ""
    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "error" and "the environment is failed" in row.detail


def test_setup_reaches_no_host_service_with_or_without_the_registries() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    probe = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 5)\""
    try:
        closed = demo_task(checks=[], setup_command=probe)
        assert build_environment.call(environment_for(closed).pk) == "failed"
        assert "Connection refused" in environment_for(closed).log  # its own empty loopback

        # Allowed: the package registries through the egress proxy, still not the host.
        opened = demo_task(
            checks=[], setup_command='echo "proxy=$HTTPS_PROXY"; ' + probe, allow_setup_network=True
        )
        assert build_environment.call(environment_for(opened).pk) == "failed"
        assert "proxy=http://127.0.0.1:3128" in environment_for(opened).log
        assert "Connection refused" in environment_for(opened).log
    finally:
        listener.close()


def test_an_empty_setup_is_ready_at_once_and_mounts_nothing() -> None:
    task = demo_task(checks=[])
    environment = environment_for(task)
    assert environment.status == EnvironmentStatus.READY and environment.path == ""


def test_the_sweep_requeues_checks_whose_worker_died(settings, immediate_jobs) -> None:  # type: ignore[no-untyped-def]
    settings.JOB_LEASE_SECONDS = 1
    task = demo_task(
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    )
    candidate = make_candidate(task, demo_patches()["good"])
    enqueue_checks(candidate)  # on_commit never fires in this test transaction: no job runs
    row = CheckResult.objects.get(candidate=candidate)
    assert claim_check(row.pk)  # a worker claimed it, then died
    assert not claim_check(row.pk)  # its lease still holds
    assert recover_checks() == []
    CheckResult.objects.filter(pk=row.pk).update(lease_expires_at=row.created_at.replace(year=2000))
    # The sweep puts the row back in the queue and (immediate backend) runs the job.
    assert recover_checks() == [candidate.pk]
    row.refresh_from_db()
    assert (row.status, row.attempts) == (CheckStatus.PASSED, 2)
    assert CheckResult.objects.filter(candidate=candidate).count() == 1


def test_the_sweep_rebuilds_an_environment_whose_builder_died(settings, immediate_jobs) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    from marlin.tasks.jobs import claim_environment, recover_environments

    task = demo_task(checks=[], setup_command="echo rebuilt > /env/marker")
    environment = environment_for(task)
    assert claim_environment(environment.pk)  # a worker started building, then died
    assert not claim_environment(environment.pk)
    assert recover_environments() == []  # its lease still holds
    Environment.objects.filter(pk=environment.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert recover_environments() == [environment.pk]
    environment.refresh_from_db()
    assert environment.status == EnvironmentStatus.READY, environment.log
    from pathlib import Path

    assert (Path(environment.path) / ENV_DIR / "marker").read_text() == "rebuilt\n"
