"""Hand-built projects with rankings for the export tests: consistent ORM rows, every field known.

Rows are made directly (not through the ranking service) so each test states exactly which
annotator ranked what, when, and with which flags; test_export.py also runs one export over data
made through the real import/lease/submit services.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentStatus,
    GenerationRun,
    Membership,
    Project,
    Prompt,
    Ranking,
    RankingTask,
    Response,
    Role,
)
from annotation.services.importing import prompt_content_hash
from annotation.services.tasks import response_text_hash


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password="pw-" + username)


def make_project(slug: str, *, members: dict | None = None, k: int = 3) -> Project:
    project = Project.objects.create(name=slug, slug=slug, responses_per_prompt=k, overlap=3, allow_ties=True)
    for user, role in (members or {}).items():
        Membership.objects.create(user=user, project=project, role=role)
    return project


def make_run(project: Project, **fields) -> GenerationRun:
    defaults = {"backend": "transformers", "model_name": "tiny-llama", "temperature": 0.7, "top_p": 0.9, "seed": 42,
                "max_new_tokens": 32, "status": "succeeded"}
    return GenerationRun.objects.create(project=project, **(defaults | fields))


def make_task(project: Project, prompt_text: str, texts: Sequence[str], *, run: GenerationRun | None = None,
              is_gold: bool = False, prompt: Prompt | None = None) -> tuple[RankingTask, list[int]]:
    """A prompt (or the given one) with responses `texts` and its task; returns (task, response ids)."""
    if prompt is None:
        messages = [{"role": "user", "content": prompt_text}]
        prompt = Prompt.objects.create(project=project, messages=messages, content_hash=prompt_content_hash(messages))
    responses = [
        Response.objects.create(prompt=prompt, run=run, sample_index=i, text=text, text_hash=response_text_hash(text),
                                model_name=run.model_name if run else "", finish_reason="stop", token_count=len(text.split()))
        for i, text in enumerate(texts)
    ]
    task = RankingTask.objects.create(project=project, prompt=prompt, overlap=project.overlap, is_gold=is_gold)
    task.responses.set(responses)
    return task, [r.id for r in responses]


def rank(task: RankingTask, user, tiers: list[list[int]], *, flags: dict | None = None, rationale: str = "",
         duration: float | None = 12.5, at: dt.datetime | None = None, display_order: list[int] | None = None) -> Ranking:
    """Store `user`'s submitted ranking of `task` (an assignment and its ranking)."""
    now = timezone.now()
    order = display_order or [rid for tier in reversed(tiers) for rid in tier]
    assignment = Assignment.objects.create(
        task=task, project=task.project, annotator=user, status=AssignmentStatus.SUBMITTED, display_order=order,
        opaque_ids={f"r{i}": rid for i, rid in enumerate(order)}, lease_expires_at=now + dt.timedelta(minutes=15),
        finished_at=now,
    )
    ranking = Ranking.objects.create(
        assignment=assignment, project=task.project, task=task, annotator=user, tiers=tiers,
        flags={str(k): v for k, v in (flags or {}).items()}, rationale=rationale, duration_seconds=duration,
    )
    if at is not None:
        Ranking.objects.filter(pk=ranking.pk).update(created_at=at)
    RankingTask.objects.filter(pk=task.pk).update(submitted_count=task.rankings.count())
    return ranking


def engineer_project(slug: str = "proj"):
    """(project, engineer, annotator) with the engineer and annotator as members."""
    engineer = make_user(f"{slug}-eng")
    annotator = make_user(f"{slug}-ann")
    project = make_project(slug, members={engineer: Role.ENGINEER, annotator: Role.ANNOTATOR})
    return project, engineer, annotator


def many_tasks(project: Project, annotators: Sequence, n: int, *, run: GenerationRun | None = None) -> None:
    """`n` tasks of three responses, each ranked by every annotator with a little disagreement."""
    for i in range(n):
        task, (a, b, c) = make_task(
            project, f"Question number {i}: what is {i} plus {i}?",
            [f"It is {2 * i}.", f"Maybe {2 * i + 1}, not sure.", f"I do not know what {i} means."], run=run,
        )
        for j, user in enumerate(annotators):
            rank(task, user, [[a], [b], [c]] if (i + j) % 4 else [[b], [a], [c]])


def bulk_tasks(project: Project, annotators: Sequence, n: int) -> None:
    """`n` tasks of three responses, each ranked by every annotator: bulk inserts, for the bigger tests."""
    now = timezone.now()
    prompts = Prompt.objects.bulk_create(
        [Prompt(project=project, messages=[{"role": "user", "content": f"Bulk question {i}?"}], content_hash=f"bulk-{project.id}-{i}")
         for i in range(n)]
    )
    responses = Response.objects.bulk_create(
        [Response(prompt=p, sample_index=s, text=f"Answer {s} to {p.id}.", text_hash=f"{p.id}-{s}") for p in prompts for s in range(3)]
    )
    tasks = RankingTask.objects.bulk_create([RankingTask(project=project, prompt=p, overlap=len(annotators)) for p in prompts])
    through = RankingTask.responses.through
    through.objects.bulk_create(
        [through(rankingtask_id=t.id, response_id=r.id) for i, t in enumerate(tasks) for r in responses[3 * i : 3 * i + 3]]
    )
    assignments, tiers = [], []
    for i, task in enumerate(tasks):
        ids = [r.id for r in responses[3 * i : 3 * i + 3]]
        for j, user in enumerate(annotators):
            order = ids if (i + j) % 3 else [ids[1], ids[0], ids[2]]
            assignments.append(Assignment(task=task, project=project, annotator=user, status=AssignmentStatus.SUBMITTED,
                                          display_order=ids, lease_expires_at=now, finished_at=now))
            tiers.append((task, user, [[x] for x in order]))
    assignments = Assignment.objects.bulk_create(assignments)
    Ranking.objects.bulk_create(
        [Ranking(assignment=a, project=project, task=task, annotator=user, tiers=t)
         for a, (task, user, t) in zip(assignments, tiers, strict=True)]
    )
