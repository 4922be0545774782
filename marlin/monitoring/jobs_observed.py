"""Every job's outcome, wherever it runs: one log line and the job metrics.

django-tasks sends task_started and task_finished in the process that runs the job (the
database backend's worker loop, RQ's work horse, the request itself with the immediate
backend); the receivers are connected in MonitoringConfig.ready. The job's arguments are never
logged: ids only by design, but a receiver has no business reading them.
"""

from __future__ import annotations

import logging
from typing import Any

from django_tasks import TaskResult, TaskResultStatus

from marlin.monitoring import logs, metrics

logger = logging.getLogger("marlin.jobs")


def job_started(sender: Any, task_result: TaskResult[Any], **kwargs: Any) -> None:
    logs.job_id.set(str(task_result.id))


def job_finished(sender: Any, task_result: TaskResult[Any], **kwargs: Any) -> None:
    outcome = "failed" if task_result.status == TaskResultStatus.FAILED else "successful"
    started, finished = task_result.started_at, task_result.finished_at
    seconds = (finished - started).total_seconds() if started and finished else 0.0
    task_path = task_result.task.module_path
    metrics.observe_job(task_path, outcome, seconds)
    logs.job_id.set(str(task_result.id))
    logger.log(
        logging.WARNING if outcome == "failed" else logging.INFO,
        "job %s %s in %.0f ms",
        metrics.job_label(task_path),
        outcome,
        seconds * 1000,
        extra={
            "job": metrics.job_label(task_path),
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 1),
        },
    )
    logs.job_id.set(None)
