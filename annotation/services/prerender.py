"""Markdown rendered ahead of time for the next-task path.

Rendering is a large share of what a lease costs with realistic answers (about 2 ms for a
300-word answer with a code block), and the per-process cache (services/rendering.py) misses on
every new task, whose overlap's annotators may each lease it from another process. So when tasks
are created (an import, a generation batch, an evaluation) a worker renders their prompts and
responses once, after the commit, and stores the HTML with the renderer's version (ResponseHtml,
PromptHtml); the claim reads it in its own statement (annotation.sql.assignment).

Whatever has no stored HTML of the current version (a fill not done yet, a lost message, an
upgraded renderer) is rendered in the request as before, and the lease asks for a fill of its
project, at most once per HEAL_EVERY_SECONDS per process: what an annotator sees never depends on
the fill, only what it costs to show.
"""
from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from annotation.dispatch import DispatchError, TaskName, enqueue_after_commit, send_now, tasks_run_in_process
from annotation.models import Prompt, PromptHtml, RankingTask, Response, ResponseHtml
from annotation.services.per_process import AtMostEvery
from annotation.services.rendering import RENDERER_VERSION, markdown_html_many, markdown_render

logger = logging.getLogger(__name__)

FILL_BATCH_TASKS = 500  # tasks per transaction of the fill: about 2,000 texts
HEAL_EVERY_SECONDS = 300.0


def prerender_after_commit(*, project_id: int, first_task_id: int | None) -> None:
    """Once the current transaction commits, have a worker render the project's open tasks from
    `first_task_id` on (the ones just created: ids only grow); None: no task was created. Without a
    broker, nothing: the fill would run in this process, moving the rendering into the import
    rather than off the lease path."""
    if first_task_id is not None and not tasks_run_in_process():
        enqueue_after_commit(TaskName.PRERENDER_FILL, kwargs={"project_id": project_id, "since_task_id": first_task_id - 1})


def prerender_fill(*, project_id: int, since_task_id: int = 0, batch: int = FILL_BATCH_TASKS) -> int:
    """Render and store the HTML of the prompts and responses of the project's open tasks with an id
    above `since_task_id` that have none of the current renderer; returns how many texts it rendered
    (a prompt's messages count one). One transaction per `batch` tasks, so a killed fill loses one
    batch and the next fill takes up the rest.

    Idempotent. Two fills of new tasks may render a text twice (the second write wins, the same
    HTML); a fill of the whole project (since_task_id 0: the lease's heal, which every process may
    ask for at once) runs only where no other fill of it is running, and returns 0 otherwise.
    """
    with _project_fill_lock(project_id, whole=since_task_id <= 0) as may_run:
        if not may_run:
            return 0
        rendered, last = 0, since_task_id
        while True:
            tasks = list(
                RankingTask.objects.filter(project_id=project_id, is_complete=False, id__gt=last)
                .order_by("id").values_list("id", "prompt_id")[:batch]
            )
            if not tasks:
                return rendered
            last = tasks[-1][0]
            rendered += _render_batch(task_ids=[task_id for task_id, _ in tasks], prompt_ids={prompt_id for _, prompt_id in tasks})


@transaction.atomic
def _render_batch(*, task_ids: list[int], prompt_ids: set[int]) -> int:
    responses = list(
        Response.objects.filter(tasks__id__in=task_ids)
        .alias(stored=Exists(ResponseHtml.objects.filter(response_id=OuterRef("pk"), renderer=RENDERER_VERSION)))
        .filter(stored=False).values_list("id", "text").distinct()
    )
    prompts = list(
        Prompt.objects.filter(id__in=prompt_ids)
        .alias(stored=Exists(PromptHtml.objects.filter(prompt_id=OuterRef("pk"), renderer=RENDERER_VERSION)))
        .filter(stored=False).values_list("id", "messages")
    )
    response_rows = [ResponseHtml(response_id=rid, renderer=RENDERER_VERSION, html=html[0])
                     for rid, text in responses if (html := _render_or_skip([text], f"response {rid}")) is not None]
    prompt_rows = [PromptHtml(prompt_id=pid, renderer=RENDERER_VERSION, turns=turns)
                   for pid, messages in prompts
                   if (turns := _render_or_skip([m.get("content", "") for m in messages], f"prompt {pid}")) is not None]
    ResponseHtml.objects.bulk_create(response_rows, update_conflicts=True, unique_fields=["response"], update_fields=["renderer", "html"])
    PromptHtml.objects.bulk_create(prompt_rows, update_conflicts=True, unique_fields=["prompt"], update_fields=["renderer", "turns"])
    return len(response_rows) + len(prompt_rows)


def _render_or_skip(texts: list[str], what: str) -> list[str] | None:
    """The texts rendered (markdown_render, not the request path's cache: each is rendered once
    here), or None when the renderer fails on one: that text stays unstored, so the lease renders it
    as it always did, and one bad text does not stop the fill of every task after it."""
    try:
        return [markdown_render(text) for text in texts]
    except Exception:  # noqa: BLE001 - any renderer failure: log it and leave that text to the lease
        logger.exception("prerender: could not render %s", what)
        return None


@contextmanager
def _project_fill_lock(project_id: int, *, whole: bool):
    """Yields whether this fill may run. A fill of new tasks always runs, holding the project's
    advisory lock shared where it can; a whole-project fill runs only where it gets that lock
    exclusively, so it never starts while another fill of the project is running (a heal asked for
    during a large import's fill would render the same texts again). PostgreSQL; elsewhere, always."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = zlib.crc32(f"prerender-project:{project_id}".encode())
    kind = "" if whole else "_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock{kind}(%s)", [key])
        got = cursor.fetchone()[0]
    try:
        yield got or not whole
    finally:
        if got:  # a session lock: released here, or with the session if the worker dies
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock{kind}(%s)", [key])


def shown_html(*, project_id: int, rows: Sequence[Any], messages: list[dict[str, str]]) -> tuple[list[str], dict[int, str]]:
    """The HTML of a task's prompt messages and of its responses (by id): stored where the rows
    (annotation.sql.assignment.ShownRow) carry it, rendered here where they do not. A lease that had
    to render asks for a fill of its project (prerender_heal_soon)."""
    stored_turns = rows[0].turns_html if rows else None
    turns_stored = isinstance(stored_turns, list) and len(stored_turns) == len(messages)
    missing = [row.text for row in rows if row.html is None]
    live = markdown_html_many(([] if turns_stored else [m["content"] for m in messages]) + missing)
    turns = list(stored_turns) if turns_stored else live[: len(messages)]
    fresh = iter(live[0 if turns_stored else len(messages):])
    by_id = {row.response_id: row.html if row.html is not None else next(fresh) for row in rows}
    if (missing or not turns_stored) and settings.PRERENDERED_HTML:
        prerender_heal_soon(project_id)
    return turns, by_id


_heal_due = AtMostEvery(HEAL_EVERY_SECONDS)


def prerender_heal_soon(project_id: int) -> None:
    """Ask a worker to fill the whole project, at most every HEAL_EVERY_SECONDS per process; never
    without a broker (the fill would run inside the request)."""
    if tasks_run_in_process() or not _heal_due.due(project_id):
        return
    try:
        send_now(TaskName.PRERENDER_FILL, kwargs={"project_id": project_id, "since_task_id": 0})
    except DispatchError as exc:  # the page is shown all the same, rendered here
        logger.warning("%s", exc)
