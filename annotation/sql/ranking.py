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
from annotation.sql import cursor as hot_cursor
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
    -- Below two rankings a task has no agreement (task_agreement_refresh would store NULL): set here,
    -- so the first ranking of a task costs no refresh.
    UPDATE {task} SET {count},
        {task.agreement} = CASE WHEN {task.submitted_count} + 1 < 2 THEN NULL ELSE {task.agreement} END
    WHERE {task.id} = %(task)s
    RETURNING {task.is_complete}, {task.submitted_count}
)
SELECT stored.{ranking.id}, counted.{task.is_complete}, counted.{task.submitted_count},
       -- The task's earlier rankings (this statement does not see its own insert), oldest first: the
       -- caller locked the task row before this statement began, so none is missing (store's docstring).
       (SELECT json_agg({r.tiers} ORDER BY {r.id}) FROM {ranking} r WHERE {r.task} = %(task)s)
FROM stored, counted
""",
        ranking=Names(Ranking), columns=INSERT_COLUMNS.sql(), values=named_placeholders(INSERT_COLUMNS.fields),
        assignment=Names(Assignment), task=task, count=_count(task), r=Names(Ranking, "r"),
    )


def store(*, ranking: Ranking, submitted: str, now: datetime) -> tuple[bool, int, list]:
    """PostgreSQL: INSERT the ranking, mark its assignment `submitted` and count it, in one statement;
    sets the ranking's pk. Returns (whether the count left the task complete, the task's submitted_count
    after it (below 2 the statement already stored the task's NULL agreement), the tiers of every
    ranking of the task, this one last).

    Call holding the task row's lock from an earlier statement of the transaction (held, lock_task):
    the statement's snapshot then has every earlier ranking of the task, since a concurrent submission
    commits before that lock is granted and a later one cannot insert before this commits."""
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
    with hot_cursor() as cursor:
        cursor.execute(_store_sql(), params)
        ranking.pk, complete, submitted_count, earlier = cursor.fetchone()
    ranking._state.adding, ranking._state.db = False, connection.alias
    earlier = (json.loads(earlier) if isinstance(earlier, str) else earlier) or []
    return bool(complete), int(submitted_count), [*earlier, ranking.tiers]


@per_vendor
def _count_sql() -> str:
    task = Names(RankingTask)
    return render("UPDATE {task} SET {count} WHERE {task.id} = %s RETURNING {task.is_complete}", task=task, count=_count(task))


def count_submission(*, task_id: int) -> bool:
    """One more submission on the task (the portable twin's third statement); True when that left it complete."""
    with hot_cursor() as cursor:
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
    with hot_cursor() as cursor:
        cursor.execute(_decide_sql(), [bool(decided), bool(decided), task_id])
        return bool(cursor.fetchone()[0])


@per_vendor
def _task_tiers_sql() -> str:
    return render("SELECT {r.tiers} FROM {r} r WHERE {r.task} = %s ORDER BY {r.id}", r=Names(Ranking, "r"))


def task_tiers(*, task_id: int) -> list[list[list[int]]]:
    """The tiers of every ranking of the task, oldest first (raw: the ORM compiles this on every submit)."""
    with hot_cursor() as cursor:
        cursor.execute(_task_tiers_sql(), [task_id])
        return [json.loads(tiers) if isinstance(tiers, str) else tiers for (tiers,) in cursor.fetchall()]


@per_vendor
def _set_agreement_sql() -> str:
    task = Names(RankingTask)
    return render("UPDATE {task} SET {task.agreement} = %s WHERE {task.id} = %s", task=task)


def set_agreement(*, task_id: int, agreement: float | None) -> None:
    """Store the task's agreement column."""
    with hot_cursor() as cursor:
        cursor.execute(_set_agreement_sql(), [agreement, task_id])
