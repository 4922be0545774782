"""The JSON request and job lines, read through the formatter operators get with
MARLIN_LOG_FORMAT=json (the real server's output is read in test_serve_observed.py)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.catalog.jobs import mirror_repository
from marlin.monitoring.logs import JsonFormatter


@pytest.fixture
def log_lines(settings) -> Iterator[io.StringIO]:
    """What the console handler prints in JSON mode, for the request and job loggers."""
    settings.LOG_REQUESTS = True
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("marlin.requests", "marlin.jobs")]
    for logger in loggers:
        logger.addHandler(handler)
    yield stream
    for logger in loggers:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_line_names_route_status_time_id_and_user_id(client, alice, log_lines) -> None:
    client.force_login(alice)
    response = client.get("/api/comparisons?token=abc", HTTP_X_REQUEST_ID="lb-0123456789")
    assert response["X-Request-ID"] == "lb-0123456789"
    [line] = lines(log_lines)
    assert line["request_id"] == "lb-0123456789"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/api/comparisons", 200)
    assert line["user_id"] == alice.pk and "alice" not in json.dumps(line)
    assert line["level"] == "INFO" and line["logger"] == "marlin.requests"
    assert "token=abc" not in log_lines.getvalue()


@pytest.mark.parametrize(
    "given",
    [
        "short",  # too short to be an id
        "x" * 200,  # too long
        'id"}\n{"level": "ERROR", "forged": true',  # a second log line smuggled in
        "Bearer mrl_pasted-token",  # spaces: not an id
    ],
)
def test_an_implausible_request_id_is_replaced(client, db, log_lines, given: str) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID=given)
    assert response["X-Request-ID"] != given
    [line] = lines(log_lines)
    assert line["request_id"] == response["X-Request-ID"]
    assert given not in log_lines.getvalue()


def test_requests_are_not_logged_unless_asked(client, db, log_lines, settings) -> None:
    settings.LOG_REQUESTS = False
    client.get("/healthz")
    assert log_lines.getvalue() == ""


def test_a_job_line_names_job_outcome_duration_and_id(db, log_lines, settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    done = mirror_repository.enqueue(987654)  # nothing to mirror: succeeds
    failed = mirror_repository.enqueue("not-an-id")  # raises in the job
    found = {line["job_id"]: line for line in lines(log_lines)}
    assert found[str(done.id)]["outcome"] == "successful"
    assert found[str(failed.id)]["outcome"] == "failed"
    assert found[str(failed.id)]["level"] == "WARNING"
    for line in found.values():
        assert line["job"] == "catalog.mirror_repository" and line["duration_ms"] >= 0
        assert "not-an-id" not in json.dumps(line)  # the job's arguments are not logged


def test_an_unknown_log_format_stops_the_start_with_what_to_set(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "marlin", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "MARLIN_LOG_FORMAT": "xml", "MARLIN_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "MARLIN_LOG_FORMAT='xml': use plain or json." in done.stderr
