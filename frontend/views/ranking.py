"""The annotator's ranking page. The page itself talks to the ranking API (session auth + CSRF)."""
from __future__ import annotations

import hashlib

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.models import ResponseFlag, Role, TaskType
from annotation.services.rendering import markdown_to_safe_html
from frontend.views.pages import project_for_page, render_project_page

SKIP_REASONS = ["Not sure", "Outside my expertise", "Prompt is broken or unclear", "Responses do not load or are empty", "Other"]
SKIP_UNDO_SECONDS = 6


@login_required
@ensure_csrf_cookie
def rank_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ANNOTATOR)
    # A demonstration project's evaluation tasks (head to head) are ranked: ?view=rank opens them here.
    if project.task_type == TaskType.DEMONSTRATION and request.GET.get("view") != "rank":
        return _write_page(request, project=project, role=role)
    config = {
        "projectId": project.pk,
        "slug": project.slug,
        "allowTies": project.allow_ties,
        "leaseSeconds": project.lease_seconds,
        "flags": [{"code": flag.value, "label": flag.label} for flag in ResponseFlag if flag != ResponseFlag.ALL_BAD],
        "api": "/api/v1",
        "skipUndoSeconds": SKIP_UNDO_SECONDS,
    }
    context = {
        "instructions_html": markdown_to_safe_html(project.instructions),
        # The page opens the instructions until the annotator has seen this version of them once.
        "instructions_version": hashlib.sha256((project.instructions or "").encode()).hexdigest()[:16],
        "config": config,
        "skip_reasons": SKIP_REASONS,
    }
    return render_project_page(request, "frontend/rank.html", project=project, role=role, active="rank", context=context)


def _write_page(request: HttpRequest, *, project, role: str) -> HttpResponse:
    """A demonstration project's page: write the ideal response (text area, server-rendered preview)."""
    config = {
        "projectId": project.pk,
        "api": "/api/v1",
        "maxChars": project.max_demonstration_chars,
        "leaseSeconds": project.lease_seconds,
    }
    context = {"instructions_html": markdown_to_safe_html(project.instructions), "config": config}
    return render_project_page(request, "frontend/write.html", project=project, role=role, active="rank", context=context)


@login_required
@ensure_csrf_cookie
def review_page(request: HttpRequest, slug: str) -> HttpResponse:
    """Review demonstrations written by others: accept or reject each (projects created with review)."""
    project, role = project_for_page(request, slug, min_role=Role.ANNOTATOR)
    if not project.review:
        from django.http import Http404

        raise Http404("This project does not review demonstrations.")
    config = {"projectId": project.pk, "api": "/api/v1"}
    return render_project_page(request, "frontend/review.html", project=project, role=role, active="review",
                               context={"config": config})
