"""What the egress proxy costs: per request and per MB against a direct connection, and per run.

From inside a real bwrap sandbox, a client fetches from an HTTP server on the host's loopback:

- direct: `network="host"` (the host's network, what a run had before proxy mode), to
  127.0.0.1:PORT;
- proxy, plain HTTP: `network="proxy"`, `GET http://bench.test:PORT/...` to the relay at
  127.0.0.1:3128 (relay -> Unix socket -> asyncio proxy -> server);
- proxy, CONNECT: the same through a `CONNECT bench.test:PORT` tunnel, the path HTTPS takes.

bench.test resolves (table resolver, no DNS) to 127.0.0.1 and is named an internal host, as an
administrator would name an in-house mirror. Each request opens a new connection (the proxy
serves one request per plain-HTTP connection). Per-run start cost: `run(["true"])` in `proxy`
mode against `none` mode.

Run: .venv/bin/python benchmarks/egress_proxy.py [--rounds 5] [--requests 200] [--mb 64]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

from marlin.sandbox import Limits, run
from marlin.sandbox.egress import Egress, egress_session

CLIENT = r"""
import json, socket, sys, time
how, port, requests, megabytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
server = ("127.0.0.1", port) if how == "direct" else ("127.0.0.1", 3128)

def fetch(path):
    s = socket.create_connection(server, timeout=60)
    if how == "connect":
        s.sendall(f"CONNECT bench.test:{port} HTTP/1.1\r\nHost: bench.test:{port}\r\n\r\n".encode())
        answer = s.recv(4096)  # the proxy sends its 200 alone, before any byte of the server
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n"), answer
    target = f"http://bench.test:{port}{path}" if how == "http" else path
    head = f"GET {target} HTTP/1.1\r\nHost: bench.test:{port}\r\nConnection: close\r\n\r\n"
    s.sendall(head.encode())
    total = 0
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    s.close()
    return total

latencies = []
for _ in range(requests):
    started = time.perf_counter()
    assert fetch("/small") > 100
    latencies.append(time.perf_counter() - started)
started = time.perf_counter()
size = fetch(f"/big/{megabytes}")
seconds = time.perf_counter() - started
assert size > megabytes << 20
latencies.sort()
median_ms = latencies[len(latencies) // 2] * 1000
print(json.dumps({"median_ms": median_ms, "mb_per_s": megabytes / seconds}))
"""

BIG = b"x" * (1 << 20)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/big/"):
            megabytes = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(megabytes << 20))
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(megabytes):
                self.wfile.write(BIG)
            return
        body = b"ok " * 40
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def client_run(workdir: Path, how: str, port: int, requests: int, megabytes: int) -> dict:
    network = "host" if how == "direct" else "proxy"
    egress = (
        Egress(
            allow=(f"bench.test:{port}",),
            internal_hosts=("bench.test",),
            resolve=lambda host: ["127.0.0.1"],
        )
        if network == "proxy"
        else None
    )
    result = run(
        ["/usr/bin/python3", "-c", CLIENT, how, str(port), str(requests), str(megabytes)],
        workdir=workdir,
        network=network,
        egress=egress,
        timeout=600,
        limits=Limits(memory_mb=1024),
    )
    if not result.ok:
        raise SystemExit(f"{how}: {result.stderr or result.stdout}")
    return json.loads(result.stdout)


def timed(call: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="client runs per way")
    parser.add_argument("--requests", type=int, default=200, help="small requests per round")
    parser.add_argument("--mb", type=int, default=64, help="size of the download per round")
    parser.add_argument("--start-runs", type=int, default=30)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"python {platform.python_version()}, load average {load:.1f}"
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results: dict[str, list[dict]] = {"direct": [], "http": [], "connect": []}
        client_run(workdir, "http", port, 5, 1)  # warm up: the bwrap probe, the loop thread
        # Interleaved, so that load from others on the machine hits every way alike.
        for _ in range(args.rounds):
            for how in results:
                results[how].append(client_run(workdir, how, port, args.requests, args.mb))
        median = {
            how: (
                statistics.median(r["median_ms"] for r in rows),
                statistics.median(r["mb_per_s"] for r in rows),
            )
            for how, rows in results.items()
        }
        print(f"\nper request (new connection, median of {args.rounds} rounds x {args.requests})")
        direct_ms, direct_mbs = median["direct"]
        for how, label in (
            ("direct", "direct (host network)"),
            ("http", "proxy, plain HTTP"),
            ("connect", "proxy, CONNECT tunnel"),
        ):
            ms, mbs = median[how]
            print(
                f"  {label:<24} {ms:7.3f} ms  (+{ms - direct_ms:6.3f} ms, {ms / direct_ms:4.1f}x)"
                f"   {mbs:8.1f} MB/s ({mbs / direct_mbs:4.2f}x of direct, {args.mb} MB)"
            )

        none = timed(lambda: run(["true"], workdir=workdir), args.start_runs)
        proxy = timed(
            lambda: run(["true"], workdir=workdir, network="proxy", egress=Egress()),
            args.start_runs,
        )

        python = timed(
            lambda: run(["/usr/bin/python3", "-I", "-S", "-c", "pass"], workdir=workdir),
            args.start_runs,
        )

        def session_only() -> None:
            with egress_session(Egress()):
                pass

        session = timed(session_only, args.start_runs)
        print(f"\nper run (median of {args.start_runs})")
        print(f"  run(['true']), network='none'   {none * 1000:7.1f} ms")
        print(
            f"  run(['true']), network='proxy'  {proxy * 1000:7.1f} ms  "
            f"(+{(proxy - none) * 1000:.1f} ms, {proxy / none:.2f}x)"
        )
        print(f"  egress session alone (socket, start, stop) {session * 1000:7.2f} ms")
        print(
            f"  for scale: run(['python3', '-I', '-S', '-c', 'pass']), network='none' "
            f"{python * 1000:7.1f} ms (the relay is such a python)"
        )
    server.shutdown()


if __name__ == "__main__":
    main()
