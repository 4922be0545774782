"""Prometheus metrics (docs/deploy.md, "Health and metrics"; docs/decisions, "metrics").

Two kinds. What happens inside a process (a request's latency, a job's duration and outcome) is
recorded where it happens with prometheus-client; `marlin serve` gives its gunicorn processes and
its worker one PROMETHEUS_MULTIPROC_DIR, so a scrape that lands on any process reports the sum
of all of them. What is true of the whole deployment (queue depth, checks finished, active
people, pending reviews, disputes, live workers) is counted in the database at scrape time: every
process and every machine agrees on it, and no process has to keep it up to date.

Labels hold route patterns, job function names and states only: never a raw path (it holds
comparison ids), a user, an agent's name or anything from a request.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from marlin.checks.models import CheckResult, CheckStatus
from marlin.monitoring import workers
from marlin.review.activity import now_ms
from marlin.review.models import (
    Comparison,
    ComparisonState,
    Judgment,
    JudgmentStatus,
    WorkKind,
    WorkSession,
)

REQUEST_SECONDS = Histogram(
    "marlin_http_request_duration_seconds",
    "Time to answer a request, by route pattern, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
JOB_SECONDS = Histogram(
    "marlin_job_duration_seconds",
    "Time a job ran, by job function and outcome (successful, failed).",
    ["job", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
)
JOB_FAILURES = Counter(
    "marlin_job_failures",
    "Jobs that raised (django-tasks marked them failed), by job function.",
    ["job"],
)

FINISHED_CHECKS = [
    s for s in CheckStatus.values if s not in (CheckStatus.QUEUED, CheckStatus.RUNNING)
]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def job_label(task_path: str) -> str:
    """marlin.checks.jobs.run_candidate_checks -> checks.run_candidate_checks."""
    parts = task_path.split(".")
    if len(parts) >= 4 and parts[0] == "marlin" and parts[-2] == "jobs":
        return f"{'.'.join(parts[1:-2])}.{parts[-1]}"
    return task_path


class DatabaseCollector(Collector):
    """Gauges counted in the database when Prometheus scrapes (a handful of indexed counts)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._jobs()
        yield self._checks_per_minute()
        yield self._active_people()
        yield self._comparisons()
        yield self._pending_reviews()
        yield self._open_disputes()
        yield from self._workers()

    def _jobs(self) -> Iterator[GaugeMetricFamily]:
        queued = GaugeMetricFamily(
            "marlin_job_queue_depth", "Jobs waiting for a worker, by job function.", labels=["job"]
        )
        running = GaugeMetricFamily(
            "marlin_jobs_running", "Jobs a worker is running, by job function.", labels=["job"]
        )
        if settings.TASKS_BACKEND == "rq":
            waiting, in_hand = _rq_counts()
            queued.add_metric(["all"], waiting)
            running.add_metric(["all"], in_hand)
        elif settings.TASKS_BACKEND != "immediate":
            rows = (
                DBTaskResult.objects.filter(
                    status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
                )
                .values("task_path", "status")
                .annotate(n=Count("id"))
                .values_list("task_path", "status", "n")
            )
            for task_path, status, n in rows:
                family = queued if status == TaskResultStatus.READY else running
                family.add_metric([job_label(task_path)], n)
        yield queued
        yield running

    def _checks_per_minute(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "marlin_checks_per_minute",
            "Checks that finished in the last 60 seconds, by result, on every worker.",
            labels=["status"],
        )
        since = timezone.now() - timedelta(seconds=60)
        counts = dict(
            CheckResult.objects.filter(status__in=FINISHED_CHECKS, finished_at__gte=since)
            .values("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in FINISHED_CHECKS:
            family.add_metric([status], counts.get(status, 0))
        return family

    def _active_people(self) -> GaugeMetricFamily:
        minutes = settings.METRICS_ACTIVE_MINUTES
        family = GaugeMetricFamily(
            "marlin_active_people",
            f"People with a heartbeat in the last {minutes} minutes, by kind of work "
            "(judgment: annotators; review; adjudication).",
            labels=["work"],
        )
        since = now_ms() - minutes * 60_000
        counts = dict(
            WorkSession.objects.filter(closed_ms__isnull=True, last_seen_ms__gte=since)
            .values("kind")
            .annotate(n=Count("user_id", distinct=True))
            .values_list("kind", "n")
        )
        for kind in WorkKind.values:
            family.add_metric([kind], counts.get(kind, 0))
        return family

    def _comparisons(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("marlin_comparisons", "Comparisons, by state.", labels=["state"])
        counts = dict(
            Comparison.objects.values("state").annotate(n=Count("id")).values_list("state", "n")
        )
        for state in ComparisonState.values:
            family.add_metric([state], counts.get(state, 0))
        return family

    def _pending_reviews(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "marlin_pending_reviews",
            "Submitted judgments on comparisons in review: work waiting for reviewers.",
            value=Judgment.objects.filter(
                status=JudgmentStatus.SUBMITTED, comparison__state=ComparisonState.IN_REVIEW
            ).count(),
        )

    def _open_disputes(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "marlin_open_disputes",
            "Disputed comparisons waiting for an adjudicator.",
            value=Comparison.objects.filter(state=ComparisonState.DISPUTED).count(),
        )

    def _workers(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        stale_after = max(settings.READY_WORKER_SECONDS, 2 * settings.WORKER_HEARTBEAT_SECONDS)
        yield GaugeMetricFamily(
            "marlin_workers_alive",
            f"Job workers whose heartbeat is at most {stale_after} s old.",
            value=workers.alive_since(now - timedelta(seconds=stale_after)),
        )
        latest = workers.latest_beat()
        if latest is not None:
            yield GaugeMetricFamily(
                "marlin_worker_heartbeat_age_seconds",
                "Seconds since the freshest job worker's heartbeat (absent: no worker running).",
                value=max((now - latest).total_seconds(), 0.0),
            )


def _rq_counts() -> tuple[int, int]:
    """(waiting, running) jobs of RQ's default queue. RQ's queue holds opaque job ids, so its
    depth is one number rather than one per job function. Only the RQ backend needs Redis (the
    `redis` extra); imported where it is used."""
    import redis
    from rq import Queue

    connection = redis.Redis.from_url(
        settings.RQ_QUEUES["default"]["URL"],
        socket_connect_timeout=settings.READY_TIMEOUT_SECONDS,
        socket_timeout=settings.READY_TIMEOUT_SECONDS,
    )
    try:
        queue = Queue("default", connection=connection)
        return int(queue.count), int(queue.started_job_registry.count)
    finally:
        connection.close()


def process_registry() -> CollectorRegistry:
    """This process's own metrics, or with PROMETHEUS_MULTIPROC_DIR those of every process that
    shares the directory."""
    if multiprocess_dir():
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        return processes
    return REGISTRY


def exposition() -> bytes:
    """The text Prometheus scrapes: the processes' own metrics, then the database's."""
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    return generate_latest(process_registry()) + generate_latest(database)


def serve_process_metrics(address: str, port: int) -> None:
    """Answer Prometheus on ADDRESS:PORT from a thread, with this process's metrics only (a
    worker outside `marlin serve`: its job durations and failures; the deployment's gauges are
    the web app's /metrics)."""
    start_http_server(port, addr=address, registry=process_registry())


# Methods a client may send that are not these are counted as "other": a label's values must
# not be whatever a client makes up.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# The histogram's children by labels: labels() takes a lock and checks its arguments on every
# call; the hot path looks its child up here instead (a few hundred routes at most).
_request_children: dict[tuple[str, str, int], Any] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    key = (route, method if method in METHODS else "other", status)
    child = _request_children.get(key)
    if child is None:
        child = _request_children[key] = REQUEST_SECONDS.labels(key[0], key[1], str(status))
    child.observe(seconds)


def observe_job(task_path: str, outcome: str, seconds: float) -> None:
    job = job_label(task_path)
    JOB_SECONDS.labels(job, outcome).observe(seconds)
    if outcome == "failed":
        JOB_FAILURES.labels(job).inc()
