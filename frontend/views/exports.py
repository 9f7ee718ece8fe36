"""Export pages (engineers and admins, as in the API): the project's exports with a form to start one,
and one export with its progress, options, files (download links) and manifest."""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from annotation.errors import ApplicationError
from annotation.models import JobStatus, Role
from annotation.services.export import export_snapshot_create, export_snapshot_get_for_user, export_snapshots_of_project
from frontend.forms import ExportForm
from frontend.views.pages import checked, project_for_page, render_project_page


def _percent(done: int, total: int) -> int:
    return round(100 * done / total) if total else (100 if done else 0)


@login_required
def exports_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    form = ExportForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                snapshot = export_snapshot_create(project=project, created_by=request.user, options=form.options())
            except ApplicationError as exc:
                form.add_service_errors(exc.fields, exc.message)
            else:
                return redirect(reverse("frontend:export", args=[project.slug, snapshot.pk]))
        status = 400
    exports = [
        {"row": e, "percent": _percent(e.rows_done, e.rows_total), "files": len(e.files or {}),
         "rows": sum(int(f.get("rows", 0)) for f in (e.files or {}).values())}
        for e in export_snapshots_of_project(project=project)[:100]
    ]
    return render_project_page(request, "frontend/exports/list.html", project=project, role=role, active="exports",
                               context={"exports": exports, "form": form}, status=status)


@login_required
def export_page(request: HttpRequest, slug: str, export_id: int) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    snapshot = checked(export_snapshot_get_for_user, user=request.user, snapshot_id=export_id)
    if snapshot.project_id != project.pk:
        raise Http404("Export not found.")
    download = reverse("api:export-download", args=[snapshot.pk])
    files = [
        {"name": name, "rows": info.get("rows"), "bytes": info.get("bytes"), "sha256": info.get("sha256"), "url": f"{download}?file={name}"}
        for name, info in (snapshot.files or {}).items()
    ]
    context = {
        "export": snapshot,
        "percent": _percent(snapshot.rows_done, snapshot.rows_total),
        "running": snapshot.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "succeeded": snapshot.status == JobStatus.SUCCEEDED,
        "files": files,
        "zip_url": download,
        "manifest_url": f"{download}?file=manifest.json",
        "manifest_json": json.dumps(snapshot.manifest, indent=2, sort_keys=True) if snapshot.manifest else "",
        "options": sorted((snapshot.options or {}).items()),
        "training_jobs": list(snapshot.training_jobs.order_by("-id")[:20]),
    }
    return render_project_page(request, "frontend/exports/detail.html", project=project, role=role, active="exports", context=context)
