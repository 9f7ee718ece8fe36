"""The one set of test factories: users, projects, members, prompts, runs, responses, tasks, assignments, rankings.

Users, projects and memberships are made through the real services (`user_create`, `project_create`,
`membership_add`), so a test starts from what the API would have made. Prompts, responses, tasks,
assignments and rankings come two ways:

- through the import service (`add_prompts`, `import_tasks`): the path real data takes;
- as hand-built rows (`make_prompt`, `make_response`, `make_task`, `make_assignment`, `rank`), consistent
  with what the ranking service stores, so a test states exactly who ranked what, when, with which flags.

`make_world` builds the standard cast (owner, engineer, annotator, outsider); tests/conftest.py serves
it as the `world` fixture. The older helper modules (export_factories, ranking_helpers,
generation_helpers, agreement_fixtures) re-export from here under their old names.
"""
from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import (
    Assignment,
    AssignmentStatus,
    GenerationRun,
    Project,
    Prompt,
    Ranking,
    RankingTask,
    Response,
    Role,
)
from annotation.services.importing import prompt_content_hash, prompts_import
from annotation.services.projects import membership_add, project_create, user_create, user_token
from annotation.services.tasks import response_text_hash

# The model name import_tasks gives every response: blinding tests check it never reaches an annotator.
SECRET_MODEL = "secret-model-7b-v3"


# --- users and members -------------------------------------------------------------------------


def make_user(username: str, *, password: str | None = None, **kwargs):
    """A user made by `user_create` (so it has an API token); the password is `{username}-pass-123` unless given."""
    return user_create(username=username, password=password or f"{username}-pass-123", **kwargs).user


@dataclass
class Member:
    """A user with their password and API token, for tests that log in or call the API with a token."""

    user: object
    password: str
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client


def make_member(project: Project | None, username: str, role: str = Role.ANNOTATOR) -> Member:
    """A new user (password `pw-{username}-123`), made a member of `project` with `role` when a project is given."""
    created = user_create(username=username, password=f"pw-{username}-123")
    if project is not None:
        membership_add(project=project, user=created.user, role=role)
    return Member(created.user, created.password, created.token)


def add_members(project: Project, members: dict | None) -> None:
    """Add each {user: role} of `members` to `project` through `membership_add`."""
    for user, role in (members or {}).items():
        membership_add(project=project, user=user, role=role)


def api_client(user=None, *, token: bool = False) -> APIClient:
    """A DRF test client logged in as `user` (session), or sending its API token when token=True."""
    client = APIClient()
    if user is not None:
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Token {user_token(user=user)}")
        else:
            client.force_authenticate(user=user)
    return client


def next_task_retrying_gold_draws(client, project: Project) -> dict:
    """next-task's answer where the only open task may be gold. Gold is drawn at random (gold_rate),
    so a draw that missed it answers 204: ask again (50 misses at 0.99 do not happen)."""
    for _ in range(50):
        response = client.get(f"/api/v1/projects/{project.pk}/next-task")
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 204, response.content
    raise AssertionError("the gold task was never served")


# --- projects ----------------------------------------------------------------------------------


def make_project(name: str = "Project A", *, admin=None, members: dict | None = None, **settings) -> Project:
    """A project made by `project_create` with `admin` as its admin and `members` ({user: role}) added.

    `settings` are project_create's (slug, responses_per_prompt, overlap, allow_ties, ...).
    """
    project = project_create(name=name, created_by=admin, **settings)
    add_members(project, members)
    return project


def make_ranked_project(
    *, name: str = "Rank test", tasks: int = 5, k: int = 3, admin_name: str | None = None, **settings
) -> tuple[Project, Member]:
    """A project with `tasks` imported ranking tasks of `k` responses each, and its admin (a Member)."""
    admin = make_member(None, admin_name or f"admin-{name.lower().replace(' ', '-')}")
    project = make_project(name, admin=admin.user, responses_per_prompt=k, **settings)
    import_tasks(project, tasks, k=k)
    return project, admin


def engineer_project(slug: str = "proj"):
    """(project, engineer, annotator): project `slug` (k=3, overlap 3, ties allowed) with its two members."""
    engineer = make_user(f"{slug}-eng", password=f"pw-{slug}-eng")
    annotator = make_user(f"{slug}-ann", password=f"pw-{slug}-ann")
    project = make_project(slug, slug=slug, responses_per_prompt=3, overlap=3, allow_ties=True,
                           members={engineer: Role.ENGINEER, annotator: Role.ANNOTATOR})
    return project, engineer, annotator


@dataclass
class World:
    """The standard cast: `project` with its owner (admin), an engineer and an annotator; and an outsider,
    no member of `project`, who owns `other` (for the cross-tenant checks: 404, not 403)."""

    project: Project
    owner: object
    engineer: object
    annotator: object
    outsider: object
    other: Project

    def __getitem__(self, name: str):
        return getattr(self, name)

    def client(self, user, *, token: bool = False) -> APIClient:
        return api_client(user, token=token)


def make_world(prefix: str = "", **settings) -> World:
    """A World whose usernames are `{prefix}owner`, `{prefix}engineer`, ... (settings go to project_create)."""
    owner, engineer, annotator, outsider = (make_user(f"{prefix}{n}") for n in ("owner", "engineer", "annotator", "outsider"))
    project = make_project(f"{prefix}Project A", admin=owner, members={engineer: Role.ENGINEER, annotator: Role.ANNOTATOR},
                           **settings)
    other = make_project(f"{prefix}Project B", admin=outsider)
    return World(project=project, owner=owner, engineer=engineer, annotator=annotator, outsider=outsider, other=other)


# --- prompts, runs, responses, tasks, through the import service --------------------------------


def add_prompts(project: Project, texts: list[str]) -> None:
    """Import one prompt per text (no responses) through the real import service."""
    body = "".join(json.dumps({"prompt": text}) + "\n" for text in texts).encode()
    prompts_import(project=project, fileobj=io.BytesIO(body), file_format="jsonl")


def numbered_prompts(count: int, prefix: str = "Tell me about") -> list[str]:
    """`count` distinct prompt texts of varied length."""
    topics = ["tea", "rivers", "trains", "owls", "maps", "bread", "stars", "bees", "clocks", "salt"]
    return [f"{prefix} {topics[i % len(topics)]} number {i}" + " please" * (i % 5) for i in range(count)]


def import_tasks(project: Project, n: int, *, k: int = 3, start: int = 0) -> None:
    """Import `n` prompts with `k` ready-made responses each (model SECRET_MODEL): `n` ranking tasks."""
    lines = []
    for i in range(start, start + n):
        responses = [{"content": f"Answer {j} to question {i}: " + "word " * (j + 1), "model": SECRET_MODEL} for j in range(k)]
        lines.append(json.dumps({"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}], "responses": responses}))
    result = prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    assert not getattr(result, "errors", None), result


# --- hand-built rows ---------------------------------------------------------------------------


def make_run(project: Project, **fields) -> GenerationRun:
    """A finished generation run row (transformers, tiny-llama, seed 42) with `fields` overriding."""
    defaults = {"backend": "transformers", "model_name": "tiny-llama", "temperature": 0.7, "top_p": 0.9, "seed": 42,
                "max_new_tokens": 32, "status": "succeeded"}
    return GenerationRun.objects.create(project=project, **(defaults | fields))


def make_prompt(project: Project, text: str) -> Prompt:
    """A one-user-message prompt row with its content hash."""
    messages = [{"role": "user", "content": text}]
    return Prompt.objects.create(project=project, messages=messages, content_hash=prompt_content_hash(messages))


def make_response(prompt: Prompt, text: str, *, sample_index: int = 0, run: GenerationRun | None = None) -> Response:
    """A response row to `prompt` (from `run` when given)."""
    return Response.objects.create(prompt=prompt, run=run, sample_index=sample_index, text=text, text_hash=response_text_hash(text),
                                   model_name=run.model_name if run else "", finish_reason="stop", token_count=len(text.split()))


def make_task(project: Project, prompt_text: str, texts: Sequence[str], *, run: GenerationRun | None = None,
              is_gold: bool = False, prompt: Prompt | None = None) -> tuple[RankingTask, list[int]]:
    """A prompt (or the given one) with responses `texts` and its task; returns (task, response ids)."""
    if prompt is None:
        prompt = make_prompt(project, prompt_text)
    responses = [make_response(prompt, text, sample_index=i, run=run) for i, text in enumerate(texts)]
    task = RankingTask.objects.create(project=project, prompt=prompt, overlap=project.overlap, is_gold=is_gold)
    task.responses.set(responses)
    return task, [r.id for r in responses]


def make_assignment(task: RankingTask, user, *, status: str = AssignmentStatus.SUBMITTED,
                    display_order: list[int] | None = None, **fields) -> Assignment:
    """An assignment of `task` to `user` (finished now unless leased), shown in `display_order` (the task's responses)."""
    now = timezone.now()
    order = display_order if display_order is not None else list(task.responses.order_by("id").values_list("id", flat=True))
    defaults = {"opaque_ids": {f"r{i}": rid for i, rid in enumerate(order)}, "lease_expires_at": now + dt.timedelta(minutes=15),
                "finished_at": None if status == AssignmentStatus.LEASED else now}
    return Assignment.objects.create(task=task, project=task.project, annotator=user, status=status, display_order=order,
                                     **(defaults | fields))


def rank(task: RankingTask, user, tiers: list[list[int]], *, flags: dict | None = None, rationale: str = "",
         duration: float | None = 12.5, at: dt.datetime | None = None, display_order: list[int] | None = None) -> Ranking:
    """Store `user`'s submitted ranking of `task` (an assignment and its ranking), as the ranking service would."""
    order = display_order or [rid for tier in reversed(tiers) for rid in tier]
    assignment = make_assignment(task, user, display_order=order)
    ranking = Ranking.objects.create(
        assignment=assignment, project=task.project, task=task, annotator=user, tiers=tiers,
        flags={str(k): v for k, v in (flags or {}).items()}, rationale=rationale, duration_seconds=duration,
    )
    if at is not None:
        Ranking.objects.filter(pk=ranking.pk).update(created_at=at)
    RankingTask.objects.filter(pk=task.pk).update(submitted_count=task.rankings.count())
    return ranking


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

