"""What every project page shares: the access check (the same as the API's) and the navigation bar."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.errors import Forbidden, NotFound
from annotation.models import Project, Role
from annotation.services.access import project_and_role_get_for_user
from frontend.nav import project_nav

T = TypeVar("T")


def checked(call: Callable[..., T], **kwargs: Any) -> T:
    """Call a fetch-with-access-check service; its NotFound becomes 404 and its Forbidden 403, as in the API."""
    try:
        return call(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc


def project_for_page(request: HttpRequest, slug: str, *, min_role: str = Role.ENGINEER) -> tuple[Project, str]:
    """The project and the caller's role: 404 for a project they are not in, 403 below `min_role`."""
    return checked(project_and_role_get_for_user, user=request.user, project_ref=slug, min_role=min_role)


def render_project_page(
    request: HttpRequest, template: str, *, project: Project, role: str, active: str, context: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render a project page with the project's navigation bar (the pages this role may open)."""
    page = {"project": project, "role": role, "project_nav": project_nav(project=project, role=role, active=active)}
    return render(request, template, {**page, **(context or {})}, status=status)
