"""Identity scanning with normalisation (NFKC, format characters dropped, confusables folded)
against the same scanner reading the text as written, in one run.

Workloads: (1) the 806 real SWE-bench Lite patches of AutoCodeRover, CodeR and SWE-agent from
/work/shared/realdata/swebench_lite/predictions (skipped when absent); (2) the same patches with a
non-ASCII character (an accented letter in a comment) on every added line, which takes every line
off the ASCII fast path. Each is scanned with find_fingerprints (a) as shipped and (b) with
normalisation switched off (what the scanner did before it learned disguises). Medians of
--runs runs.

Run: .venv/bin/python benchmarks/fingerprints.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from marlin.agents import fingerprints

PREDICTIONS = Path("/work/shared/realdata/swebench_lite/predictions")


def load() -> list[str]:
    records = json.loads((PREDICTIONS / "autocoderover-run2.json").read_text())
    for name in ("coder-2024-06-04.jsonl", "swe-agent-cost2-run2.jsonl"):
        lines = (PREDICTIONS / name).read_text().splitlines()
        records += [json.loads(line) for line in lines if line]
    return [r.get("model_patch") or "" for r in records]


def accented(patch: str) -> str:
    return "\n".join(
        line + "  # é" if line.startswith("+") and not line.startswith("+++") else line
        for line in patch.split("\n")
    )


def scan_all(patches: list[str]) -> float:
    start = time.perf_counter()
    for patch in patches:
        fingerprints.find_fingerprints(patch)
    return time.perf_counter() - start


def as_written(text: str) -> tuple[str, None]:
    return text, None


def compare(patches: list[str], runs: int) -> tuple[float, float]:
    """Medians of the shipped scan and of the scan without normalisation, run alternately so
    that the machine's load falls on both alike."""
    shipped, plain = [], []
    original = fingerprints.normalise
    for _ in range(runs):
        shipped.append(scan_all(patches))
        fingerprints.normalise = as_written  # type: ignore[assignment]
        try:
            plain.append(scan_all(patches))
        finally:
            fingerprints.normalise = original
    return statistics.median(shipped), statistics.median(plain)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not PREDICTIONS.is_dir():
        print(f"skipped: {PREDICTIONS} is not on this machine")
        return
    print(f"{platform.node()} {platform.python_version()} {time.strftime('%Y-%m-%d %H:%M')}")
    real = load()
    for name, patches in (("real patches", real), ("accented lines", [accented(p) for p in real])):
        megabytes = sum(len(p.encode()) for p in patches) / 1e6
        shipped, plain = compare(patches, args.runs)
        print(
            f"{name}: {len(patches)} patches, {megabytes:.2f} MB; normalised "
            f"{shipped * 1000:.0f} ms ({megabytes / shipped:.1f} MB/s), as written "
            f"{plain * 1000:.0f} ms ({megabytes / plain:.1f} MB/s), ratio {shipped / plain:.2f}"
        )


if __name__ == "__main__":
    main()
