"""Each task's own agreement, stored on the task so lists, filters and rules read a column.

The one definition is `agreement.task_agreement` (the share of annotator pairs that order a
response pair the same way, pooled over the task's response pairs; ties as in agreement.py). It is recomputed inside the submission's
transaction, after the task's counters were updated (which holds the task row's lock), so
concurrent submissions to one task see each other's rankings in order.
"""
from __future__ import annotations

from annotation.services.agreement import task_agreement
from annotation.sql import ranking as sql


def task_agreement_refresh(*, task_id: int) -> float | None:
    """Recompute and store task `task_id`'s agreement from its rankings; returns it (None below two).

    Two raw statements: this runs in every submission (the ORM's compile cost more than the queries)."""
    return task_agreement_store(task_id=task_id, tiers=sql.task_tiers(task_id=task_id))


def task_agreement_store(*, task_id: int, tiers: list) -> float | None:
    """Store the agreement of `tiers` (every ranking of the task, oldest first, read under the task
    row's lock) as task `task_id`'s; returns it (None below two)."""
    value = task_agreement(tiers)
    sql.set_agreement(task_id=task_id, agreement=value)
    return value
