"""A `marlin worker` outside `marlin serve` (another machine, the compose file's worker service):
its heartbeat row while it runs, gone when it stops in order, and its own job metrics on
--metrics-port. Real processes on a SQLite file."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.management.test_serve import ROOT, Site, free_port, wait_until

pytestmark = pytest.mark.slow

JOB = "catalog.mirror_repository"


def heartbeats(site: Site) -> int:
    return int(
        site.call(
            "-c",
            "import django; django.setup(); "
            "from marlin.monitoring.models import WorkerHeartbeat; "
            "print(WorkerHeartbeat.objects.count())",
        )
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310
            text = answer.read().decode()
    except (urllib.error.URLError, OSError):
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_worker_beats_exports_its_job_metrics_and_forgets_its_beat_when_stopped(
    site: Site,
) -> None:
    site.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    site.env["MARLIN_WORKER_HEARTBEAT_SECONDS"] = "1"
    site.call(
        "-c",
        "import django; django.setup(); "
        "from marlin.catalog.jobs import mirror_repository; "
        "mirror_repository.enqueue(987654); mirror_repository.enqueue('not-an-id')",
    )
    port = free_port()
    worker = subprocess.Popen(
        [sys.executable, "-m", "marlin", "worker", "--metrics-port", str(port)],
        cwd=ROOT,
        env=site.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        failed = ("marlin_job_failures_total", (("job", JOB),))
        wait_until(lambda: scrape(port).get(failed) == 1, 90, "the failure was never exported")
        found = scrape(port)
        done = ("marlin_job_duration_seconds_count", (("job", JOB), ("outcome", "successful")))
        assert found[done] == 1
        # The worker's own process only: the deployment's gauges are the web app's.
        assert not any(name.startswith("marlin_pending") for name, _ in found)
        assert heartbeats(site) == 1
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert heartbeats(site) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_metrics_port_in_use_is_refused_with_what_to_do(site: Site) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "marlin", "worker", "--batch", "--metrics-port", str(port)],
            cwd=ROOT,
            env=site.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode != 0
    assert f"Cannot answer metrics on 127.0.0.1:{port}" in done.stderr
    assert "choose another --metrics-port" in done.stderr
    assert "Traceback" not in done.stderr
