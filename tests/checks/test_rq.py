"""The scale-out backend: a check job queued through django-tasks-rq on the real Redis at
127.0.0.1:6379 and run by an RQ burst worker.

Each test takes a Redis database of its own (a lock key in databases 15, 14, ...), so parallel
test workers and other test sessions never share a queue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from marlin.checks.jobs import enqueue_checks
from marlin.checks.models import CheckResult
from tests.checks.scenario import demo_patches, demo_task, make_candidate

redis = pytest.importorskip("redis")

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
_LOCK_KEY = "marlin-tests:owner"


@pytest.fixture
def redis_url() -> Iterator[str]:
    probe = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        probe.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(
            f"Redis is unreachable at {REDIS_HOST}:{REDIS_PORT} ({exc}); start redis-server"
        )
    owner = uuid.uuid4().hex
    for number in range(15, 0, -1):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        if client.set(_LOCK_KEY, owner, nx=True, ex=600):
            break
    else:
        pytest.skip("every Redis database 1-15 is held by another test run")
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        for key in client.scan_iter("rq:*"):
            client.delete(key)
        if client.get(_LOCK_KEY) == owner.encode():
            client.delete(_LOCK_KEY)


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_check_job_goes_through_redis_and_an_rq_worker(settings, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    import django_rq
    from rq.worker import SimpleWorker

    settings.RQ_QUEUES = {"default": {"URL": redis_url}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    task = demo_task(
        checks=[{"kind": "command", "name": "unit tests", "command": "python -m pytest -q"}]
    )
    candidate = make_candidate(task, demo_patches()["good"])

    enqueue_checks(candidate)  # autocommit here, so the job is queued at once
    queue = django_rq.get_queue("default")
    assert queue.count == 1
    job = queue.jobs[0]
    assert job.func_name == "marlin.checks.jobs.run_candidate_checks"
    assert job.args == [candidate.pk] or job.args == (candidate.pk,)
    assert CheckResult.objects.get(candidate=candidate).status == "queued"

    # SimpleWorker runs the job in this process, where the test database lives; `marlin worker`
    # with MARLIN_TASKS_BACKEND=rq runs the same job class in forked work horses.
    worker = django_rq.get_worker(
        "default", job_class="django_tasks_rq.Job", worker_class=SimpleWorker
    )
    assert worker.work(burst=True)

    row = CheckResult.objects.get(candidate=candidate)
    assert row.status == "passed", row.detail
    assert row.passed > 10 and row.attempts == 1
    assert queue.count == 0
    assert job.get_status(refresh=True) == "finished"


@pytest.mark.redis
@pytest.mark.slow
def test_marlin_worker_runs_rq_jobs_when_the_backend_is_rq(
    redis_url: str, tmp_path, _data_dir, tmp_path_factory
) -> None:  # type: ignore[no-untyped-def]
    from tests.checks.test_worker_recovery import Workers
    from tests.migrated_sqlite import copy_migrated_sqlite

    workers = Workers(tmp_path, _data_dir)
    workers.env.update(MARLIN_TASKS_BACKEND="rq", MARLIN_REDIS_URL=redis_url)
    copy_migrated_sqlite(tmp_path_factory, workers.db)
    made = workers.call("-m", "tests.checks.scenario", "setup")
    candidate = json.loads(made)["candidate"]
    assert workers.rows(candidate) == [("queued", 0)]

    # --batch is RQ's burst mode: run what is queued, then exit.
    workers.call("-m", "marlin", "worker", "--batch")
    rows = workers.rows(candidate)
    assert rows == [("passed", 1)]
