"""Set-up helpers for the ranking tests: projects, members and tasks made through the real services."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass

from rest_framework.test import APIClient

from annotation.models import Project, Role
from annotation.services.importing import prompts_import
from annotation.services.projects import membership_add, project_create, user_create

SECRET_MODEL = "secret-model-7b-v3"


@dataclass
class Member:
    user: object
    password: str
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {self.token}")
        return client


def make_member(project: Project | None, username: str, role: str = Role.ANNOTATOR) -> Member:
    created = user_create(username=username, password=f"pw-{username}-123")
    if project is not None:
        membership_add(project=project, user=created.user, role=role)
    return Member(created.user, created.password, created.token)


def make_project(
    *, name: str = "Rank test", tasks: int = 5, k: int = 3, admin_name: str | None = None, **settings
) -> tuple[Project, Member]:
    """A project with `tasks` ranking tasks of `k` imported responses each, and its admin."""
    admin = make_member(None, admin_name or f"admin-{name.lower().replace(' ', '-')}")
    project = project_create(name=name, created_by=admin.user, responses_per_prompt=k, **settings)
    import_tasks(project, tasks, k=k)
    return project, admin


def import_tasks(project: Project, n: int, *, k: int = 3, start: int = 0) -> None:
    lines = []
    for i in range(start, start + n):
        responses = [{"content": f"Answer {j} to question {i}: " + "word " * (j + 1), "model": SECRET_MODEL} for j in range(k)]
        lines.append(json.dumps({"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}], "responses": responses}))
    result = prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    assert not getattr(result, "errors", None), result
