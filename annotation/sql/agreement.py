"""The agreement cache's statement on the hot path (annotation.services.agreement_cache): mark stale."""
from __future__ import annotations

from datetime import datetime

from django.db import connection

from annotation.models import AgreementReport
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
    with connection.cursor() as cursor:
        cursor.execute(_mark_stale_sql(), params)
        queued_at, exists = cursor.fetchone()
    return queued_at, bool(exists)
