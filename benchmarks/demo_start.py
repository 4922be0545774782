"""How long `make demo` takes, on a warm venv, until every demo role's first page shows data.

Runs the real `make demo` (the venv is already installed, so `make setup` is a no-op) with its
own data directory, listening on free loopback ports, and polls over HTTP: it logs in as erin,
dave, alice, bob and carol and reads each one's first page until it carries what the demo loads
(the four ranked agents, the history's tasks, alice's three waiting comparisons, rows in the
review and adjudication queues). The clock runs from starting `make` to the moment all five
pages are populated. Three cases, --runs times each, medians reported:

- first start: an empty data directory (migrations, the demo's load with its history, then the
  server and the worker);
- restart: the same data directory again (the load finds everything and changes nothing);
- `marlin serve` on that data: what a user would run instead once the data exists; the ratio
  restart / serve is the demo's own overhead at start.

Run: .venv/bin/python benchmarks/demo_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "marlin-demo"  # noqa: S105 - the demo users' published password
TIMEOUT_S = 600
# (username, path, patterns the page must contain)
PAGES = [
    ("erin", "/leaderboard/1/", ["atlas-coder", "corvid-agent", "heron-swe", "kestrel-dev"]),
    ("dave", "/tasks/", [r"Add Ledger\.accounts\(\)"]),
    ("alice", "/compare/", [r"\b3 comparisons waiting for you"]),
    ("bob", "/review/queue/", [r'href="/review/[^"/]+/judgments/\d+/"']),
    ("carol", "/review/adjudicate/", [r'href="/review/[^"/]+/adjudicate/"']),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def populated(base: str, username: str, path: str, needles: list[str]) -> bool:
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            login = client.get("/account/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
            if login.status_code != 200 or token is None:
                return False
            client.post(
                "/account/login/",
                data={
                    "username": username,
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": token.group(1),
                },
                headers={"Referer": f"{base}/account/login/"},
            )
            page = client.get(path)
            return page.status_code == 200 and all(re.search(n, page.text) for n in needles)
    except httpx.HTTPError:
        return False


def start(command: list[str], data_dir: Path, log: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    env = {
        **os.environ,
        "MARLIN_DATA_DIR": str(data_dir),
        "MARLIN_LISTEN": f"127.0.0.1:{port}",
        "MARLIN_DEMO_MODEL_SERVER": f"127.0.0.1:{free_port()}",
    }
    env.pop("MARLIN_DATABASE_URL", None)  # the demo's own SQLite file in its data directory
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    return process, f"http://127.0.0.1:{port}", started


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_to_pages(command: list[str], data_dir: Path, log: Path) -> float:
    process, base, started = start(command, data_dir, log)
    try:
        remaining = list(PAGES)
        while remaining:
            if time.monotonic() - started > TIMEOUT_S or process.poll() is not None:
                raise SystemExit(f"not populated after {TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            remaining = [p for p in remaining if not populated(base, *p)]
            if remaining:
                time.sleep(0.25)
        return time.monotonic() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    make = ["make", "--no-print-directory", "demo"]
    serve = [str(ROOT / ".venv" / "bin" / "marlin"), "serve"]
    results: dict[str, list[float]] = {"first start": [], "restart": [], "serve": []}
    # CPU seconds of everything each case started (make, the demo or serve, gunicorn, the
    # worker and its sandboxes), up to the end of the case: what an idle machine would need.
    cpu: dict[str, list[float]] = {name: [] for name in results}
    loads = []
    scratch = Path(tempfile.mkdtemp(prefix="marlin-demo-bench-"))
    try:
        for run in range(args.runs):
            data = scratch / f"run{run}"
            log = scratch / f"run{run}.log"
            loads.append(os.getloadavg()[0])
            for name, command in (("first start", make), ("restart", make), ("serve", serve)):
                before = cpu_of_children()
                results[name].append(time_to_pages(command, data, log))
                cpu[name].append(cpu_of_children() - before)
            print(
                f"run {run + 1}: "
                + ", ".join(
                    f"{k} {v[-1]:.1f} s ({cpu[k][-1]:.1f} s CPU)" for k, v in results.items()
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average at the runs' starts "
        f"{', '.join(f'{x:.1f}' for x in loads)}, Python {sys.version.split()[0]}"
    )
    for name, value in medians.items():
        print(
            f"median {name}: {value:.1f} s (runs: {', '.join(f'{x:.1f}' for x in results[name])})"
        )
        print(f"  CPU: median {statistics.median(cpu[name]):.1f} s")
    print(f"restart / serve: {medians['restart'] / medians['serve']:.2f}x")


if __name__ == "__main__":
    main()
