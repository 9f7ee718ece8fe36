"""The next-task engine's statements (annotation.services.assignment): claim, show, lease, resume, hold.

The claim is one statement on PostgreSQL: an UPDATE of the task row picked by
`SELECT ... FOR UPDATE SKIP LOCKED`, joined to what the new assignment shows (docs/ranking.md,
"The claim's query plan"). The rules (overlap, gold, resume, lock order) are the service's; this
module only holds the text and the parameters' layout.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection

from annotation.models import Assignment, Membership, Project, Prompt, PromptHtml, RankingTask, Response, ResponseHtml
from annotation.services.rendering import RENDERER_VERSION
from annotation.sql import cursor as hot_cursor
from annotation.sql.names import Names, Sql, column_list, per_vendor, placeholders, quote, render
from annotation.sql.rows import model_from_columns, models_from_sql


class ShownRow(NamedTuple):
    """One response of a task as the payload needs it, with the HTML rendered ahead of time
    (services/prerender.py) where there is some of the current renderer, else None."""

    response_id: int
    text: str
    messages: list  # the prompt's, the same on every row
    html: str | None
    turns_html: list | None  # the prompt's messages as HTML, one per message


Shown = list[ShownRow]


@per_vendor
def _serialize_sql(wait: bool, member_check: bool, counts: bool) -> str:
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    m = Names(Membership, "m")
    member = render(", EXISTS (SELECT 1 FROM {m} m WHERE {m.project} = %s AND {m.user} = %s)", m=m) if member_check else ""
    # done_counts' two figures as one array: a scalar subquery returns one column.
    done = render(", (SELECT ARRAY[count(*), coalesce(sum(CASE WHEN {a.finished_at} >= %s THEN 1 ELSE 0 END), 0)] FROM {a} a "
                  "WHERE {a.project} = %s AND {a.annotator} = %s AND {a.status} = %s)", a=Names(Assignment, "a")) if counts else ""
    return f"SELECT {function}(%s), set_config('synchronous_commit', 'off', true){member}{done}"


@dataclass
class Serialized:
    held: bool  # this transaction holds the annotator's lock
    member: bool  # with member_of: whether the user is a member of the project (else True)
    done: tuple[int, int] | None  # with done_of: done_counts' (all, since), read in the same statement


def serialize_annotator(*, lock_key: int, wait: bool = True, member_of: tuple[int, int] | None = None,
                        done_of: tuple[datetime, int, int, str] | None = None) -> Serialized:
    """PostgreSQL: a transaction-scoped advisory lock (one person's tabs lease one at a time), and
    leases committed without waiting for the WAL flush (one fsync per next-task was most of its
    latency on a busy disk; a crash can forget the last instant of leases, whole transactions only).

    `wait=False`: only try (pg_try_advisory_xact_lock). `member_of` (project id, user id): read that
    membership in the same statement; `done_of` (since, project id, annotator id, status): and the
    annotator's done_counts (the payload's progress), so neither costs a statement of its own."""
    params = [lock_key, *(member_of or ()), *(done_of or ())]
    with hot_cursor() as cursor:
        cursor.execute(_serialize_sql(wait, member_of is not None, done_of is not None), params)
        row = cursor.fetchone()
    done = (int(row[-1][0]), int(row[-1][1])) if done_of is not None else None
    return Serialized(held=True if wait else bool(row[0]), member=bool(row[2]) if member_of is not None else True, done=done)


_CLAIM = """
UPDATE {task} SET {task.active_count} = {task.active_count} + 1
WHERE {task.id} = (
    SELECT {t.id} FROM {t} t
    WHERE {t.project} = %(project)s AND NOT {t.is_complete} AND {t.is_gold} = %(gold)s
      -- target_overlap: the rankings the task may get at this moment (adaptive overlap); NULL: overlap.
      AND ({t.is_gold} OR {t.active_count} < coalesce({t.target_overlap}, {t.overlap}))
      AND NOT EXISTS (
          -- OFFSET 0 keeps this a per-row probe of the unique (task, annotator) index; flattened into
          -- an anti-join, the planner may instead scan all of a busy annotator's assignments.
          SELECT 1 FROM {a} a WHERE {a.task} = {t.id} AND {a.annotator} = %(annotator)s OFFSET 0
      )
    ORDER BY {t.priority} DESC, {t.id}
    LIMIT 1
    FOR UPDATE OF t {lock}
)
RETURNING {task.id}
"""


@per_vendor
def claim_sql(skip_locked: bool) -> str:
    """The claim (PostgreSQL): params project, gold, annotator; returns the claimed task's id."""
    return render(_CLAIM, task=Names(RankingTask), t=Names(RankingTask, "t"), a=Names(Assignment, "a"),
                  lock=Sql("SKIP LOCKED" if skip_locked else ""))


def _html_columns_and_joins(with_html: bool) -> tuple[str, str]:
    """The stored HTML of the current renderer (LEFT JOINs on the response's and the prompt's
    primary keys), or NULLs: the payload then renders (PRERENDERED_HTML=0, a comparison)."""
    if not with_html:
        return ", NULL, NULL", ""
    h, ph = Names(ResponseHtml, "h"), Names(PromptHtml, "ph")
    r, p = Names(Response, "r"), Names(Prompt, "p")
    joins = render(
        " LEFT JOIN {h} h ON {h.response} = {r.id} AND {h.renderer} = {version}"
        " LEFT JOIN {ph} ph ON {ph.prompt} = {p.id} AND {ph.renderer} = {version}",
        h=h, ph=ph, r=r, p=p, version=Sql(str(int(RENDERER_VERSION))),
    )
    return render(", {h.html}, {ph.turns}", h=h, ph=ph), joins


@per_vendor
def _claim_and_show_sql(skip_locked: bool, with_html: bool) -> str:
    # The claimed task's responses with their prompt's messages, in the same round trip (LEFT JOIN:
    # a claimed task is never lost from view).
    tr = Names(RankingTask.responses.through, "tr")
    r, p = Names(Response, "r"), Names(Prompt, "p")
    columns, joins = _html_columns_and_joins(with_html)
    return render(
        "WITH claimed AS ({claim}) SELECT c.{id}, {r.id}, {r.text}, {p.messages}{columns} FROM claimed c "
        "LEFT JOIN {tr} tr ON {tr.rankingtask} = c.{id} LEFT JOIN {r} r ON {r.id} = {tr.response} "
        "LEFT JOIN {p} p ON {p.id} = {r.prompt}{joins}",
        claim=Sql(claim_sql(skip_locked)), id=quote(RankingTask._meta.pk.column), tr=tr, r=r, p=p,
        columns=Sql(columns), joins=Sql(joins),
    )


def _shown_rows(rows: list[tuple]) -> Shown:
    return [ShownRow(rid, text, _json(messages), html, _json(turns)) for rid, text, messages, html, turns in rows if rid is not None]


def claim_and_show(*, project_id: int, annotator_id: int, gold: bool) -> tuple[int, Shown] | None:
    """Claim the next open task (PostgreSQL) and read what it shows; None when there is none."""
    params = {"project": project_id, "gold": gold, "annotator": annotator_id}
    with hot_cursor() as cursor:
        cursor.execute(_claim_and_show_sql(True, settings.PRERENDERED_HTML), params)
        rows = cursor.fetchall()
        if not rows:
            # Every open row may have been locked by concurrent claims for an instant; wait for them
            # once rather than tell the annotator "nothing left" while slots remain. After the wait
            # PostgreSQL re-checks the conditions on the row's new version.
            cursor.execute(_claim_and_show_sql(False, settings.PRERENDERED_HTML), params)
            rows = cursor.fetchall()
    if not rows:
        return None
    return rows[0][0], _shown_rows([row[1:] for row in rows])


@per_vendor
def _shown_sql(with_html: bool) -> str:
    tr, r, p = Names(RankingTask.responses.through, "tr"), Names(Response, "r"), Names(Prompt, "p")
    columns, joins = _html_columns_and_joins(with_html)
    return render(
        "SELECT {r.id}, {r.text}, {p.messages}{columns} FROM {tr} tr JOIN {r} r ON {r.id} = {tr.response} "
        "JOIN {p} p ON {p.id} = {r.prompt}{joins} WHERE {tr.rankingtask} = %s",
        tr=tr, r=r, p=p, columns=Sql(columns), joins=Sql(joins),
    )


def shown(*, task_id: int) -> Shown:
    """What the task shows (ShownRow: response, text, prompt messages, stored HTML), in one statement."""
    with hot_cursor() as cursor:
        cursor.execute(_shown_sql(settings.PRERENDERED_HTML), [task_id])
        return _shown_rows(cursor.fetchall())


def _json(value: Any) -> Any:
    # JSON columns come back as text from a raw cursor on some backends (the ORM decodes them).
    return json.loads(value) if isinstance(value, str) else value


INSERT_COLUMNS = column_list(
    "assignment insert (annotation.sql.assignment.insert)",
    Assignment,
    ("task", "project", "annotator", "status", "display_order", "opaque_ids", "leased_at", "lease_expires_at",
     "finished_at", "skip_reason"),
    pk=False,
)


@per_vendor
def _insert_sql() -> str:
    return render("INSERT INTO {a} ({columns}) VALUES ({values}) RETURNING {a.id}",
                  a=Names(Assignment), columns=INSERT_COLUMNS.sql(), values=placeholders(len(INSERT_COLUMNS.fields)))


def insert(assignment: Assignment) -> None:
    """INSERT the new assignment and set its pk: Model.save() costs several times the statement here."""
    adapt = connection.ops.adapt_datetimefield_value
    values = {
        "task": assignment.task_id,
        "project": assignment.project_id,
        "annotator": assignment.annotator_id,
        "status": assignment.status,
        "display_order": json.dumps(assignment.display_order),
        "opaque_ids": json.dumps(assignment.opaque_ids),
        "leased_at": adapt(assignment.leased_at),
        "lease_expires_at": adapt(assignment.lease_expires_at),
        "finished_at": adapt(assignment.finished_at),
        "skip_reason": assignment.skip_reason,
    }
    with hot_cursor() as cursor:
        cursor.execute(_insert_sql(), [values[name] for name in INSERT_COLUMNS.fields])
        assignment.pk = cursor.fetchone()[0]
    assignment._state.adding, assignment._state.db = False, connection.alias


@per_vendor
def _live_sql() -> str:
    a = Names(Assignment, "a")
    return render(
        "SELECT {a.all} FROM {a} a WHERE {a.project} = %s AND {a.annotator} = %s AND {a.status} = %s ORDER BY {a.id} LIMIT %s",
        a=a,
    )


def live(*, project_id: int, annotator_id: int, status: str, limit: int) -> list[Assignment]:
    """The annotator's assignments in the project with `status` (their live leases), oldest first."""
    return models_from_sql(model=Assignment, sql=_live_sql(), params=[project_id, annotator_id, status, limit])


_PROJECT_PREFIX = "held_project__"


@per_vendor
def _holder_sql(lock: str, with_project: bool) -> str:
    a, p, t = Names(Assignment, "a"), Names(Project, "p"), Names(RankingTask, "t")
    m = Names(Membership, "m")
    project = "".join(f", p.{quote(f.column)} AS {quote(_PROJECT_PREFIX + f.column)}" for f in Project._meta.concrete_fields)
    # The membership join: a removed member's assignments are no longer theirs (issue 14.1).
    return render(
        "SELECT {a.all}, {p.allow_ties} AS held_allow_ties, {p.lease_seconds} AS held_lease_seconds, "
        "coalesce({p.min_overlap}, {p.overlap}) < {p.overlap} AS held_adaptive, {p.agreement_target} AS held_agreement_target, "
        "{p.adaptive_rule} AS held_adaptive_rule, {t.is_gold} AS held_task_is_gold, {t.task_type} AS held_task_type{project} "
        "FROM {a} a JOIN {p} p ON {p.id} = {a.project} "
        "JOIN {t} t ON {t.id} = {a.task} "
        "JOIN {m} m ON {m.project} = {a.project} AND {m.user} = {a.annotator} "
        "WHERE {a.id} = %s AND {a.annotator} = %s{lock}",
        a=a, p=p, t=t, m=m, lock=Sql({"": "", "a": " FOR UPDATE OF a", "a, t": " FOR UPDATE OF a, t"}[lock]),
        project=Sql(project if with_project else ""),
    )


def held(*, assignment_id: int, annotator_id: int, lock: bool, with_project: bool = False,
         lock_task: bool = False) -> Assignment | None:
    """The annotator's assignment with the project and task fields the holder's operations need
    (held_allow_ties, held_lease_seconds, held_task_is_gold, held_task_type, held_adaptive, held_agreement_target,
    held_adaptive_rule);
    `lock`: FOR UPDATE of the assignment row where the database has it, and with `lock_task` of its
    task row after it (the rows are locked in that order). `with_project`: the whole project row too,
    read in the same statement, as `assignment.project` (no query when it is read)."""
    mode = ("a, t" if lock_task else "a") if lock and connection.features.has_select_for_update_of else ""
    found = models_from_sql(model=Assignment, sql=_holder_sql(mode, with_project), params=[assignment_id, annotator_id])
    if not found:
        return None
    assignment = found[0]
    if with_project:
        values = {f.column: assignment.__dict__.pop(_PROJECT_PREFIX + f.column) for f in Project._meta.concrete_fields}
        assignment.project = model_from_columns(model=Project, values=values)
    return assignment


@per_vendor
def _done_sql() -> str:
    a = Names(Assignment, "a")
    return render(
        "SELECT count(*), coalesce(sum(CASE WHEN {a.finished_at} >= %s THEN 1 ELSE 0 END), 0) FROM {a} a "
        "WHERE {a.project} = %s AND {a.annotator} = %s AND {a.status} = %s",
        a=a,
    )


def done_counts(*, project_id: int, annotator_id: int, status: str, since: datetime) -> tuple[int, int]:
    """(all, finished since `since`) of the annotator's assignments in the project with `status`."""
    with hot_cursor() as cursor:
        cursor.execute(_done_sql(), [since, project_id, annotator_id, status])
        total, recent = cursor.fetchone()
    return int(total), int(recent)
