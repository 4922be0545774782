"""What the sandbox costs per command: `true` through run() (bwrap and local) vs subprocess.run.

Run: .venv/bin/python benchmarks/sandbox_overhead.py [--runs 50]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from marlin.sandbox import Limits, run
from marlin.sandbox.bwrap import filesystem_args, find_bwrap, namespace_args


def measure(label: str, call: Callable[[], object], runs: int) -> float:
    call()  # warm up: imports, the one-time bwrap probe, page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1]
    print(f"{label:<34} median {median * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms   ({runs} runs)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plain = measure(
            "subprocess.run(['true'])",
            lambda: subprocess.run(["true"], cwd=workdir, check=True),
            args.runs,
        )
        local = measure(
            "run(['true'], backend='local')",
            lambda: run(["true"], workdir=workdir, backend="local"),
            args.runs,
        )
        raw_argv = [
            find_bwrap(),
            *namespace_args(network=False),
            *filesystem_args(workdir, [], Limits(), network=False),
            "--",
            "true",
        ]
        raw = measure(
            "bare bwrap, same flags",
            lambda: subprocess.run(raw_argv, cwd=workdir, check=True),
            args.runs,
        )
        bwrap = measure(
            "run(['true'], backend='bwrap')",
            lambda: run(["true"], workdir=workdir, backend="bwrap"),
            args.runs,
        )
    print(f"bwrap / subprocess.run: {bwrap / plain:.1f}x  (+{(bwrap - plain) * 1000:.1f} ms)")
    print(f"bwrap / bare bwrap:     {bwrap / raw:.1f}x  (+{(bwrap - raw) * 1000:.1f} ms)")
    print(f"local / subprocess.run: {local / plain:.1f}x  (+{(local - plain) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
