"""Charts drawn on the server as SVG geometry for the templates (frontend/templates/frontend/charts/).

Hand-written rather than a chart library: the pages need two shapes (lines over steps, bars over
categories), and server-side SVG needs no script to draw, runs under the Content-Security-Policy,
and is testable here. Axes are real: "nice" ticks (1, 2, 5 x 10^k) with gridlines and titles.
One point is drawn as a dot in the middle of a domain widened around it, never on an invented
axis; many points become a line without dots. Every point and bar carries its value for hovering
(an SVG <title>, and `data-tip` for static/frontend/charts.js, which shows it on hover and focus).
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"]
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 14, 42
DOTS_UP_TO = 60  # more points than this: the dots are invisible until hovered (the line alone shows)


def nice_step(span: float, count: int = 5) -> float:
    """A round step (1, 2 or 5 x 10^k) giving about `count` intervals over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi] (the first at or below lo, the last at or above hi);
    `integer`: whole steps only (counts of tasks are never 0.5)."""
    if hi < lo:
        lo, hi = hi, lo
    step = nice_step(hi - lo, count)
    if integer:
        step = max(1.0, round(step))
    start = math.floor(lo / step + 1e-9) * step
    ticks = []
    value = start
    while value < hi + step * 0.999 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if len(ticks) < 2:
        ticks.append(round(start + step, 12))
    return ticks


def fmt(value: float, *, percent: bool = False) -> str:
    if percent:
        return f"{value:.0%}" if abs(value * 100 - round(value * 100)) < 1e-9 else f"{value:.1%}"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _domain(values: Sequence[float], fixed_lo: float | None, fixed_hi: float | None, *, integer: bool) -> tuple[float, float]:
    lo = min(values) if fixed_lo is None else fixed_lo
    hi = max(values) if fixed_hi is None else fixed_hi
    if hi == lo:  # one value: widen around it so it sits in the middle of a real axis
        pad = 1.0 if integer or lo == 0 else abs(lo) * 0.1
        lo, hi = (lo - pad if fixed_lo is None else lo), (hi + pad if fixed_hi is None else hi)
        if hi == lo:
            hi = lo + 1
    return lo, hi


def line_chart(
    series: dict[str, Sequence[tuple[float, float]]], *, x_label: str, y_label: str, y_min: float | None = None,
    y_max: float | None = None, percent: bool = False, label: str = "",
) -> dict[str, Any] | None:
    """Lines (one per non-empty series) over a shared x axis; None when there is no point at all."""
    drawn = {name: list(points) for name, points in series.items() if points}
    if not drawn:
        return None
    xs = [float(x) for points in drawn.values() for x, _ in points]
    ys = [float(y) for points in drawn.values() for _, y in points]
    x0, x1 = _domain(xs, None, None, integer=all(x == int(x) for x in xs))
    y_ticks = nice_ticks(*_domain(ys, y_min, y_max, integer=False))
    if y_min is not None:
        y_ticks = [t for t in y_ticks if t >= y_min] or [y_min]
    if y_max is not None:
        y_ticks = [t for t in y_ticks if t <= y_max] or [y_max]
    lo, hi = min(y_ticks[0], min(ys)), max(y_ticks[-1], max(ys))
    if hi == lo:
        hi = lo + 1
    x_ticks = [t for t in nice_ticks(x0, x1) if x0 <= t <= x1] or [x0]
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM

    def sx(x: float) -> float:
        return round(LEFT + (x - x0) / (x1 - x0) * (right - LEFT), 1)

    def sy(y: float) -> float:
        return round(bottom - (y - lo) / (hi - lo) * (bottom - TOP), 1)

    lines, hover = [], []
    for index, (name, points) in enumerate(drawn.items()):
        colour = COLOURS[index % len(COLOURS)]
        dots = [{"x": sx(x), "y": sy(y), "tip": f"{name} at {x_label} {fmt(x)}: {fmt(y, percent=percent)}"} for x, y in points]
        lines.append({
            "name": name, "colour": colour, "class": f"series-{index % len(COLOURS)}",
            "points": " ".join(f"{d['x']},{d['y']}" for d in dots) if len(points) > 1 else "",
            "dots": dots, "many": len(points) > DOTS_UP_TO,  # many: dots drawn invisible, shown on hover (CSS)
            "last": fmt(points[-1][1], percent=percent), "count": len(points),
        })
        hover.append({"name": name, "points": [[d["x"], d["y"], d["tip"]] for d in dots]})
    return {
        "width": WIDTH, "height": HEIGHT, "left": LEFT, "right": right, "top": TOP, "bottom": bottom,
        "x_ticks": [{"x": sx(t), "label": fmt(t)} for t in x_ticks],
        "y_ticks": [{"y": sy(t), "label": fmt(t, percent=percent)} for t in y_ticks],
        "x_label": x_label, "y_label": y_label, "x_label_x": round((LEFT + right) / 2, 1), "x_label_y": HEIGHT - 6,
        "y_label_y": round((TOP + bottom) / 2, 1), "lines": lines, "hover": json.dumps(hover), "label": label or y_label,
        "points": sum(line["count"] for line in lines),
    }


def bar_chart(
    bars: Sequence[dict[str, Any]], *, x_label: str, y_label: str, y_max: float | None = None, percent: bool = False,
    label: str = "", width: int = 420, height: int = 210, chart_id: str = "", bar_class: str = "",
) -> dict[str, Any] | None:
    """Bars over categories. Each bar: {"label", "value", "tip"} and optionally "ref" (a dashed reference mark)."""
    if not bars:
        return None
    values = [float(b["value"]) for b in bars] + [float(b["ref"]) for b in bars if b.get("ref") is not None]
    top_value = max(values) if y_max is None else y_max
    counts = not percent and all(float(b["value"]) == int(b["value"]) for b in bars)
    ticks = nice_ticks(0.0, top_value or 1.0, 4, integer=counts)
    hi = ticks[-1]
    right, bottom = width - RIGHT, height - BOTTOM
    slot = (right - LEFT) / len(bars)

    def sy(y: float) -> float:
        return round(bottom - y / hi * (bottom - TOP), 1)

    drawn = []
    for i, bar in enumerate(bars):
        x = round(LEFT + i * slot + slot * 0.15, 1)
        w = round(slot * 0.7, 1)
        y = sy(float(bar["value"]))
        drawn.append({
            "x": x, "y": y, "width": w, "height": round(bottom - y, 1), "label": bar["label"], "label_x": round(x + w / 2, 1),
            "tip": bar["tip"], "ref_y": sy(float(bar["ref"])) if bar.get("ref") is not None else None, "ref_x2": round(x + w, 1),
            "show_label": len(bars) <= 12 or i % max(1, len(bars) // 10) == 0,
        })
    return {
        "width": width, "height": height, "left": LEFT, "right": right, "top": TOP, "bottom": bottom, "bars": drawn,
        "y_ticks": [{"y": sy(t), "label": fmt(t, percent=percent)} for t in ticks],
        "x_label": x_label, "y_label": y_label, "x_label_x": round((LEFT + right) / 2, 1), "x_label_y": height - 6,
        "y_label_y": round((TOP + bottom) / 2, 1), "label": label or y_label, "id": chart_id, "bar_class": bar_class,
    }
