"""Reading a project's tasks for an export: chunks of TaskData, read a chunk or two ahead in a thread.

Tasks are read in prompt order with a server-side cursor; each chunk's rankings, responses and
prompts come from annotation.services.export.sql (three queries). On PostgreSQL the reading runs
in its own thread and connection, so the database works on the next chunk while rows are built.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from django.conf import settings

from annotation.models import GenerationRun, Project, RankingTask
from annotation.services.export.options import ExportOptions
from annotation.services.export.sql import fetch_chunk
from annotation.services.ranking_filter import RankingFilter
from annotation.services.read_ahead import read_ahead


@dataclass
class TaskData:
    task_id: int
    prompt_id: int
    is_gold: bool
    prompt: list[dict[str, str]]
    responses: dict[int, tuple]  # id -> (text, run id[, sample index, finish reason, token count, model]): see sql.py
    rankings: list[tuple]  # see sql.py for the row contract


def _eligible(project: Project, opts: ExportOptions):
    tasks = RankingTask.objects.filter(project=project)
    if opts.exclude_gold:
        tasks = tasks.filter(is_gold=False)
    return tasks


def task_queryset(project: Project, opts: ExportOptions):
    """The tasks an export reads: curators' exclusions (RankingTask.excluded) never are."""
    return _eligible(project, opts).filter(excluded=False)


def excluded_task_count(project: Project, opts: ExportOptions) -> int:
    """Tasks the export would have read but a curator excluded (the manifest records it)."""
    return _eligible(project, opts).filter(excluded=True).count()


def _chunks(iterator: Iterator, size: int) -> Iterator[list]:
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _message_list(messages: Any) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in messages or []]


def task_data_iter(project: Project, opts: ExportOptions, ranking_filter: RankingFilter,
                   runs: dict[int, dict[str, Any]], *, annotators: bool = False) -> Iterator[list[TaskData]]:
    """The project's tasks in chunks of TaskData (`ranking_filter` resolved for the project).

    `runs` (run id -> provenance) is filled as runs are met; the row builders read it. `annotators`:
    every format's rankings name who ranked (the rankings format always does).
    """
    size = settings.EXPORT_CHUNK_TASKS
    # By prompt, so a prompt's tasks (one per generation run) are adjacent: rows of a prompt stay
    # together and prompts can be counted without remembering them.
    task_rows = task_queryset(project, opts).order_by("prompt_id", "id").values_list("id", "prompt_id", "is_gold")
    # .iterator() uses a server-side cursor on PostgreSQL: the task list is never held in memory.
    for chunk in _chunks(task_rows.iterator(chunk_size=size), size):
        task_ids = [row[0] for row in chunk]
        prompt_ids = sorted({row[1] for row in chunk})
        by_task, responses, prompts = fetch_chunk(opts, ranking_filter, task_ids, prompt_ids, annotators=annotators)
        missing_runs = {r[1] for task in responses.values() for r in task.values() if r[1] is not None} - runs.keys()
        if missing_runs:
            runs.update(runs_provenance(missing_runs))

        batch = []
        for task_id, prompt_id, is_gold in chunk:
            task_responses = responses.get(task_id, {})
            messages = _message_list(prompts.get(prompt_id))
            run_ids = {r[1] for r in task_responses.values() if r[1] is not None}
            # The model saw the run's system prompt: put it in the exported prompt too.
            if len(run_ids) == 1 and not (messages and messages[0]["role"] == "system"):
                system = runs[next(iter(run_ids))]["system_prompt"]
                if system:
                    messages = [{"role": "system", "content": system}, *messages]
            batch.append(TaskData(task_id, prompt_id, is_gold, messages, task_responses, by_task.get(task_id, [])))
        yield batch


def in_background(make_iterator: Callable[[], Iterator[Any]], *, depth: int = 2) -> Iterator[Any]:
    """Run the reading in a thread with its own database connection, `depth` chunks ahead.

    PostgreSQL then works on the next chunk's queries while this thread builds and writes rows
    (psycopg releases the GIL while it waits), which takes about a third off the wall time on a
    two-core machine. Inside a transaction (a test's, or a caller's) another connection would
    not see the same rows, so there the reading stays in this thread.
    """
    from django.db import connection, connections

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield from make_iterator()
        return
    yield from read_ahead(make_iterator, depth=depth, name="export-reader", on_thread_exit=connections.close_all)


def runs_provenance(run_ids: set[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for run in GenerationRun.objects.filter(id__in=run_ids):
        out[run.id] = {
            "run_id": run.id, "backend": run.backend, "model": run.model_name, "model_revision": run.model_revision,
            "temperature": run.temperature, "top_p": run.top_p, "max_new_tokens": run.max_new_tokens, "seed": run.seed,
            "system_prompt": run.system_prompt,
        }
    return out
