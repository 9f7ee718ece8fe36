"""Training job pages (engineers and admins): the project's jobs, and one job with progress and curves.

Curves are SVG drawn on the server (frontend/charts.py): no script, no CDN; hovering a point shows
its value (its SVG title). A running job's page refreshes itself.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from annotation.models import JobStatus, Role
from annotation.services.training import (
    POLICY_KINDS,
    training_job_curves,
    training_job_get_for_user,
    training_job_progress,
    training_job_report_lines,
    training_jobs_of_project,
)
from frontend.charts import line_chart
from frontend.views.pages import checked, project_for_page, render_project_page


@login_required
def training_job_page(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    job = checked(training_job_get_for_user, user=request.user, job_id=job_id)
    if job.project_id != project.pk:
        raise Http404("Training job not found.")
    curves = training_job_curves(job=job)
    context = {
        "job": job,
        "progress": training_job_progress(job=job),
        "running": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "loss_chart": line_chart({"train loss": curves["train loss"], "test loss": curves["test loss"]}, x_label="step",
                                 y_label="loss", label="Loss by step"),
        "accuracy_chart": line_chart({"test accuracy": curves["test accuracy"]}, x_label="step", y_label="accuracy",
                                     y_min=0.0, y_max=1.0, percent=True, label="Test accuracy by step"),
        "generation_runs": list(job.generation_runs.order_by("-id")[:20]),
        "test": (job.report or {}).get("test") or {},
        "train": (job.report or {}).get("train") or {},
    }
    context["report_lines"] = training_job_report_lines(job=job)
    context["is_policy"] = job.kind in POLICY_KINDS
    return render_project_page(request, "frontend/training/job.html", project=project, role=role, active="training-jobs",
                               context=context)


@login_required
def training_jobs_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    jobs = list(training_jobs_of_project(project=project)[:100])
    return render_project_page(request, "frontend/training/list.html", project=project, role=role, active="training-jobs",
                               context={"jobs": jobs})
