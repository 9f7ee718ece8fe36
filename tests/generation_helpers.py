"""Set-up helpers for the generation tests: prompts imported through the real import service."""
from __future__ import annotations

import io
import json
from collections import Counter

from annotation.models import Project, RankingTask, Response
from annotation.services.importing import prompts_import


def add_prompts(project: Project, texts: list[str]) -> None:
    body = "".join(json.dumps({"prompt": text}) + "\n" for text in texts).encode()
    prompts_import(project=project, fileobj=io.BytesIO(body), file_format="jsonl")


def numbered_prompts(count: int, prefix: str = "Tell me about") -> list[str]:
    topics = ["tea", "rivers", "trains", "owls", "maps", "bread", "stars", "bees", "clocks", "salt"]
    return [f"{prefix} {topics[i % len(topics)]} number {i}" + " please" * (i % 5) for i in range(count)]


def responses_per_prompt(run) -> Counter:
    return Counter(Response.objects.filter(run=run).values_list("prompt_id", flat=True))


def tasks_per_prompt(project: Project) -> Counter:
    return Counter(RankingTask.objects.filter(project=project).values_list("prompt_id", flat=True))
