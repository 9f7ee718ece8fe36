"""Full-text search for the task browser (services/task_browse.py), PostgreSQL only (the portable
twin is the service's icontains): the prompts' GIN expression index, the responses' search table,
and the predicates that use them.

The prompts' predicate repeats the indexed expression exactly (same function, same text search
configuration), which is what lets the planner use the index.

A response's vector lives in a table of its own, written by a statement trigger on the response
table, so that a bulk import can defer it: computing `to_tsvector` and the GIN entries of 400k
responses is about 60% of the database's work in an import of 100k prompts with 4 responses each.
Inside a transaction that has run `defer_response_vectors_sql` the trigger (migration 0013) only
queues the new response ids (pending table); `fill_pending_sql` computes their vectors afterwards,
in small transactions. Until then the search reads the queued responses' text directly, so its answer is
the same before and after the fill, only slower for those rows.
"""
from __future__ import annotations

from annotation.models import Prompt, RankingTask, Response, ResponseSearchPending, ResponseSearchVector
from annotation.sql.names import Names, Sql, per_vendor, render, table

CONFIG = Sql("'english'::regconfig")  # stemming: "ranked" finds "ranking"
PROMPT_INDEX = "prompt_messages_fts"
RESPONSE_INDEX = "response_search_fts"  # the GIN index on ResponseSearchVector.vector
DEFER_SETTING = "annotation.defer_response_vectors"  # 'on' for the rest of the transaction: queue, don't compute


def vector(column: Sql) -> Sql:
    """The indexed expression: the predicates must repeat it exactly for the planner to use the index."""
    return Sql(render("to_tsvector({config}, {column})", config=CONFIG, column=column))


def defer_response_vectors_sql() -> str:
    """Until this transaction ends, new responses are queued rather than given their vectors."""
    return "SELECT set_config('" + DEFER_SETTING + "', 'on', true)"


def analyze_loaded_tables_sql() -> list[str]:
    """Fresh planner statistics for the tables a bulk import loads: before the fill (the queue
    included, which the search reads until then), and for the vectors after it."""
    loaded = Sql(", ".join(table(m) for m in (Prompt, Response, RankingTask, RankingTask.responses.through, ResponseSearchPending)))
    return [render("ANALYZE {loaded}", loaded=loaded), render("ANALYZE {s}", s=Names(ResponseSearchVector))]


@per_vendor
def fill_pending_sql() -> str:
    """Take up to %s queued responses (skipping those another fill holds) and write their vectors;
    answers (taken, written). A re-queued response gets its vector again (ON CONFLICT DO UPDATE); one
    deleted meanwhile writes nothing (the join)."""
    r, search, pending = Names(Response, "r"), Names(ResponseSearchVector), Names(ResponseSearchPending)
    return render(
        "WITH taken AS (DELETE FROM {pending} WHERE {pending.response_id} IN (SELECT {pending.response_id} FROM {pending} "
        "ORDER BY {pending.response_id} LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING {pending.response_id} AS id), "
        "written AS (INSERT INTO {search} ({search.response}, {search.vector}) SELECT {r.id}, {vector} FROM taken "
        "JOIN {r} r ON {r.id} = taken.id ON CONFLICT ({search.response}) DO UPDATE SET {search.vector} = EXCLUDED.{search.vector} "
        "RETURNING 1) "
        "SELECT (SELECT count(*) FROM taken), (SELECT count(*) FROM written)",
        pending=pending, search=search, r=r, vector=vector(r.text),
    )


@per_vendor
def tasks_matching_sql() -> str:
    """Ids of the project's tasks whose prompt or one of whose responses matches; parameters: the
    project id and the query text, three times over (one pair per branch).

    One `IN (...)` of a UNION rather than two subqueries joined by OR: under OR the planner can only
    probe each subquery per task row, and once a subquery's rows outgrow work_mem (a word in most of
    100k tasks' responses) each probe scanned them all, a quadratic count of minutes. A single
    subquery of distinct ids is hash-joined: 0.5 s for that word, 0.1 s for one in 20k prompts
    against 0.03 s before (bench/curation.py).

    Responses with a vector are found through their GIN index; queued ones (a deferred import not
    filled yet) by computing theirs, the same expression, so the answer does not depend on the
    fill. With nothing queued, that branch costs one probe of the empty queue.
    """
    p, t = Names(Prompt, "p"), Names(RankingTask, "t")
    r, tr = Names(Response, "r"), Names(RankingTask.responses.through, "tr")
    s, q = Names(ResponseSearchVector, "s"), Names(ResponseSearchPending, "q")
    return render(
        "SELECT {t.id} FROM {t} t JOIN {p} p ON {p.id} = {t.prompt} "
        "WHERE {t.project} = %s AND {prompt_vector} @@ websearch_to_tsquery({config}, %s) "
        "UNION "
        "SELECT {t.id} FROM {s} s JOIN {tr} tr ON {tr.response} = {s.response} JOIN {t} t ON {t.id} = {tr.rankingtask} "
        "WHERE {t.project} = %s AND {s.vector} @@ websearch_to_tsquery({config}, %s) "
        "UNION "
        "SELECT {t.id} FROM {q} q JOIN {tr} tr ON {tr.response} = {q.response_id} JOIN {t} t ON {t.id} = {tr.rankingtask} "
        "JOIN {r} r ON {r.id} = {q.response_id} "
        # A one-time check: with nothing queued (the usual case) the branch is never executed.
        "WHERE EXISTS (SELECT 1 FROM {q}) AND {t.project} = %s AND {response_vector} @@ websearch_to_tsquery({config}, %s)",
        p=p, t=t, r=r, tr=tr, s=s, q=q, prompt_vector=vector(p.messages), response_vector=vector(r.text), config=CONFIG,
    )
