"""Users, projects and API clients made through the real services (no raw ORM set-up)."""
from __future__ import annotations

from rest_framework.test import APIClient

from annotation.models import Project
from annotation.services.projects import membership_add, project_create, user_create


def make_user(username: str, **kwargs):
    return user_create(username=username, password=f"{username}-pass-123", **kwargs).user


def make_project(name: str = "Project A", *, admin=None, members: dict | None = None, **settings) -> Project:
    """A project with `admin` as its admin and `members` ({user: role}) added."""
    project = project_create(name=name, created_by=admin, **settings)
    for user, role in (members or {}).items():
        membership_add(project=project, user=user, role=role)
    return project


def api_client(user=None, *, token: bool = False) -> APIClient:
    """A DRF test client logged in as `user` (session), or sending its API token when token=True."""
    client = APIClient()
    if user is not None:
        if token:
            from annotation.services.projects import user_token

            client.credentials(HTTP_AUTHORIZATION=f"Token {user_token(user=user)}")
        else:
            client.force_authenticate(user=user)
    return client
