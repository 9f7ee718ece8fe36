"""The task browser for engineers and admins: the project's tasks filtered, searched and ordered as
the API's list (annotation/services/task_browse.py), one page per task with everything said about
it, and the admins' curation: gold (the annotators' ranking widget, through the gold API),
priority, more rankings, exclusion from exports, one task or a filtered selection at a time."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from annotation.errors import ApplicationError
from annotation.models import RankingTask, Role
from annotation.services.generation import generation_run_get
from annotation.services.rendering import markdown_html_many
from annotation.services.task_browse import (
    BULK_ACTIONS,
    ORDERINGS,
    STATUS_Q,
    STATUSES,
    TaskFilters,
    task_detail,
    task_filters_parse,
    task_get_for_user,
    task_list_item,
    task_request_more_rankings,
    task_set_excluded,
    task_set_priority,
    tasks_browse,
    tasks_bulk_apply,
    tasks_filtered,
)
from frontend.views.pages import checked, project_for_page, render_project_page

PAGE = 50
LETTERS = "ABCDEFGHIJKLMNOP"


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isascii() and value.isdigit() and len(value) < 18 else None


def _form_int(value: str | None) -> Any:
    """A form's integer as an int; anything else as given, for the service to name."""
    text = (value or "").strip()
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isascii() and digits.isdigit() and len(digits) < 19 else text


def _status_counts(tasks) -> dict[str, int]:
    counts = tasks.aggregate(total=Count("id"), **{name: Count("id", filter=q) for name, q in STATUS_Q.items()})
    return {name: counts[name] or 0 for name in ("total", *STATUSES)}


@login_required
def tasks_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, role = project_for_page(request, slug, min_role=Role.ENGINEER)
    run_id = _int(request.GET.get("run"))
    run = checked(generation_run_get, project=project, run_id=run_id) if run_id is not None else None
    offset = _int(request.GET.get("offset")) or 0
    errors: dict[str, list[str]] = {}
    try:
        filters = task_filters_parse(params=request.GET, project=project)
    except ApplicationError as exc:
        errors, filters = exc.fields, TaskFilters()
    rows, matching = [], 0
    if not errors:
        rows = [task_list_item(task) for task in tasks_browse(project=project, filters=filters)[offset : offset + PAGE]]
        matching = tasks_filtered(project=project, filters=filters).count()
    scope = tasks_filtered(project=project, filters=TaskFilters(run=run.pk)) if run else RankingTask.objects.filter(project=project)
    params = filters.as_params()
    base = urlencode(params)
    counts = _status_counts(scope)
    context = {
        "rows": rows, "matching": matching, "counts": counts, "run": run, "filters": filters, "params": params,
        "errors": errors, "statuses": STATUSES, "orderings": list(ORDERINGS), "bulk_actions": BULK_ACTIONS,
        "status_links": [
            (name, name.replace("_", " ") if name else "All", counts[name or "total"],
             urlencode({k: v for k, v in params.items() if k != "status"} | ({"status": name} if name else {})))
            for name in ("", *STATUSES)
        ],
        "previous": f"?{base}&offset={max(0, offset - PAGE)}" if offset else None,
        "next": f"?{base}&offset={offset + PAGE}" if offset + PAGE < matching else None,
        "first": offset + 1 if rows else 0, "last": offset + len(rows), "is_admin": role == Role.ADMIN,
    }
    return render_project_page(request, "frontend/tasks/list.html", project=project, role=role, active="tasks", context=context,
                               status=400 if errors else 200)


def _task_for_page(request: HttpRequest, slug: str, task_id: int, *, min_role: str):
    task, role = checked(task_get_for_user, user=request.user, task_id=task_id, min_role=min_role)
    if task.project.slug != slug:  # a task of another project under this one's address
        raise Http404("Task not found.")
    return task, role


def _letters(tiers: list[list[int]] | None, label: dict[int, str]) -> str:
    return " > ".join(" = ".join(label.get(int(i), str(i)) for i in tier) for tier in tiers or [])


@login_required
@ensure_csrf_cookie
def task_page(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    task, role = _task_for_page(request, slug, task_id, min_role=Role.ENGINEER)
    detail = task_detail(task=task, role=role)
    label = {r["id"]: LETTERS[i] if i < len(LETTERS) else str(r["id"]) for i, r in enumerate(detail["responses"])}
    messages_html = markdown_html_many([str(m.get("content", "")) for m in detail["prompt"]["messages"]])
    responses_html = markdown_html_many([r["text"] for r in detail["responses"]])
    consensus = detail["consensus"]
    place = {int(i): n + 1 for n, tier in enumerate(consensus["tiers"]) for i in tier}
    responses = [
        r | {"label": label[r["id"]], "html": html, "borda": consensus["borda"].get(str(r["id"])),
             "bt": consensus["bradley_terry"].get(str(r["id"])), "place": place.get(r["id"]),
             "flags": sorted({f for k in detail["rankings"] for f in k["flags"].get(str(r["id"]), [])})}
        for r, html in zip(detail["responses"], responses_html, strict=True)
    ]
    rankings = [
        k | {"order": _letters(k["tiers"], label),
             "flag_text": "; ".join(f"{label.get(int(rid), rid)}: {', '.join(fl)}" for rid, fl in k["flags"].items())}
        for k in detail["rankings"]
    ]
    gold_config = {
        "taskId": task.pk, "api": "/api/v1",
        "responses": [{"id": str(r["id"]), "label": r["label"]} for r in responses],
        "gold": [[str(i) for i in tier] for tier in (detail["gold_ranking"] or [])],
    }
    judge = [
        j | {"order": _letters(j["tiers"], label),
             "rows": [c | {"a": label.get(c["response_a"], str(c["response_a"])), "b": label.get(c["response_b"], str(c["response_b"]))}
                      for c in j["comparisons"]]}
        for j in detail["judge"]
    ]
    context = {
        "task": detail, "judge": judge,
        "messages_html": list(zip(detail["prompt"]["messages"], messages_html, strict=True)), "responses": responses,
        "rankings": rankings, "consensus_order": _letters(consensus["tiers"], label), "gold_order": _letters(detail["gold_ranking"], label),
        "is_admin": role == Role.ADMIN, "gold_config": gold_config,
    }
    return render_project_page(request, "frontend/tasks/detail.html", project=task.project, role=role, active="tasks", context=context)


@login_required
@require_POST
def task_action(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    task, _ = _task_for_page(request, slug, task_id, min_role=Role.ADMIN)
    action = request.POST.get("action")
    try:
        if action == "priority":
            task_set_priority(task=task, priority=_form_int(request.POST.get("priority")))
            messages.success(request, f"Priority set to {task.priority}.")
        elif action == "more_rankings":
            task = task_request_more_rankings(task=task)
            messages.success(request, f"Sent back for one more ranking: overlap {task.overlap}.")
        elif action in ("exclude", "include"):
            task_set_excluded(task=task, excluded=action == "exclude")
            messages.success(request, "Excluded from exports." if task.excluded else "Included in exports again.")
        else:
            messages.error(request, "Unknown action.")
    except ApplicationError as exc:
        messages.error(request, f"{exc.message} " + " ".join(f"{k}: {'; '.join(v)}" for k, v in exc.fields.items()))
    return HttpResponseRedirect(reverse("frontend:task", args=[slug, task.pk]))


@login_required
@require_POST
def tasks_bulk(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = project_for_page(request, slug, min_role=Role.ADMIN)
    back = reverse("frontend:tasks", args=[slug])
    try:
        filters = task_filters_parse(params=request.POST, project=project)
        back += "?" + urlencode(filters.as_params())
        action = request.POST.get("action")
        changed = tasks_bulk_apply(project=project, filters=filters, action=action, priority=_form_int(request.POST.get("priority")))
        messages.success(request, f"{action.replace('_', ' ')}: {changed} task{'s' if changed != 1 else ''} changed.")
    except ApplicationError as exc:
        messages.error(request, f"{exc.message} " + " ".join(f"{k}: {'; '.join(v)}" for k, v in exc.fields.items()))
    return HttpResponseRedirect(back)

