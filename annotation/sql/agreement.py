"""Agreement's statements: mark the cached report stale (the submit path, annotation.services.agreement_cache),
and load the rankings' columns in bulk (annotation.services.agreement.rank_data_load)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from annotation.models import AgreementReport, Ranking
from annotation.sql import cursor as hot_cursor
from annotation.sql.names import Names, per_vendor, render

# Mark the report stale and, when a refresh may be enqueued, claim it, in a single conditional
# UPDATE. In the common case during a burst (already stale, a refresh already queued) it matches no
# row and writes nothing. The EXISTS tells "nothing to do" apart from "no report row yet".
_MARK_STALE = """
WITH marked AS (
    UPDATE {r}
    SET {r.stale} = true,
        {r.refresh_queued_at} = CASE
            WHEN %(enqueue)s AND ({r.refresh_queued_at} IS NULL OR {r.refresh_queued_at} < %(lost)s) THEN %(now)s
            ELSE {r.refresh_queued_at} END
    WHERE {r.project} = %(project)s
      AND (NOT {r.stale} OR (%(enqueue)s AND ({r.refresh_queued_at} IS NULL OR {r.refresh_queued_at} < %(lost)s)))
    RETURNING {r.refresh_queued_at}
)
SELECT (SELECT {r.refresh_queued_at} FROM marked),
       EXISTS (SELECT 1 FROM {r} WHERE {r.project} = %(project)s)
"""


@per_vendor
def _mark_stale_sql() -> str:
    return render(_MARK_STALE, r=Names(AgreementReport))


def mark_stale(*, project_id: int, claim: bool, now: datetime, lost_before: datetime) -> tuple[datetime | None, bool]:
    """PostgreSQL, one statement: (refresh_queued_at if this call marked or claimed, else None;
    whether the project has a report row at all)."""
    params = {"project": project_id, "enqueue": claim, "now": now, "lost": lost_before}
    with hot_cursor() as cursor:
        cursor.execute(_mark_stale_sql(), params)
        queued_at, exists = cursor.fetchone()
    return queued_at, bool(exists)


# Every column agreement needs, each aggregated into one byte string in (task, id) order, so 300k
# rankings cross as a handful of values and numpy reads them without a Python loop per row.
_RANKING_COLUMNS = """
SELECT count(*),
       count(*) FILTER (WHERE {r.rank_vector} IS NULL OR {r.display_vector} IS NULL),
       string_agg(int8send({r.task}::bigint), ''::bytea ORDER BY {r.task}, {r.id}),
       string_agg(int8send({r.annotator}::bigint), ''::bytea ORDER BY {r.task}, {r.id}),
       string_agg(float8send(coalesce({r.duration_seconds}, 'NaN')::float8), ''::bytea ORDER BY {r.task}, {r.id}),
       string_agg(int4send(octet_length(coalesce({r.rank_vector}, ''::bytea))), ''::bytea ORDER BY {r.task}, {r.id}),
       string_agg(coalesce({r.rank_vector}, ''::bytea), ''::bytea ORDER BY {r.task}, {r.id}),
       string_agg(coalesce({r.display_vector}, ''::bytea), ''::bytea ORDER BY {r.task}, {r.id})
FROM {r} r WHERE {r.id} IN ("""


@per_vendor
def _ranking_columns_sql() -> str:
    return render(_RANKING_COLUMNS, r=Names(Ranking, "r"))


@dataclass
class RankingColumns:
    count: int
    without_vectors: int  # rows written before the vectors existed (then the caller decodes tiers)
    task: bytes  # int64 big-endian per ranking
    annotator: bytes  # int64 big-endian
    seconds: bytes  # float64 big-endian, NaN when unknown
    vector_bytes: bytes  # int32 big-endian: each rank vector's length in bytes
    rank_vectors: bytes  # the rank vectors, concatenated
    display_vectors: bytes  # the display vectors, concatenated


def ranking_columns(*, ids_sql: str, ids_params: list | tuple) -> RankingColumns:
    """PostgreSQL: the rankings whose ids `ids_sql` selects (a compiled queryset), as aggregated columns."""
    with hot_cursor() as cursor:
        cursor.execute(_ranking_columns_sql() + ids_sql + ")", list(ids_params))
        row = cursor.fetchone()
    return RankingColumns(int(row[0]), int(row[1]), *(bytes(value or b"") for value in row[2:]))
