"""Kept for the export tests' imports: the builders now live in tests/factories.py (the one set of factories).

`make_user` and `make_project` keep this module's older signatures (a slug-named project with k responses
per prompt, overlap 3 and ties allowed; a user whose password is `pw-{username}`).
"""
from __future__ import annotations

from annotation.models import Project
from tests import factories
from tests.factories import bulk_tasks, engineer_project, make_run, make_task, many_tasks, rank  # noqa: F401  kept for export tests


def make_user(username: str):
    """Kept for the export tests: tests.factories.make_user with password `pw-{username}`."""
    return factories.make_user(username, password="pw-" + username)


def make_project(slug: str, *, members: dict | None = None, k: int = 3) -> Project:
    """Kept for the export tests: tests.factories.make_project named and slugged `slug`, no admin."""
    return factories.make_project(slug, slug=slug, members=members, responses_per_prompt=k, overlap=3, allow_ties=True)
