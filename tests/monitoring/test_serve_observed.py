"""Metrics and JSON logs of `marlin serve` as deployed: two gunicorn processes and a job worker
sharing one PROMETHEUS_MULTIPROC_DIR, scraped over HTTP; the log read from the server's output.
A scrape that lands on either web process counts the requests both served and the jobs the
worker ran; no token, cookie or key sent with a request reaches the log."""

from __future__ import annotations

import json
import re
import signal
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.management.test_serve import Site, children, wait_until

pytestmark = pytest.mark.slow

METRICS_TOKEN = "scrape-token-0123456789abcdef"
SECRETS = {
    "query": "sk-ant-api03-query-secret-0123456789",
    "header": "sk-provider-header-secret-0123456789",
    "cookie": "cookie-secret-0123456789abcdef",
    "bad_bearer": "mrl_not-a-real-token-but-secret-0123",
}


def fetch(site: Site, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{site.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def scrape(site: Site) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _, body = fetch(site, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200, body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def json_lines(site: Site) -> list[dict]:
    lines = []
    for line in site.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # every line that looks like JSON must be JSON
    return lines


def pids_that_served(metrics_dir: Path) -> set[str]:
    return {
        match.group(1)
        for path in metrics_dir.iterdir()
        if (match := re.fullmatch(r"histogram_(\d+)\.db", path.name))
    }


def test_serve_sums_metrics_over_its_processes_and_logs_json_without_secrets(
    site: Site, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    site.env.update(
        MARLIN_LOG_FORMAT="json",
        MARLIN_METRICS_TOKEN=METRICS_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        MARLIN_WORKER_HEARTBEAT_SECONDS="1",
    )
    raw_token = site.call(
        "-c",
        "import django; django.setup(); "
        "from marlin.accounts.models import ApiToken, User; "
        "user = User.objects.create_user(username='erin', password='x-9-long-password'); "
        "user.role_grants.create(role='admin'); "
        "print(user.pk, ApiToken.issue(user, 'script')[1])",
    ).split()
    user_id, token = int(raw_token[0]), raw_token[1]
    site.start("serve", f"127.0.0.1:{site.port}", "--workers", "2", "--threads", "2")
    wait_until(lambda: fetch(site, "/readyz")[0] == 200, 60, "never ready\n" + site.log())

    # /healthz on fresh connections until both web processes have served some.
    served = 0
    while len(pids_that_served(metrics_dir)) < 3 and served < 300:  # 2 web + (later) worker
        assert fetch(site, "/healthz")[0] == 200
        served += 1
        if served >= 20 and len(pids_that_served(metrics_dir)) >= 2:
            break
    assert len(pids_that_served(metrics_dir)) >= 2, "one web process served everything"

    # Each scrape lands on one process or the other; every one counts all of them.
    healthz = (
        "marlin_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/healthz"), ("status", "200")),
    )
    for _ in range(6):
        assert scrape(site)[healthz] == served

    # A request with secrets in its query, headers and cookies, and an id from the caller.
    status, headers, _ = fetch(
        site,
        f"/api/comparisons?api_key={SECRETS['query']}",
        {
            "X-Request-ID": "caller-request-0001",
            "X-Provider-Key": SECRETS["header"],
            "Cookie": f"sessionid={SECRETS['cookie']}",
            "Authorization": f"Bearer {SECRETS['bad_bearer']}",
        },
    )
    assert status == 401
    assert headers["X-Request-ID"] == "caller-request-0001"
    # A signed-in API client, named in the log by its id only.
    status, headers, _ = fetch(site, "/api/comparisons", {"Authorization": f"Bearer {token}"})
    assert status == 200
    generated_id = headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated_id)

    # Two jobs through the worker: one that finds nothing to do, one that raises.
    site.call(
        "-c",
        "import django; django.setup(); "
        "from marlin.catalog.jobs import mirror_repository; "
        "mirror_repository.enqueue(987654); mirror_repository.enqueue('not-an-id')",
    )
    job = "catalog.mirror_repository"
    wait_until(
        lambda: scrape(site).get(("marlin_job_failures_total", (("job", job),))) == 1,
        60,
        "the failed job was never counted\n" + site.log(),
    )
    found = scrape(site)
    assert found[("marlin_job_duration_seconds_count", (("job", job), ("outcome", "failed")))] == 1
    done = ("marlin_job_duration_seconds_count", (("job", job), ("outcome", "successful")))
    assert found[done] == 1
    assert found[("marlin_workers_alive", ())] == 1

    lines = json_lines(site)
    by_request = {
        line.get("request_id"): line for line in lines if line["logger"] == "marlin.requests"
    }
    refused = by_request["caller-request-0001"]
    assert refused["method"] == "GET" and refused["status"] == 401
    assert refused["route"] == "/api/comparisons" and refused["user_id"] is None
    assert isinstance(refused["duration_ms"], float)
    assert by_request[generated_id]["user_id"] == user_id
    outcomes = sorted(
        (line["outcome"], line["job"], bool(line.get("job_id")), "duration_ms" in line)
        for line in lines
        if line["logger"] == "marlin.jobs"
    )
    assert outcomes == [(o, job, True, True) for o in ("failed", "successful")]

    text = site.log()
    for secret in [*SECRETS.values(), token, METRICS_TOKEN]:
        assert secret not in text, secret


def test_serve_makes_its_own_metrics_directory_and_removes_it_when_it_stops(site: Site) -> None:
    site.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    site.env.pop("MARLIN_METRICS_TOKEN", None)
    process = site.start("serve", f"127.0.0.1:{site.port}", "--no-worker", "--workers", "1")
    [web] = children(process.pid)
    environ = Path(f"/proc/{web}/environ").read_bytes().split(b"\0")
    [setting] = [item for item in environ if item.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    directory = Path(setting.split(b"=", 1)[1].decode())
    assert fetch(site, "/healthz")[0] == 200
    status, _, body = fetch(site, "/metrics")  # loopback, no token configured
    assert status == 200 and b'route="/healthz"' in body
    assert any(directory.iterdir())
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert not directory.exists()
