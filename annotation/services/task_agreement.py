"""Each task's own agreement, stored on the task so lists, filters and rules read a column.

The one definition is `agreement.task_agreement` (the share of annotator pairs that order a
response pair the same way, pooled over the task's response pairs; ties as in agreement.py). It is recomputed inside the submission's
transaction, after the task's counters were updated (which holds the task row's lock), so
concurrent submissions to one task see each other's rankings in order.
"""
from __future__ import annotations

from annotation.models import Ranking, RankingTask
from annotation.services.agreement import task_agreement


def task_agreement_refresh(*, task_id: int) -> float | None:
    """Recompute and store task `task_id`'s agreement from its rankings; returns it (None below two)."""
    tiers = list(Ranking.objects.filter(task_id=task_id).order_by("id").values_list("tiers", flat=True))
    value = task_agreement(tiers)
    RankingTask.objects.filter(pk=task_id).update(agreement=value)
    return value
