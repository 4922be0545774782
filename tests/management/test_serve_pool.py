"""On PostgreSQL, `marlin serve` pools its database connections: however many clients keep a
connection open, the server holds at most processes x threads database connections."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from django.db import connection

from marlin.accounts.models import ApiToken
from tests.management.test_serve import ROOT, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _connections(database: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_forty_clients_use_at_most_workers_times_threads_connections(
    make_user, tmp_path: Path, _data_dir: Path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("runs when the suite runs on PostgreSQL (MARLIN_DATABASE_URL=postgres://...)")
    settings_dict = connection.settings_dict
    database = settings_dict["NAME"]
    url = (
        f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}"
        f"/{database}"
    )
    _, raw = ApiToken.issue(make_user("alice", "annotator"), "pool")
    before = _connections(database)
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "marlin.settings",
        "MARLIN_DATABASE_URL": url,
        "MARLIN_DATA_DIR": str(_data_dir),
    }
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "marlin", "serve", "--port", str(port), "--no-worker",
         "--workers", "1", "--threads", "3"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/account/login/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 180, "serve never answered")
        statuses: list[int] = []
        most = [0]
        barrier = threading.Barrier(40)

        def client() -> None:
            # One keep-alive connection per client, five requests each, all at once.
            with httpx.Client(base_url=base, timeout=60) as http:
                barrier.wait(timeout=60)
                for _ in range(5):
                    response = http.get(
                        "/api/comparisons", headers={"Authorization": f"Bearer {raw}"}
                    )
                    statuses.append(response.status_code)

        threads = [threading.Thread(target=client) for _ in range(40)]
        for thread in threads:
            thread.start()
        # Count the server's connections while the clients run (from this thread: the test's
        # own pooled connection, not one per client thread).
        while any(thread.is_alive() for thread in threads):
            most[0] = max(most[0], _connections(database) - before)
            threads[0].join(0.05)
        for thread in threads:
            thread.join(120)
        assert statuses == [200] * 200
        # One process of three threads: at most three connections, whatever the 40 clients do.
        assert 1 <= most[0] <= 3, most[0]
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        log.close()
