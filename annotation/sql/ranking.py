"""The submission's statements (annotation.services.ranking): store a ranking and count it.

On PostgreSQL the ranking row, the assignment's new status and the task's counters are one
statement (the assignment row is already locked by the caller, so it takes only the task row
lock); elsewhere the service does it in three (the ORM's save and update, then count_submission).
"""
from __future__ import annotations

import json
from datetime import datetime

from django.db import connection

from annotation.models import Assignment, Ranking, RankingTask
from annotation.sql.names import Names, Sql, column_list, named_placeholders, per_vendor, render

INSERT_COLUMNS = column_list(
    "ranking insert (annotation.sql.ranking.store)",
    Ranking,
    ("assignment", "project", "task", "annotator", "tiers", "flags", "rating", "rationale", "duration_seconds",
     "idempotency_key", "created_at", "rank_vector", "display_vector"),
    pk=False,
)

# The task's counters after one more submission: complete once the overlap (the most it may get) is
# reached (gold tasks never are). Adaptive overlap may complete it earlier: decide_adaptive.
_COUNT = (
    "{task.submitted_count} = {task.submitted_count} + 1, "
    "{task.is_complete} = (NOT {task.is_gold} AND {task.submitted_count} + 1 >= {task.overlap})"
)


def _count(task: Names) -> Sql:
    return Sql(render(_COUNT, task=task))


@per_vendor
def _store_sql() -> str:
    task = Names(RankingTask)
    return render(
        """
WITH stored AS (
    INSERT INTO {ranking} ({columns}) VALUES ({values})
    RETURNING {ranking.id}
), finished AS (
    UPDATE {assignment} SET {assignment.status} = %(submitted)s, {assignment.finished_at} = %(now)s
    WHERE {assignment.id} = %(assignment)s
), counted AS (
    UPDATE {task} SET {count} WHERE {task.id} = %(task)s
    RETURNING {task.is_complete}
)
SELECT stored.{ranking.id}, counted.{task.is_complete} FROM stored, counted
""",
        ranking=Names(Ranking), columns=INSERT_COLUMNS.sql(), values=named_placeholders(INSERT_COLUMNS.fields),
        assignment=Names(Assignment), task=task, count=_count(task),
    )


def store(*, ranking: Ranking, submitted: str, now: datetime) -> bool:
    """PostgreSQL: INSERT the ranking, mark its assignment `submitted` and count it, in one statement;
    sets the ranking's pk. True when the count left the task complete."""
    params = {
        "assignment": ranking.assignment_id,
        "project": ranking.project_id,
        "task": ranking.task_id,
        "annotator": ranking.annotator_id,
        "tiers": json.dumps(ranking.tiers),
        "flags": json.dumps(ranking.flags),
        "rating": ranking.rating,
        "rationale": ranking.rationale,
        "duration_seconds": ranking.duration_seconds,
        "idempotency_key": ranking.idempotency_key,
        "created_at": ranking.created_at,
        "rank_vector": ranking.rank_vector,
        "display_vector": ranking.display_vector,
        "now": now,
        "submitted": submitted,
    }
    with connection.cursor() as cursor:
        cursor.execute(_store_sql(), params)
        ranking.pk, complete = cursor.fetchone()
    ranking._state.adding, ranking._state.db = False, connection.alias
    return bool(complete)


@per_vendor
def _count_sql() -> str:
    task = Names(RankingTask)
    return render("UPDATE {task} SET {count} WHERE {task.id} = %s RETURNING {task.is_complete}", task=task, count=_count(task))


def count_submission(*, task_id: int) -> bool:
    """One more submission on the task (the portable twin's third statement); True when that left it complete."""
    with connection.cursor() as cursor:
        cursor.execute(_count_sql(), [task_id])
        return bool(cursor.fetchone()[0])


# Adaptive overlap, after the counters and the task's agreement were stored in this transaction (which
# holds the task row's lock): with all the rankings it may get now (target_overlap, NULL: overlap),
# the task completes if they agree (`decided`, the project's rule: task_agreement.adaptive_decided on
# the rankings read under that lock), else it may get one more, up to overlap. Both right-hand sides
# read the row as it was before this statement.
_DECIDE = """
UPDATE {task} SET
    {task.is_complete} = {task.is_complete} OR (
        NOT {task.is_gold} AND {task.submitted_count} >= coalesce({task.target_overlap}, {task.overlap}) AND %s),
    {task.target_overlap} = CASE
        WHEN NOT {task.is_gold} AND NOT {task.is_complete}
             AND {task.submitted_count} >= coalesce({task.target_overlap}, {task.overlap})
             AND {task.submitted_count} < {task.overlap} AND NOT %s
        THEN {task.submitted_count} + 1 ELSE {task.target_overlap} END
WHERE {task.id} = %s
RETURNING {task.is_complete}
"""


@per_vendor
def _decide_sql() -> str:
    return render(_DECIDE, task=Names(RankingTask))


def decide_adaptive(*, task_id: int, decided: bool) -> bool:
    """Complete the task or open one more slot (adaptive overlap); True when it is complete."""
    with connection.cursor() as cursor:
        cursor.execute(_decide_sql(), [bool(decided), bool(decided), task_id])
        return bool(cursor.fetchone()[0])
