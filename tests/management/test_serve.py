"""`marlin serve` and `marlin demo` as an operator runs them: real processes, a real worker child
and a real sandboxed check. The worker is restarted when it dies; SIGTERM, SIGINT or SIGKILL to
serve leaves no worker and no sandbox behind.

The processes share a SQLite database file; they are found through /proc (Linux): the worker by
its parent, everything serve started by the data directory in its environment, and the check's
sandbox by a marker in its command line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.checks.scenario import link_shared_tools
from tests.migrated_sqlite import copy_migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has stopped; only its reaper is late


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return b""


def children(pid: int) -> list[int]:
    return [p for p in _pids() if (s := _stat(p)) is not None and s[1] == pid and s[0] != "Z"]


def job_workers(pid: int) -> list[int]:
    """Serve's children that are its job worker (the other one is the web server)."""
    return [p for p in children(pid) if b"\0worker\0" in _read(f"/proc/{p}/cmdline")]


def started_with(data_dir: Path) -> list[int]:
    """Live processes whose environment names this test's data directory."""
    needle = f"MARLIN_DATA_DIR={data_dir}".encode()
    return [p for p in _pids() if needle in _read(f"/proc/{p}/environ").split(b"\0") and _alive(p)]


def running(marker: str) -> list[int]:
    """Live processes whose command line holds `marker` (the sandboxed check and its bwrap)."""
    return [
        p
        for p in _pids()
        if p != os.getpid() and marker.encode() in _read(f"/proc/{p}/cmdline") and _alive(p)
    ]


# Bounds are generous: on a loaded 2-core machine a kill chain (serve -> worker -> bwrap ->
# sandboxed process) takes seconds; the polls return as soon as the condition holds.
def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Site:
    """One `marlin serve` (or `marlin demo`) on a free port, its log, and what it started."""

    def __init__(self, tmp_path: Path, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = tmp_path / "serve.log"
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "marlin.settings",
            "MARLIN_DATABASE_URL": f"sqlite:///{tmp_path / 'marlin.sqlite3'}",
            "MARLIN_DATA_DIR": str(data_dir),
            "MARLIN_TASKS_BACKEND": "database",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def call(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def start(self, command: str = "serve", *listen: str) -> subprocess.Popen[bytes]:
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "marlin", command, *(listen or [f"127.0.0.1:{self.port}"])],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.answers, 180, "serve never answered HTTP\n" + self.log())
        return self.process

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 (a loopback URL of our own)
                f"http://127.0.0.1:{self.port}/account/login/", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def worker(self) -> int:
        assert self.process is not None
        pids = wait_until(lambda: job_workers(self.process.pid), 30, "serve started no worker")
        assert isinstance(pids, list) and len(pids) == 1, pids
        return int(pids[0])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop_everything(self) -> None:
        for pid in [*started_with(self.data_dir), *([self.process.pid] if self.process else [])]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait(timeout=10)


@pytest.fixture
def site(
    tmp_path: Path, _data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    link_shared_tools(_data_dir)
    made = Site(tmp_path, _data_dir)
    copy_migrated_sqlite(tmp_path_factory, tmp_path / "marlin.sqlite3")
    yield made
    made.stop_everything()


def sandboxed_check(site: Site) -> str:
    """Queue a check that sleeps in the sandbox; return the marker in its command line once it
    runs."""
    marker = f"marker-{uuid.uuid4().hex}"
    site.call("-m", "tests.checks.scenario", "setup", "--command", f"sleep 300 && echo {marker}")
    wait_until(lambda: running(marker), 90, "the check never started\n" + site.log())
    return marker


def test_serve_restarts_its_worker_when_the_worker_dies(site: Site) -> None:
    site.start()
    first = site.worker()
    os.kill(first, signal.SIGKILL)
    second = wait_until(
        lambda: [p for p in job_workers(site.process.pid) if p != first],  # type: ignore[union-attr]
        30,
        "serve did not start a new worker\n" + site.log(),
    )
    assert second and first not in second  # type: ignore[operator]
    wait_until(site.answers, 60, "the web server stopped answering\n" + site.log())
    assert "worker" in site.log() and "restart" in site.log().lower(), site.log()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_stopping_serve_stops_its_worker_and_the_worker_s_sandbox(
    site: Site, how: signal.Signals
) -> None:
    serve = site.start()
    worker = site.worker()
    marker = sandboxed_check(site)
    serve.send_signal(how)
    serve.wait(timeout=60)
    assert not _alive(worker), site.log()
    assert started_with(site.data_dir) == [], site.log()
    wait_until(lambda: not running(marker), 60, "the sandboxed check outlived serve")


def test_a_killed_serve_leaves_no_worker_and_no_sandbox(site: Site) -> None:
    serve = site.start()
    worker = site.worker()
    marker = sandboxed_check(site)
    serve.send_signal(signal.SIGKILL)
    serve.wait(timeout=10)
    wait_until(lambda: not _alive(worker), 60, "the worker outlived a killed serve")
    wait_until(lambda: not started_with(site.data_dir), 60, "a process of serve outlived it")
    wait_until(lambda: not running(marker), 60, "the sandboxed check outlived serve")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_demo_leaves_no_worker(site: Site, how: signal.Signals) -> None:
    demo = site.start("demo", "--port", str(site.port))
    worker = site.worker()
    demo.send_signal(how)
    demo.wait(timeout=60)
    wait_until(lambda: not _alive(worker), 60, "the worker outlived the demo\n" + site.log())
    wait_until(lambda: not started_with(site.data_dir), 60, "a process of the demo outlived it")


def check_statuses(site: Site, candidate: int) -> list[str]:
    rows = json.loads(site.call("-m", "tests.checks.scenario", "status", str(candidate)))
    return [row["status"] for row in rows]


def test_the_check_a_killed_serve_interrupted_finishes_after_a_restart(site: Site) -> None:
    """A check cut short with serve is not lost: its lease runs out and the next serve's worker
    runs it again."""
    site.env["MARLIN_JOB_LEASE_SECONDS"] = "2"
    serve = site.start()
    site.worker()
    # Long enough to be seen running: the setup command and each status poll start a Python
    # process, ten seconds and more on a loaded machine, and the check may start before the
    # setup command has exited.
    made = json.loads(
        site.call("-m", "tests.checks.scenario", "setup", "--command", "sleep 45 && true")
    )
    candidate = made["candidate"]
    wait_until(lambda: check_statuses(site, candidate) == ["running"], 60, "no check started")
    serve.send_signal(signal.SIGKILL)
    serve.wait(timeout=10)
    wait_until(lambda: not started_with(site.data_dir), 60, "serve left a process behind")
    site.start()
    wait_until(
        lambda: check_statuses(site, candidate) == ["passed"],
        240,
        "the interrupted check never finished\n" + site.log(),
    )


def fetch(site: Site, path: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(  # noqa: S310 (a loopback URL of our own)
            f"http://127.0.0.1:{site.port}{path}", timeout=10
        ) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_serve_runs_a_production_server_that_answers_json_errors_under_the_api(
    site: Site,
) -> None:
    serve = site.start("serve", "--port", str(site.port))
    status, headers, body = fetch(site, "/api/no-such-endpoint")
    assert status == 404, body
    assert headers["Content-Type"] == "application/json", headers
    assert "no API endpoint" in json.loads(body)["detail"]
    assert headers["Server"].startswith("gunicorn"), headers
    status, _, body = fetch(site, "/account/login/")
    assert status == 200 and b"<form" in body
    # The web server is serve's child beside the worker; no development server anywhere.
    web = [p for p in children(serve.pid) if b"gunicorn" in _read(f"/proc/{p}/cmdline")]
    assert len(web) == 1 and children(web[0]), site.log()
    assert "development server" not in site.log().lower(), site.log()
    assert f"Marlin is serving on http://127.0.0.1:{site.port}/" in site.log()


def test_serve_refuses_an_address_it_cannot_listen_on(site: Site) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "marlin", "serve", "127.0.0.1:not-a-port", "--no-worker"],
        cwd=ROOT,
        env=site.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "give a port (8000), an address and a port (127.0.0.1:8000" in done.stderr
