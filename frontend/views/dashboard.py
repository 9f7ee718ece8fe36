"""The admin dashboard (engineers and admins): progress, agreement with its interval, W distribution,
per-annotator reliability and position bias.

Charts are inline SVG whose geometry is computed here and drawn by the template: no CDN, no chart
library. The agreement figures come from the cached report (annotation.services.agreement_cache).
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.errors import Forbidden, NotFound
from annotation.models import Role
from annotation.services.access import project_get_for_user
from annotation.services.agreement_cache import agreement_report_get
from annotation.services.dashboard import dashboard_progress


def alpha_chart(alpha: float | None, ci: list[float | None] | None, *, width: int = 360, height: int = 54) -> dict[str, Any] | None:
    """A -1..1 axis with alpha as a dot and its 95% interval as a band."""
    if alpha is None:
        return None
    pad = 14

    def x(value: float) -> float:
        return round(pad + (max(-1.0, min(1.0, value)) + 1) / 2 * (width - 2 * pad), 1)

    ticks = [{"x": x(v), "label": f"{v:g}"} for v in (-1, -0.5, 0, 0.5, 1)]
    band = None
    if ci and ci[0] is not None and ci[1] is not None:
        band = {"x": x(ci[0]), "width": max(1.0, round(x(ci[1]) - x(ci[0]), 1))}
    return {
        "width": width, "height": height, "axis_y": 24, "left": pad, "right": width - pad, "dot": x(alpha), "band": band, "ticks": ticks,
    }


def histogram_chart(edges: list[float], counts: list[int], *, width: int = 400, height: int = 170) -> dict[str, Any] | None:
    """Bars of the W distribution over [0, 1]."""
    if not counts or not sum(counts):
        return None
    left, bottom, top = 34, height - 24, 10
    bar_w = (width - left - 8) / len(counts)
    peak = max(counts)
    bars = []
    for i, count in enumerate(counts):
        h = round((bottom - top) * count / peak, 1)
        bars.append({
            "x": round(left + i * bar_w + 1, 1), "y": round(bottom - h, 1), "width": round(bar_w - 2, 1), "height": h,
            "label": f"W {edges[i]:.1f}–{edges[i + 1]:.1f}: {count} tasks",
        })
    ticks = [{"x": round(left + i * bar_w, 1), "label": f"{edges[i]:.1f}"} for i in range(0, len(edges), 5)]
    return {"width": width, "height": height, "left": left, "bottom": bottom, "top": top, "right": width - 8,
            "bars": bars, "ticks": ticks, "peak": peak}


def position_chart(bias: dict[str, Any], *, width: int = 400, height: int = 170) -> dict[str, Any] | None:
    """Rate of being ranked first per display position, with the uniform expectation as a dashed mark."""
    positions = [p for p in bias.get("positions", []) if p["rate"] is not None]
    if not positions:
        return None
    left, bottom, top = 34, height - 24, 10
    scale = max(max(p["rate"] for p in positions), max(p["expected"] for p in positions)) * 1.15 or 1.0
    slot = (width - left - 8) / len(positions)

    def y(value: float) -> float:
        return round(bottom - (bottom - top) * value / scale, 1)

    bars = []
    for i, p in enumerate(positions):
        x = round(left + i * slot + slot * 0.2, 1)
        bars.append({
            "x": x, "y": y(p["rate"]), "width": round(slot * 0.6, 1), "height": round(bottom - y(p["rate"]), 1),
            "expected_y": y(p["expected"]), "expected_x2": round(x + slot * 0.6, 1), "label_x": round(x + slot * 0.3, 1),
            "position": p["position"], "title": f"position {p['position']}: ranked first {p['rate']:.1%} "
            f"(uniform {p['expected']:.1%}, shown {p['shown']})",
        })
    return {"width": width, "height": height, "left": left, "bottom": bottom, "top": top, "right": width - 8,
            "bars": bars, "max_label": f"{scale:.0%}", "max_y": top}


@login_required
def dashboard_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = project_get_for_user(user=request.user, project_ref=slug, min_role=Role.ENGINEER)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    report = agreement_report_get(project=project)
    annotators = sorted(report["annotators"], key=lambda a: (not a["flagged"], a["agreement"] if a["agreement"] is not None else 9))
    context = {
        "project": project,
        "progress": dashboard_progress(project=project),
        "report": report,
        "annotators": annotators,
        "flagged_count": sum(1 for a in annotators if a["flagged"]),
        "alpha_chart": alpha_chart(report["alpha"], report["alpha_ci"]),
        "w_chart": histogram_chart(report["kendall_w_histogram"]["edges"], report["kendall_w_histogram"]["counts"]),
        "bias_chart": position_chart(report["position_bias"]),
    }
    return render(request, "frontend/dashboard.html", context)
