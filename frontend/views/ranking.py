"""The annotator's ranking page. The page itself talks to the ranking API (session auth + CSRF)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from annotation.errors import Forbidden, NotFound
from annotation.models import ResponseFlag
from annotation.services.access import project_get_for_user
from annotation.services.rendering import markdown_to_safe_html

SKIP_REASONS = ["Not sure", "Outside my expertise", "Prompt is broken or unclear", "Responses do not load or are empty", "Other"]


@login_required
@ensure_csrf_cookie
def rank_page(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        project = project_get_for_user(user=request.user, project_ref=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    config = {
        "projectId": project.pk,
        "slug": project.slug,
        "allowTies": project.allow_ties,
        "leaseSeconds": project.lease_seconds,
        "flags": [{"code": flag.value, "label": flag.label} for flag in ResponseFlag if flag != ResponseFlag.ALL_BAD],
        "api": "/api/v1",
    }
    context = {
        "project": project,
        "instructions_html": markdown_to_safe_html(project.instructions),
        "config": config,
        "skip_reasons": SKIP_REASONS,
    }
    return render(request, "frontend/rank.html", context)
