"""/metrics through HTTP: who may scrape it, and what it says about the deployment. The counts
come from the database at scrape time, so these run on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from marlin.accounts.models import ApiToken
from marlin.catalog.jobs import mirror_repository
from marlin.checks.models import CheckResult, CheckStatus
from marlin.monitoring import workers
from marlin.review.models import ComparisonState
from tests.review.factories import (
    make_comparison,
    make_project,
    started_judgment,
    submitted_judgment,
)

TOKEN = "metrics-token-for-the-test-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(client, **headers: str) -> str:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def test_without_a_token_only_loopback_clients_may_scrape(client, db, settings) -> None:
    settings.METRICS_TOKEN = None
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403
    # A proxy on the same machine connects from loopback; the header it adds gives it away.
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert proxied.status_code == 403
    assert b"MARLIN_METRICS_TOKEN" in proxied.content


def test_with_a_token_every_client_must_send_it(client, db, settings) -> None:
    settings.METRICS_TOKEN = TOKEN
    from_outside = {"REMOTE_ADDR": "203.0.113.7"}
    missing = client.get("/metrics", **from_outside)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token", **from_outside)
    assert wrong.status_code == 401
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **from_outside)
    assert right.status_code == 200
    assert TOKEN.encode() not in right.content


def test_it_counts_queue_checks_people_reviews_disputes_and_workers(
    client, alice, bob, carol, make_user, settings
) -> None:
    settings.METRICS_TOKEN = None
    # Two jobs waiting (django-tasks-db's rows), one of them picked up by a worker.
    first = mirror_repository.enqueue(101)
    mirror_repository.enqueue(102)
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(id=first.id).update(status="RUNNING")
    # A comparison in review (overlap 1: alice's submitted judgment waits for a reviewer), one
    # disputed, one that dan is judging right now (his heartbeat is fresh).
    in_review = make_comparison(make_project(overlap=1))
    submitted_judgment(in_review, alice, 2)
    disputed = make_comparison()
    disputed.state = ComparisonState.DISPUTED
    disputed.save(update_fields=["state"])
    dan = make_user("dan", "annotator")
    judging_now = make_comparison()
    started_judgment(judging_now, dan)
    client.force_login(dan)
    beat = client.post(
        "/api/heartbeats",
        {"work": "judgment", "comparison": judging_now.public_id},
        content_type="application/json",
    )
    assert beat.status_code < 300, beat.content
    client.logout()
    # Checks: two passed and one failed in the last minute, one passed an hour ago.
    candidate = judging_now.run_a.turns.get().candidate
    now = timezone.now()
    for index, (status, finished) in enumerate(
        [
            (CheckStatus.PASSED, now),
            (CheckStatus.PASSED, now - timedelta(seconds=20)),
            (CheckStatus.FAILED, now),
            (CheckStatus.PASSED, now - timedelta(hours=1)),
        ]
    ):
        CheckResult.objects.create(
            candidate=candidate,
            check_index=index,
            name=f"c{index}",
            status=status,
            finished_at=finished,
        )
    workers.beat(workers.new_worker_id(), started_at=now)

    found = samples(scrape(client))

    assert found[("marlin_job_queue_depth", (("job", "catalog.mirror_repository"),))] == 1
    assert found[("marlin_jobs_running", (("job", "catalog.mirror_repository"),))] == 1
    assert found[("marlin_checks_per_minute", (("status", "passed"),))] == 2
    assert found[("marlin_checks_per_minute", (("status", "failed"),))] == 1
    assert found[("marlin_checks_per_minute", (("status", "timed_out"),))] == 0
    assert found[("marlin_active_people", (("work", "judgment"),))] == 1
    assert found[("marlin_active_people", (("work", "review"),))] == 0
    assert found[("marlin_pending_reviews", ())] == 1
    assert found[("marlin_open_disputes", ())] == 1
    assert found[("marlin_comparisons", (("state", "in_review"),))] == 1
    assert found[("marlin_comparisons", (("state", "awaiting_judgments"),))] == 1
    assert found[("marlin_workers_alive", ())] == 1
    assert found[("marlin_worker_heartbeat_age_seconds", ())] < 60


def test_request_latency_is_labelled_by_route_never_by_path_or_person(
    client, erin, settings
) -> None:
    settings.METRICS_TOKEN = None
    comparison = make_comparison(agents=("secret-agent-name", "other-agent-name"))
    _, raw = ApiToken.issue(erin, "laptop")
    count = "marlin_http_request_duration_seconds_count"
    ok = (count, (("method", "GET"), ("route", "/api/comparisons/<public_id>"), ("status", "200")))
    unmatched = (count, (("method", "GET"), ("route", "<unmatched>"), ("status", "404")))
    # The counts live as long as the process: other tests in it may have added to them.
    before = samples(scrape(client))
    for _ in range(3):
        client.get(f"/api/comparisons/{comparison.public_id}", HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.get(f"/compare/{comparison.public_id}/")
    client.get("/no/such/page/")

    text = scrape(client)
    found = samples(text)
    assert found[ok] - before.get(ok, 0) == 3
    assert found[unmatched] - before.get(unmatched, 0) == 1
    assert (
        count,
        (("method", "GET"), ("route", "/compare/<str:public_id>/"), ("status", "302")),
    ) in found
    for secret in (comparison.public_id, "erin", raw, "secret-agent-name", "/no/such/page"):
        assert secret not in text


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_with_rq_the_queue_depth_is_the_redis_queue_length(client, settings, redis_url) -> None:
    settings.METRICS_TOKEN = None
    settings.TASKS_BACKEND = "rq"
    settings.RQ_QUEUES = {"default": {"URL": redis_url}}
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    mirror_repository.enqueue(101)
    mirror_repository.enqueue(102)
    found = samples(scrape(client))
    assert found[("marlin_job_queue_depth", (("job", "all"),))] == 2
    assert found[("marlin_jobs_running", (("job", "all"),))] == 0
