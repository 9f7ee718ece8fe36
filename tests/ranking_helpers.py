"""Kept for the ranking tests' imports: the builders now live in tests/factories.py (the one set of factories)."""
from __future__ import annotations

from tests.factories import SECRET_MODEL, Member, import_tasks, make_member  # noqa: F401  kept for ranking tests
from tests.factories import make_ranked_project as make_project  # noqa: F401  kept for ranking tests (returns (project, admin))
