"""Full-text search for the task browser (services/task_browse.py): the GIN expression indexes
and the predicates that use them, PostgreSQL only (the portable twin is the service's icontains).

The predicates repeat the indexed expressions exactly (same function, same text search
configuration), which is what lets the planner use the indexes.
"""
from __future__ import annotations

from annotation.models import Prompt, RankingTask, Response
from annotation.sql.names import Names, Sql, per_vendor, quote, render

CONFIG = Sql("'english'::regconfig")  # stemming: "ranked" finds "ranking"
PROMPT_INDEX = "prompt_messages_fts"
RESPONSE_INDEX = "response_text_fts"


def vector(column: Sql) -> Sql:
    """The indexed expression: the predicates must repeat it exactly for the planner to use the index."""
    return Sql(render("to_tsvector({config}, {column})", config=CONFIG, column=column))


def create_indexes_sql() -> list[str]:
    """The DDL of the two GIN indexes (the migration runs it on PostgreSQL only)."""
    p, r = Names(Prompt), Names(Response)
    statement = "CREATE INDEX IF NOT EXISTS {index} ON {table} USING gin (({vector}))"
    return [
        render(statement, index=quote(PROMPT_INDEX), table=p, vector=vector(p.messages)),
        render(statement, index=quote(RESPONSE_INDEX), table=r, vector=vector(r.text)),
    ]


def drop_indexes_sql() -> list[str]:
    return [render("DROP INDEX IF EXISTS {index}", index=quote(name)) for name in (PROMPT_INDEX, RESPONSE_INDEX)]


@per_vendor
def prompts_matching_sql() -> str:
    """Ids of the project's prompts whose messages match; parameters: project id, query text."""
    p = Names(Prompt, "p")
    return render(
        "SELECT {p.id} FROM {p} p WHERE {p.project} = %s AND {vector} @@ websearch_to_tsquery({config}, %s)",
        p=p, vector=vector(p.messages), config=CONFIG,
    )


@per_vendor
def tasks_with_response_matching_sql() -> str:
    """Ids of tasks holding a response whose text matches; parameter: the query text."""
    r, tr = Names(Response, "r"), Names(RankingTask.responses.through, "tr")
    return render(
        "SELECT {tr.rankingtask} FROM {tr} tr JOIN {r} r ON {r.id} = {tr.response} "
        "WHERE {vector} @@ websearch_to_tsquery({config}, %s)",
        r=r, tr=tr, vector=vector(r.text), config=CONFIG,
    )
