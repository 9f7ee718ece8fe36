"""Each task's own agreement, stored on the task so lists, filters and rules read a column, and the
adaptive-overlap decision that reads it.

The one definition is `consensus.task_agreement` (the share of annotator pairs that order a
response pair the same way, pooled over the task's response pairs; ties as in agreement.py). It is recomputed inside the submission's
transaction, after the task's counters were updated (which holds the task row's lock), so
concurrent submissions to one task see each other's rankings in order.
"""
from __future__ import annotations

from collections.abc import Sequence

from annotation.services.consensus import Tiers, task_agreement, task_consensus
from annotation.sql import ranking as sql

# Adaptive overlap's rules (Project.adaptive_rule; docs/ranking.md "Adaptive overlap"):
# - "agreement": the rankings agree when their pairwise agreement reaches the project's target.
#   Pooled agreement measures how alike annotators are, not whether the consensus is settled: on a
#   contested task it tends to the same value however many annotators are added, so such a task runs
#   to the overlap.
# - "consensus": the rankings agree when their consensus (consensus.task_consensus, the one the
#   exports and the benchmark read) orders every response strictly: no pair of it is left a tie.
#   Two rankings that differ only where the other pairs outweigh it stop; a 1-1 split that leaves a
#   tie takes a third annotator, who settles it. The target is not used.
ADAPTIVE_RULES = ("agreement", "consensus")


def task_rankings(*, task_id: int) -> list[Tiers]:
    """The tiers of every ranking of the task, oldest first (one raw statement: this runs in submissions)."""
    return sql.task_tiers(task_id=task_id)


def task_agreement_refresh(*, task_id: int) -> float | None:
    """Recompute and store task `task_id`'s agreement from its rankings; returns it (None below two)."""
    return task_agreement_store(task_id=task_id, tiers=task_rankings(task_id=task_id))


def task_agreement_store(*, task_id: int, tiers: Sequence[Tiers]) -> float | None:
    """Store the agreement of `tiers` (every ranking of the task, oldest first, read under the task
    row's lock) as task `task_id`'s; returns it (None below two)."""
    value = task_agreement(tiers)
    sql.set_agreement(task_id=task_id, agreement=value)
    return value


def adaptive_decided(*, rule: str, target: float, rankings: Sequence[Tiers], agreement: float | None) -> bool:
    """Whether a task's rankings agree enough, by the project's adaptive rule, to complete it once it has
    the rankings it may take now (the caller checks the count); `agreement` is task_agreement(rankings)."""
    if len(rankings) < 2:  # one ranking cannot show that people agree
        return False
    if rule == "consensus":
        return all(len(tier) == 1 for tier in task_consensus(rankings).tiers)
    return agreement is not None and agreement >= target
