"""`q`: full-text search over the prompt and the responses. On PostgreSQL it stems (ranked finds
ranking), combines words (websearch syntax) and is served by the GIN expression indexes; the
portable twin (PORTABLE_SQL=1, SQLite) matches substrings."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from annotation.models import Prompt, ResponseSearchVector
from annotation.services.task_browse import task_filters_parse, tasks_browse
from annotation.sql import curation as sql
from annotation.sql.names import Names, render
from tests.curation.helpers import build
from tests.factories import api_client

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def found(cur, q: str) -> set[str]:
    response = api_client(cur.engineer).get(f"/api/v1/projects/{cur.project.pk}/tasks", {"q": q})
    assert response.status_code == 200, response.content
    names = {task.pk: key for key, task in cur.tasks.items()}
    return {names[row["id"]] for row in response.json()["results"]}


def test_full_text_search_finds_prompts_and_responses_with_stemming_and_word_logic():
    cur = build()
    assert found(cur, "capital") == {"split"}  # a prompt word
    assert found(cur, "Marseille") == {"split"}  # a response word
    assert found(cur, "sorting") == {"agree"}  # stemmed: 'sorting' finds 'sort' / 'sorted'
    assert found(cur, "vacuum hums") == {"fight"}  # every word, in one document (the prompt or one response)
    assert found(cur, "databases vacuum") == set()  # ... not spread over the prompt and a response
    assert found(cur, "haiku OR recursion") == {"fight", "single"}
    assert found(cur, "\"capital of France\"") == {"split"}
    assert found(cur, "-- ' ; drop table") == set()  # input is only ever a parameter
    assert found(cur, "cur") == set()  # nothing leaks from other fields


def test_search_of_another_project_never_returns_its_tasks():
    cur, other = build(), build("other")
    assert found(cur, "Paris") == {"split"}
    assert {row["id"] for row in api_client(other.engineer).get(
        f"/api/v1/projects/{other.project.pk}/tasks", {"q": "Paris"}).json()["results"]} == {other.tasks["split"].pk}


def test_the_search_uses_the_gin_indexes():
    cur = build()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname IN (%s, %s)", [sql.PROMPT_INDEX, sql.RESPONSE_INDEX])
        assert {row[0] for row in cursor.fetchall()} == {sql.PROMPT_INDEX, sql.RESPONSE_INDEX}
        cursor.execute("SET enable_seqscan = off")  # tiny tables: make the planner show it can use them
        cursor.execute("EXPLAIN " + sql.tasks_matching_sql(), [cur.project.pk, "paris"] * 3)
        assert sql.PROMPT_INDEX in " ".join(row[0] for row in cursor.fetchall())
        # Each predicate's expression is its index's (with a project filter the planner may prefer the
        # project index on a tiny table, so each is checked on its own as well).
        p, s = Names(Prompt, "p"), Names(ResponseSearchVector, "s")
        for statement, index in (
            (render("EXPLAIN SELECT {p.id} FROM {p} p WHERE {v} @@ websearch_to_tsquery({c}, %s)", p=p, v=sql.vector(p.messages),
                    c=sql.CONFIG), sql.PROMPT_INDEX),
            (render("EXPLAIN SELECT {s.response} FROM {s} s WHERE {s.vector} @@ websearch_to_tsquery({c}, %s)", s=s, c=sql.CONFIG),
             sql.RESPONSE_INDEX),
        ):
            cursor.execute(statement, ["paris"])
            assert index in " ".join(row[0] for row in cursor.fetchall())


@override_settings(PORTABLE_SQL=True)
def test_the_portable_twin_matches_substrings_in_prompts_and_responses():
    cur = build()
    filters = lambda q: task_filters_parse(params={"q": q}, project=cur.project)  # noqa: E731
    ids = lambda q: {t.pk for t in tasks_browse(project=cur.project, filters=filters(q))}  # noqa: E731
    assert ids("capital") == {cur.tasks["split"].pk}
    assert ids("MARSEILLE") == {cur.tasks["split"].pk}
    assert ids("sorted(") == {cur.tasks["agree"].pk}
