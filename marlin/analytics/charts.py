"""Server-side SVG charts: pure functions from results to SVG text, every label escaped.

Agent names and titles come from users and imports, so they are untrusted: each one goes through
html.escape before it reaches the markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import numpy as np

from marlin.analytics.bt import Ranking

_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def ci_chart(ranking: Ranking, *, width: int = 720, title: str = "Leaderboard") -> str:
    """Points with interval whiskers, one row per agent (best first); open ends drawn as arrows."""
    rows = ranking.agents
    label_w, row_h, top, bottom, right = 200, 24, 40, 36, 24
    height = top + bottom + row_h * max(len(rows), 1)
    finite = [v for a in rows for v in (a.lower, a.score, a.upper) if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    ticks = _nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    plot_w = width - label_w - right

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return label_w + (v - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{label_w}" y="20" font-weight="bold">{escape(title)}</text>',
    ]
    axis_y = top + row_h * len(rows)
    for t in ticks:
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{axis_y}" stroke="#ddd"/>'
            f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{_fmt(t)}</text>'
        )
    for i, a in enumerate(rows):
        y = top + row_h * i + row_h / 2
        tip = (
            f"{a.agent}: score {a.score:.0f}, 95% interval {a.lower:.0f} to {a.upper:.0f}, "
            f"rank {a.rank} ({a.rank_lower}-{a.rank_upper})"
        )
        parts.append(
            f"<g><title>{escape(tip)}</title>"
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"{a.rank}. {escape(a.agent)}</text>"
            f'<line x1="{x(a.lower):.1f}" y1="{y:.1f}" x2="{x(a.upper):.1f}" y2="{y:.1f}" '
            f'stroke="#4a6fa5" stroke-width="2"/>'
        )
        if not math.isfinite(a.upper):
            parts.append(_arrow(x(hi), y, +1))
        if not math.isfinite(a.lower):
            parts.append(_arrow(x(lo), y, -1))
        parts.append(f'<circle cx="{x(a.score):.1f}" cy="{y:.1f}" r="4" fill="#1f3b63"/></g>')
    parts.append("</svg>")
    return "".join(parts)


def _arrow(x: float, y: float, direction: int) -> str:
    """A head at the plot edge meaning "the interval continues without bound"."""
    tip = x + 6 * direction
    return (
        f'<polygon points="{tip:.1f},{y:.1f} {x:.1f},{y - 4:.1f} {x:.1f},{y + 4:.1f}" '
        f'fill="#4a6fa5"/>'
    )


def _cell_colour(value: float) -> str:
    """Diverging blue (row wins) / red (row loses) around 0.5; grey for no data."""
    if not math.isfinite(value):
        return "#eeeeee"
    t = min(max(value, 0.0), 1.0) * 2 - 1
    strength = int(round(255 - abs(t) * 150))
    return f"rgb({strength},{strength},255)" if t >= 0 else f"rgb(255,{strength},{strength})"


def heatmap(labels: Sequence[str], matrix: np.ndarray, *, title: str = "Win rate") -> str:
    """Square heat map of matrix[row, col] (e.g. share of row's wins over col) with values."""
    matrix = np.asarray(matrix, dtype=float)
    k = len(labels)
    if matrix.shape != (k, k):
        raise ValueError(f"matrix must be {k} x {k} to match the labels; got {matrix.shape}")
    cell, label_w, top = 40, 180, 150
    width, height = label_w + cell * k + 10, top + cell * k + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {_FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="4" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    for j, label in enumerate(labels):
        cx = label_w + cell * j + cell / 2
        parts.append(
            f'<text transform="translate({cx:.1f},{top - 6}) rotate(-45)">{escape(label)}</text>'
        )
    for i, row_label in enumerate(labels):
        y = top + cell * i
        parts.append(
            f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(row_label)}</text>"
        )
        for j in range(k):
            v = matrix[i, j]
            text = f"{v:.2f}" if math.isfinite(v) else ""
            tip = f"{row_label} vs {labels[j]}: {text or 'no comparisons'}"
            parts.append(
                f"<g><title>{escape(tip)}</title>"
                f'<rect x="{label_w + cell * j}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{_cell_colour(v)}" stroke="#fff"/>'
                f'<text x="{label_w + cell * j + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                f'text-anchor="middle" font-size="10">{text}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)
