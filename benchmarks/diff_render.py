"""Benchmark diff parsing and rendering (marlin.diffs.parse / diffrender).

Generates patches with about 200, 2,000 and 20,000 changed lines spread over realistic files
(100 changed lines per file, in hunks of a few lines, Python and JavaScript), then measures, as
medians of several runs: parsing, rendering every file eagerly (split view), the first-screen
strategy (render_patch: full files up to FIRST_SCREEN_LINES rows, placeholders after), and the
alternative a developer would write first: one pygments.highlight call per line. Prints ratios
from the same run. Usage: .venv/bin/python benchmarks/diff_render.py [--runs N]
"""

from __future__ import annotations

import argparse
import difflib
import random
import statistics
import time
from collections.abc import Callable
from html import escape

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name

from marlin.diffs.parse import FileDiff, parse_patch
from marlin.diffs.render import render_file, render_patch

PY_BLOCK = '''def handler_{n}(request, retries={n}):
    """Handle request {n}.

    Retries up to ``retries`` times and logs every failure.
    """
    for attempt in range(retries):
        result = call_backend(request, timeout={n} * 0.5)  # seconds
        if result.ok:
            return {{"status": "ok", "value": result.value, "attempt": attempt}}
    raise RuntimeError(f"handler {n} failed after {{retries}} attempts")

'''
JS_BLOCK = """export function render{n}(items, options = {{}}) {{
  /* Render {n}: keeps order,
     drops empty items. */
  const out = items.filter((x) => x != null).map((x, i) => `${{i}}: ${{x.name}}`);
  if (options.reverse) {{
    out.reverse();
  }}
  return out.join("\\n");
}}

"""


def make_file(rng: random.Random, index: int, changed: int) -> str:
    """A unified diff of one file with about ``changed`` changed lines."""
    python = index % 3 != 2
    block = PY_BLOCK if python else JS_BLOCK
    old = "".join(block.format(n=n) for n in range(40)).splitlines(keepends=True)
    new = list(old)
    done = 0
    while done < changed:
        at = rng.randrange(5, len(new) - 5)
        size = rng.randint(1, 4)
        for k in range(size):
            new[at + k] = new[at + k].replace("result", "outcome").rstrip("\n") + "  # changed\n"
        done += 2 * size
    path = f"src/pkg{index % 7}/module_{index}.{'py' if python else 'js'}"
    return "".join(difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", n=3))


def make_patch(changed: int, per_file: int = 100) -> str:
    rng = random.Random(changed)
    files = max(1, changed // per_file)
    return "".join(make_file(rng, i, changed // files) for i in range(files))


def naive_render(files: list[FileDiff]) -> str:
    """One pygments.highlight call per line, as a first version would do it."""
    out = []
    formatter = HtmlFormatter(nowrap=True)
    for f in files:
        lexer = get_lexer_by_name(f.language or "text")
        for h in f.hunks:
            for line in h.lines:
                code = highlight(line.text, lexer, formatter) if f.language else escape(line.text)
                out.append(
                    f'<tr class="{line.kind}"><td>{line.old_no}</td><td>{line.new_no}</td>'
                    f"<td>{code}</td></tr>"
                )
    return "".join(out)


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    times = []
    result: object = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"{'changed':>8} {'files':>5} {'parse ms':>9} {'eager ms':>9} {'per file ms':>11} "
        f"{'eager KB':>9} {'first-screen ms':>15} {'first KB':>8} {'naive ms':>9} "
        f"{'naive/eager':>11} {'eager/first':>11}"
    )
    for changed in (200, 2_000, 20_000):
        patch = make_patch(changed)
        runs = args.runs if changed < 20_000 else max(3, args.runs // 2)
        parse_s, files = median_time(lambda p=patch: parse_patch(p), runs)
        assert isinstance(files, list)
        added = sum(f.added for f in files)
        removed = sum(f.removed for f in files)
        eager_s, eager = median_time(
            lambda fs=files: [render_file(f, mode="split") for f in fs], runs
        )
        assert isinstance(eager, list)
        per_file = []
        for f in files[:50]:
            t, _ = median_time(lambda f=f: render_file(f, mode="split"), 3)
            per_file.append(t)
        first_s, first = median_time(lambda fs=files: render_patch(fs, mode="split"), runs)
        assert isinstance(first, str)
        naive_s, _ = median_time(lambda fs=files: naive_render(fs), runs)
        eager_kb = sum(len(h) for h in eager) / 1024
        print(
            f"{added + removed:>8} {len(files):>5} {parse_s * 1e3:>9.1f} {eager_s * 1e3:>9.1f} "
            f"{statistics.median(per_file) * 1e3:>11.2f} {eager_kb:>9.0f} {first_s * 1e3:>15.1f} "
            f"{len(first) / 1024:>8.0f} {naive_s * 1e3:>9.1f} {naive_s / eager_s:>11.2f} "
            f"{(parse_s + eager_s) / (parse_s + first_s):>11.1f}"
        )


if __name__ == "__main__":
    main()
