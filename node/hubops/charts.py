"""Sparklines as server-rendered inline SVG: no script, no style attribute (the pages'
CSP forbids inline styles; SVG presentation attributes and classes from the style sheet
are fine). A bucket with no run is a gap in the line, not a zero.

The SVG is built here from numbers only and returned as ``markupsafe.Markup``; the text
in it (the accessible name) is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 240
HEIGHT = 48
PAD = 3


def _segments(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Runs of consecutive known values, with their indexes."""
    out: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if current:
                out.append(current)
            current = []
        else:
            current.append((i, v))
    if current:
        out.append(current)
    return out


def sparkline(values: Sequence[float | None], *, label: str, kind: str) -> Markup:
    """An SVG line of ``values`` (one per bucket, None for no data) named ``label``;
    ``kind`` picks its class (``spark-lag``, ``spark-rate``) in hubops.css."""
    n = len(values)
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    top = top if top > 0 else 1.0
    step = (WIDTH - 2 * PAD) / max(n - 1, 1)

    def point(i: int, v: float) -> tuple[float, float]:
        return PAD + i * step, HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD)

    parts: list[str] = [
        f'<svg class="spark spark-{escape(kind)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(label)}" '
        f'focusable="false"><title>{escape(label)}</title>',
        f'<line class="spark-base" x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" '
        f'y2="{HEIGHT - PAD}" stroke="currentColor" stroke-width="0.5"/>',
    ]
    for segment in _segments(values):
        coords = [point(i, v) for i, v in segment]
        if len(coords) == 1:
            x, y = coords[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="currentColor"/>')
        else:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="currentColor" '
                f'stroke-width="1.5" stroke-linejoin="round"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
