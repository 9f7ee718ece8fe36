"""Counting helpers for the generation tests; the prompt builders are kept here for imports (tests/factories.py)."""
from __future__ import annotations

from collections import Counter

from annotation.models import Project, RankingTask, Response
from tests.factories import add_prompts, numbered_prompts  # noqa: F401  kept for generation tests


def responses_per_prompt(run) -> Counter:
    return Counter(Response.objects.filter(run=run).values_list("prompt_id", flat=True))


def tasks_per_prompt(project: Project) -> Counter:
    return Counter(RankingTask.objects.filter(project=project).values_list("prompt_id", flat=True))
