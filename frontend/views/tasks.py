"""The project's tasks for engineers and admins: state, rankings so far, the prompt's start; filtered by
generation run (the run page links here) and by state."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from annotation.models import Role
from annotation.services.dashboard import TASK_STATES, dashboard_tasks
from annotation.services.generation import generation_run_get
from frontend.views.pages import checked, project_for_page, render_project_page

PAGE = 100


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 18 else None


@login_required
def tasks_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    run_id = _int(request.GET.get("run"))
    run = checked(generation_run_get, project=project, run_id=run_id) if run_id is not None else None
    state = request.GET.get("state") if request.GET.get("state") in TASK_STATES else None
    offset = _int(request.GET.get("offset")) or 0
    page = dashboard_tasks(project=project, run=run, state=state, offset=offset, limit=PAGE)
    query = {"run": run.pk if run else None, "state": state}
    base = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
    context = {
        "page": page, "run": run, "state": state, "states": TASK_STATES, "offset": offset,
        "previous": f"?{base}&offset={max(0, offset - PAGE)}" if offset else None,
        "next": f"?{base}&offset={offset + PAGE}" if offset + PAGE < page["matching"] else None,
        "run_query": f"run={run.pk}&" if run else "",
        "first": offset + 1 if page["rows"] else 0, "last": offset + len(page["rows"]),
    }
    return render_project_page(request, "frontend/tasks/list.html", project=project, role=role, active="tasks", context=context)
