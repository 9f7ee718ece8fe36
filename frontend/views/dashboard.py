"""The admin dashboard (engineers and admins): progress, agreement with its interval, W distribution,
per-annotator reliability and position bias.

Charts are SVG drawn on the server (frontend/charts.py, templates/frontend/charts/): no CDN, no
chart library; static/frontend/charts.js shows a bar's value on hover or focus. The agreement
figures come from the cached report (annotation.services.agreement_cache).
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from annotation.models import Role
from annotation.services.agreement_cache import agreement_report_get
from annotation.services.dashboard import dashboard_overlap, dashboard_progress
from frontend.charts import bar_chart
from frontend.views.pages import project_for_page, render_project_page


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


def w_chart(edges: list[float], counts: list[int]) -> dict[str, Any] | None:
    """Bars of the W distribution over [0, 1]: how many tasks fall in each band."""
    if not counts or not sum(counts):
        return None
    bars = [{"label": f"{edges[i]:.1f}", "value": count, "tip": f"W {edges[i]:.1f}–{edges[i + 1]:.1f}: {count} tasks"}
            for i, count in enumerate(counts)]
    return bar_chart(bars, x_label="Kendall's W of the task (band start)", y_label="tasks",
                     label="Distribution of Kendall's W over tasks", chart_id="w-chart", bar_class="wbar")


def position_chart(bias: dict[str, Any]) -> dict[str, Any] | None:
    """Share ranked first per display position, with the uniform expectation 1/K as a dashed mark."""
    positions = [p for p in bias.get("positions", []) if p["rate"] is not None]
    if not positions:
        return None
    bars = [{"label": str(p["position"]), "value": p["rate"], "ref": p["expected"],
             "tip": f"position {p['position']}: ranked first in {p['rate']:.1%} of {p['shown']} rankings (uniform {p['expected']:.1%})"}
            for p in positions]
    return bar_chart(bars, x_label="display position", y_label="ranked first", percent=True,
                     label="Share ranked first by display position, against the uniform expectation", chart_id="bias-chart",
                     bar_class="pbar")


@login_required
def dashboard_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    report = agreement_report_get(project=project)
    annotators = sorted(report["annotators"], key=lambda a: (not a["flagged"], a["agreement"] if a["agreement"] is not None else 9))
    context = {
        "progress": dashboard_progress(project=project),
        "overlap": dashboard_overlap(project=project),
        "report": report,
        "annotators": annotators,
        "flagged_count": sum(1 for a in annotators if a["flagged"]),
        "alpha_chart": alpha_chart(report["alpha"], report["alpha_ci"]),
        "too_fast": [a for a in annotators if a.get("too_fast")],
        "w_chart": w_chart(report["kendall_w_histogram"]["edges"], report["kendall_w_histogram"]["counts"]),
        "bias_chart": position_chart(report["position_bias"]),
    }
    return render_project_page(request, "frontend/dashboard.html", project=project, role=role, active="dashboard", context=context)
