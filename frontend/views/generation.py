"""Generation run pages (engineers and admins, as in the API; annotators never see model names):
the project's runs, and one run with its parameters, progress, a cancel button and a link to its tasks."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.errors import ApplicationError
from annotation.models import GenerationRun, Role, RunStatus
from annotation.services.generation import generation_run_cancel, generation_run_get, generation_run_progress, generation_run_summary
from frontend.views.pages import checked, project_for_page, render_project_page

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


@login_required
def runs_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    runs = [{"row": run, "progress": generation_run_progress(run=run)}
            for run in GenerationRun.objects.filter(project=project).select_related("created_by").order_by("-id")[:100]]
    return render_project_page(request, "frontend/generation/list.html", project=project, role=role, active="generation-runs",
                               context={"runs": runs})


@login_required
def run_page(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    run = checked(generation_run_get, project=project, run_id=run_id)
    progress = generation_run_progress(run=run)
    parameters = [
        ("Backend", run.get_backend_display()), ("Model", run.model_name or "default model"), ("Revision", run.model_revision or "–"),
        ("Samples per prompt (n)", run.n), ("Temperature", run.temperature), ("top_p", run.top_p),
        ("Max new tokens", run.max_new_tokens), ("Seed", run.seed), ("Batch size", run.batch_size),
        ("System prompt", run.system_prompt or "–"),
    ] + [(f"params.{key}", value) for key, value in sorted((run.params or {}).items())]
    context = {
        "run": run,
        "progress": progress,
        "summary": generation_run_summary(run=run),
        "parameters": parameters,
        "active": run.status in ACTIVE,
        "failed_percent": round(100 * run.prompts_failed / run.prompts_total) if run.prompts_total else 0,
        "tasks_url": f"{reverse('frontend:tasks', args=[project.slug])}?run={run.pk}",
    }
    return render_project_page(request, "frontend/generation/detail.html", project=project, role=role, active="generation-runs",
                               context=context)


@login_required
@require_POST
def run_cancel(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    project, _ = project_for_page(request, slug, min_role=Role.ENGINEER)
    run = checked(generation_run_get, project=project, run_id=run_id)
    try:
        generation_run_cancel(run=run)
    except ApplicationError as exc:  # already finished: say so on the page
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Run {run.pk} cancelled: batches not yet started will do nothing.")
    return redirect(reverse("frontend:generation-run", args=[project.slug, run.pk]))
