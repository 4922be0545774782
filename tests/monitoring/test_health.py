"""/healthz and /readyz through HTTP, as a load balancer asks them: no login, a JSON body, 503
naming what fails. The database cases run on SQLite and PostgreSQL (the `db` fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from marlin.monitoring import workers
from marlin.monitoring.models import WorkerHeartbeat
from tests.management.test_serve import ROOT, free_port, wait_until


def ready(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, json.loads(response.content)


@pytest.fixture
def worker_alive(db) -> str:
    worker_id = workers.new_worker_id()
    workers.beat(worker_id, started_at=timezone.now())
    return worker_id


def test_healthz_answers_without_login_and_without_the_database(client) -> None:
    # No `db` fixture: pytest-django fails the test if the view touches the database.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_refuses_a_post(client) -> None:
    assert client.post("/healthz").status_code == 405


def test_readyz_is_ready_with_database_queue_disk_and_a_live_worker(
    client, worker_alive, settings
) -> None:
    status, body = ready(client)
    assert status == 200, body
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"database", "queue", "disk", "worker"}
    assert all(check["ok"] for check in body["checks"].values())
    # What a load balancer needs, nothing more: no data directory, no database address.
    text = json.dumps(body)
    assert str(settings.DATA_DIR) not in text
    assert settings.DATABASES["default"]["NAME"] not in text


def test_readyz_names_a_worker_that_never_started(client, db) -> None:
    status, body = ready(client)
    assert status == 503
    assert body["failing"] == ["worker"]
    assert body["checks"]["worker"] == {"ok": False, "detail": "no job worker is running"}


def test_readyz_fails_when_the_freshest_heartbeat_is_stale(client, worker_alive, settings) -> None:
    settings.READY_WORKER_SECONDS = 120
    WorkerHeartbeat.objects.update(last_seen_at=timezone.now() - timedelta(seconds=300))
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["worker"]
    assert body["checks"]["worker"]["detail"].startswith("last heartbeat 30")
    # A second worker that is alive makes the deployment ready again.
    workers.beat(workers.new_worker_id(), started_at=timezone.now())
    assert ready(client)[0] == 200


def test_a_worker_that_stops_in_order_no_longer_counts(client, worker_alive) -> None:
    workers.forget(worker_alive)
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["worker"]


def test_the_worker_check_can_be_switched_off(client, db, settings) -> None:
    settings.READY_WORKER_SECONDS = 0
    status, body = ready(client)
    assert status == 200, body
    assert body["checks"]["worker"]["detail"].startswith("not checked")


def test_readyz_fails_below_the_free_space_threshold(client, worker_alive, settings) -> None:
    settings.READY_MIN_FREE_MB = 1024 * 1024 * 1024  # a petabyte: no test machine has it free
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["disk"]
    assert "below the 1073741824 MB threshold" in body["checks"]["disk"]["detail"]


def test_readyz_fails_when_the_data_directory_is_gone(client, worker_alive, settings) -> None:
    settings.DATA_DIR = Path(settings.DATA_DIR) / "not-there"
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["disk"]
    assert "not-there" not in json.dumps(body)


def test_readyz_fails_when_redis_does_not_answer(client, worker_alive, settings) -> None:
    settings.TASKS_BACKEND = "rq"
    settings.RQ_QUEUES = {"default": {"URL": f"redis://127.0.0.1:{free_port()}/0"}}
    status, body = ready(client)
    assert status == 503 and body["failing"] == ["queue"]
    assert body["checks"]["queue"] == {"ok": False, "detail": "unreachable"}
    assert "redis://" not in json.dumps(body)


@pytest.mark.redis
def test_readyz_pings_redis_for_the_rq_backend(client, worker_alive, settings, redis_url) -> None:
    settings.TASKS_BACKEND = "rq"
    settings.RQ_QUEUES = {"default": {"URL": redis_url}}
    status, body = ready(client)
    assert status == 200, body
    assert body["checks"]["queue"] == {"ok": True, "detail": "reachable"}


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_a_database_that_is_down_fails_readyz_quickly_while_healthz_stays_up(
    tmp_path: Path,
) -> None:
    """The web server as deployed (gunicorn, pooled PostgreSQL connections), pointed at a
    loopback port nothing listens on: /healthz still answers, /readyz says the database, the
    queue (a database table) and the worker (unknown) fail, within the connect timeout rather
    than the pool's 30 s wait."""
    port = free_port()
    closed = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATA_DIR": str(tmp_path / "data"),
        "MARLIN_DATABASE_URL": f"postgres://marlin:a-password@127.0.0.1:{closed}/marlin",
        "MARLIN_TASKS_BACKEND": "database",
        "MARLIN_READY_TIMEOUT_SECONDS": "2",
    }
    log = open(tmp_path / "web.log", "wb")  # noqa: SIM115 (closed below)
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:marlin.management.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: _answers(f"http://127.0.0.1:{port}/healthz"),
            120,
            "gunicorn never answered\n" + (tmp_path / "web.log").read_text(),
        )
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        started = time.monotonic()
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        took = time.monotonic() - started
        assert status == 503, body
        assert body["failing"] == ["database", "queue", "worker"]
        assert body["checks"]["database"] == {"ok": False, "detail": "unreachable"}
        assert body["checks"]["disk"]["ok"] is True
        assert took < 15, took
        assert "a-password" not in json.dumps(body) and str(closed) not in json.dumps(body)
        # The reason is in the log for the operator, without the password.
        text = (tmp_path / "web.log").read_text()
        assert "readiness: database unreachable" in text
        assert "a-password" not in text
    finally:
        web.terminate()
        web.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
