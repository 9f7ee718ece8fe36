"""Turning a prompt's responses into its RankingTask.

Shared by prompt import (ready-made responses) and generation runs. Identical responses (same
text after trimming whitespace) are merged into one; a prompt with fewer than two distinct
responses gets no task, since there is nothing to rank.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from annotation.models import GenerationRun, Project, Prompt, RankingTask, Response, TaskType
from annotation.services.prerender import prerender_after_commit
from annotation.services.priority_schedule import priority_score_new_tasks

CHUNK = 1000


def response_text_hash(text: str) -> str:
    """The identity used to merge identical responses: sha256 of the trimmed text."""
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def distinct_responses(responses: Iterable[tuple[int, str, str]]) -> tuple[list[int], int]:
    """The ids a prompt's task ranks, from (response id, text hash or "", text) in sample order:
    the first of each identical (trimmed) text. Also how many were merged. Fewer than two: no task."""
    seen: set[str] = set()
    kept: list[int] = []
    merged = 0
    for response_id, text_hash, text in responses:
        key = text_hash or response_text_hash(text)
        if key in seen:
            merged += 1
            continue
        seen.add(key)
        kept.append(response_id)
    return kept, merged


@dataclass
class TaskCreationResult:
    created: int = 0
    already_existed: int = 0
    without_task: int = 0  # prompts with fewer than two distinct responses
    duplicates_merged: int = 0  # responses dropped because an identical one was kept
    first_created_id: int | None = None  # the smallest id among the tasks created (ids only grow)

    def add(self, other: TaskCreationResult) -> None:
        self.created += other.created
        self.already_existed += other.already_existed
        self.without_task += other.without_task
        self.duplicates_merged += other.duplicates_merged
        firsts = [i for i in (self.first_created_id, other.first_created_id) if i is not None]
        self.first_created_id = min(firsts, default=None)


def tasks_create_for_prompts(
    *, project: Project, prompt_ids: Iterable[int], run: GenerationRun | None = None
) -> TaskCreationResult:
    """Create the missing RankingTask of each prompt from its responses of `run` (None: imported ones).

    Idempotent: a prompt that already has a task over responses of this run is left alone, so a
    redelivered batch or a repeated import adds nothing. Prompts are locked while their task is
    created, so two workers finishing the same prompt cannot both create one.
    """
    result = TaskCreationResult()
    ids = sorted(set(prompt_ids))
    create = _create_demonstration_chunk if project.task_type == TaskType.DEMONSTRATION else _create_chunk
    for start in range(0, len(ids), CHUNK):
        result.add(create(project=project, prompt_ids=ids[start : start + CHUNK], run=run))
    if result.created:
        priority_score_new_tasks(project_id=project.pk)  # uncertainty priority: score the new tasks
        if project.task_type == TaskType.RANKING:
            prerender_after_commit(project_id=project.pk, first_task_id=result.first_created_id)
    return result


@transaction.atomic
def _create_demonstration_chunk(*, project: Project, prompt_ids: list[int], run: GenerationRun | None) -> TaskCreationResult:
    """One demonstration task per prompt, whatever run comes later: its draft is the first response
    there is when the task is made (of `run`, or imported), or none (write from scratch); a task
    without a draft that nobody has opened yet takes the first one a later run generates."""
    result = TaskCreationResult()
    list(Prompt.objects.select_for_update().filter(project=project, id__in=prompt_ids).order_by("id").values_list("id"))
    has_task = set(
        RankingTask.objects.filter(prompt_id__in=prompt_ids, task_type=TaskType.DEMONSTRATION).values_list("prompt_id", flat=True)
    )
    response_filter = {"run": run} if run is not None else {"run__isnull": True}
    draft: dict[int, int] = {}
    rows = Response.objects.filter(prompt_id__in=prompt_ids, **response_filter).order_by("prompt_id", "sample_index", "id")
    for response_id, prompt_id in rows.values_list("id", "prompt_id"):
        draft.setdefault(prompt_id, response_id)
    todo = [prompt_id for prompt_id in prompt_ids if prompt_id not in has_task]
    result.already_existed = len(prompt_ids) - len(todo)
    # A task made at import without a draft takes the first generated one, while nobody has opened it
    # (an assignment already shows the prompt alone: changing it under an annotator would mislead).
    waiting = (RankingTask.objects.filter(prompt_id__in=[p for p in has_task if p in draft], task_type=TaskType.DEMONSTRATION,
                                          responses__isnull=True, assignments__isnull=True)
               .values_list("id", "prompt_id"))
    through = RankingTask.responses.through
    through.objects.bulk_create([through(rankingtask_id=task_id, response_id=draft[prompt_id]) for task_id, prompt_id in waiting])
    created = RankingTask.objects.bulk_create(
        [RankingTask(project=project, prompt_id=prompt_id, overlap=project.overlap, task_type=TaskType.DEMONSTRATION) for prompt_id in todo]
    )
    through.objects.bulk_create(
        [through(rankingtask_id=task.id, response_id=draft[task.prompt_id]) for task in created if task.prompt_id in draft]
    )
    result.created = len(created)
    return result


@transaction.atomic
def _create_chunk(*, project: Project, prompt_ids: list[int], run: GenerationRun | None) -> TaskCreationResult:
    result = TaskCreationResult()
    list(Prompt.objects.select_for_update().filter(project=project, id__in=prompt_ids).order_by("id").values_list("id"))

    run_filter = {"responses__run": run} if run is not None else {"responses__run__isnull": True}
    has_task = set(
        RankingTask.objects.filter(prompt_id__in=prompt_ids, **run_filter).values_list("prompt_id", flat=True).distinct()
    )
    response_filter = {"run": run} if run is not None else {"run__isnull": True}
    by_prompt: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    rows = Response.objects.filter(prompt_id__in=prompt_ids, **response_filter).order_by("prompt_id", "sample_index", "id")
    for response_id, prompt_id, text_hash, text in rows.values_list("id", "prompt_id", "text_hash", "text"):
        by_prompt[prompt_id].append((response_id, text_hash, text))

    new_tasks: list[RankingTask] = []
    task_responses: list[list[int]] = []
    for prompt_id in prompt_ids:
        if prompt_id in has_task:
            result.already_existed += 1
            continue
        distinct, merged = distinct_responses(by_prompt.get(prompt_id, []))
        result.duplicates_merged += merged
        if len(distinct) < 2:
            result.without_task += 1
            continue
        new_tasks.append(RankingTask(project=project, prompt_id=prompt_id, overlap=project.overlap,
                                     target_overlap=project.min_overlap))
        task_responses.append(distinct)

    created = RankingTask.objects.bulk_create(new_tasks)
    through = RankingTask.responses.through
    through.objects.bulk_create(
        [
            through(rankingtask_id=task.id, response_id=response_id)
            for task, response_ids in zip(created, task_responses, strict=True)
            for response_id in response_ids
        ]
    )
    result.created = len(created)
    result.first_created_id = min((task.id for task in created if task.id is not None), default=None)
    return result
