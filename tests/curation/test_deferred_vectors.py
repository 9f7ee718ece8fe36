"""A bulk import defers its responses' full-text vectors to a fill after the commit; the search answers
the same before and after the fill, and every other insert writes its vectors at once (PostgreSQL)."""
from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.db import connection

from annotation.models import Prompt, Response, ResponseSearchPending, ResponseSearchVector
from annotation.services.importing import prompts_import
from annotation.services.projects import project_create
from annotation.services.response_search import response_vectors_fill, response_vectors_pending
from annotation.services.task_browse import task_filters_parse, tasks_browse
from annotation.sql import curation as sql
from tests.threads import run_threads

pytestmark = [pytest.mark.needs_postgres]

ANSWERS = [
    ("How do I sort a list in Python?",
     ["Use `sorted(items)` for a new list, or `items.sort()` to sort in place.\n\nBoth accept `key=` and `reverse=True`.",
      "Python lists have a sort method; the built-in sorted function returns a copy.",
      "Write a bubble sort by hand: it is slow but it teaches you how sorting works."]),
    ("What is the capital of France?",
     ["Paris is the capital of France and its largest city.", "The capital is Paris, on the Seine.",
      "Marseille is the second city; the capital is Paris."]),
    ("Explain vacuum in PostgreSQL.",
     ["VACUUM reclaims the space of dead row versions so it can be reused.",
      "Autovacuum runs it for you; a manual VACUUM FULL rewrites the table and locks it."]),
]
QUERIES = ["sorting", "Paris", "Marseille", "vacuum", "reclaims space", "capital OR rewrites", "\"built-in sorted\"", "nothing-like-this"]


def import_file(project, lines=ANSWERS):
    body = "\n".join(json.dumps({"id": f"p{i}", "prompt": prompt, "responses": answers}) for i, (prompt, answers) in enumerate(lines))
    return prompts_import(project=project, fileobj=io.BytesIO(body.encode()), file_format="jsonl")


def search(project, q: str) -> set[str]:
    tasks = tasks_browse(project=project, filters=task_filters_parse(params={"q": q}, project=project))
    return {t.prompt.external_id for t in tasks}


def imported_ids(project) -> set[int]:
    return set(Response.objects.filter(prompt__project=project).values_list("id", flat=True))


def queued_again(project) -> int:
    """The state an import leaves before its fill: in a committing test the fill has already run in
    process (eager Celery) after the import's commit, so the queue is put back as the import left it."""
    ids = imported_ids(project)
    ResponseSearchVector.objects.filter(response_id__in=ids).delete()
    ResponseSearchPending.objects.bulk_create([ResponseSearchPending(response_id=i) for i in ids])
    return len(ids)


@pytest.mark.django_db
def test_an_import_queues_its_vectors_and_the_search_answers_the_same_before_and_after_the_fill():
    project = project_create(name="Deferred", overlap=2)
    assert import_file(project).responses_created == 8
    ids = imported_ids(project)
    assert set(ResponseSearchPending.objects.values_list("response_id", flat=True)) == ids
    assert not ResponseSearchVector.objects.filter(response_id__in=ids).exists()
    before = {q: search(project, q) for q in QUERIES}
    assert before["sorting"] == {"p0"} and before["Marseille"] == {"p1"} and before["reclaims space"] == {"p2"}
    assert before["capital OR rewrites"] == {"p1", "p2"} and before["nothing-like-this"] == set()

    assert response_vectors_pending() == 8
    assert response_vectors_fill(batch=3) == 8  # three transactions of at most 3, then one that finds none
    assert response_vectors_pending() == 0
    assert set(ResponseSearchVector.objects.values_list("response_id", flat=True)) >= ids
    assert {q: search(project, q) for q in QUERIES} == before
    assert response_vectors_fill() == 0  # idempotent


@pytest.mark.django_db
def test_responses_written_by_anything_but_a_bulk_import_get_their_vectors_in_the_same_statement():
    project = project_create(name="Immediate", overlap=2)
    prompt = Prompt.objects.create(project=project, messages=[{"role": "user", "content": "q"}], content_hash="h" * 64)
    made = Response.objects.bulk_create([Response(prompt=prompt, text="Stemming finds the ranked answers", sample_index=i)
                                         for i in range(2)])
    assert not ResponseSearchPending.objects.exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM annotation_response_search WHERE response_id = ANY(%s) "
                       "AND vector @@ websearch_to_tsquery('english', 'ranking')", [[r.pk for r in made]])
        assert cursor.fetchone()[0] == 2


@pytest.mark.django_db
def test_a_rejected_import_queues_nothing():
    project = project_create(name="Rejected", overlap=2)
    body = "\n".join([json.dumps({"prompt": p, "responses": a}) for p, a in ANSWERS] + ["{not json"])
    with pytest.raises(Exception):  # noqa: B017, PT011 - the import's own rejection, tested in tests/importing
        prompts_import(project=project, fileobj=io.BytesIO(body.encode()), file_format="jsonl")
    assert not Response.objects.filter(prompt__project=project).exists()
    assert not ResponseSearchPending.objects.exists()


@pytest.mark.django_db
def test_a_queued_response_deleted_before_the_fill_is_dropped_and_its_task_is_no_longer_found():
    project = project_create(name="Deleted", overlap=2)
    import_file(project)
    Prompt.objects.filter(project=project, external_id="p1").delete()  # its responses and task go with it
    assert search(project, "Paris") == set()
    assert response_vectors_fill() == 8  # the three deleted ones are taken and write nothing
    assert not ResponseSearchPending.objects.exists()
    assert ResponseSearchVector.objects.filter(response_id__in=imported_ids(project)).count() == 5
    assert search(project, "Paris") == set() and search(project, "vacuum") == {"p2"}


@pytest.mark.django_db(transaction=True)
def test_a_fill_killed_mid_batch_leaves_its_batch_queued_for_the_next_one():
    project = project_create(name="Killed", overlap=2)
    import_file(project)
    assert response_vectors_pending() == 0  # filled in process after the commit
    assert queued_again(project) == 8
    dsn = connection.settings_dict
    killed = psycopg.connect(host=dsn["HOST"] or "127.0.0.1", port=dsn["PORT"] or 5432, user=dsn["USER"], dbname=dsn["NAME"])
    try:
        # The fill's own statement in a transaction that never commits, as a worker killed mid-batch.
        taken, written = killed.execute(sql.fill_pending_sql().replace("%s", "5")).fetchone()
        assert (taken, written) == (5, 5)
        assert response_vectors_fill() == 3  # the 5 held rows are skipped (SKIP LOCKED), not waited for
    finally:
        killed.rollback()
        killed.close()
    assert response_vectors_pending() == 5  # the killed batch is back in the queue, nothing half-written
    assert response_vectors_fill() == 5 and response_vectors_pending() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_fills_write_every_vector_once():
    project = project_create(name="Concurrent", overlap=2)
    many = [(f"Question {i} about sorting?", [f"Answer {i}a: sort it.", f"Answer {i}b: sorted copies."]) for i in range(150)]
    import_file(project, many)
    assert queued_again(project) == 300
    taken: list[int] = []
    run_threads(lambda: taken.append(response_vectors_fill(batch=7)), [()] * 4)
    assert sum(taken) == 300 and response_vectors_pending() == 0
    assert ResponseSearchVector.objects.filter(response_id__in=imported_ids(project)).count() == 300
    assert len(search(project, "sorting")) == 150


@pytest.mark.django_db(transaction=True)
def test_the_import_enqueues_the_fill_and_a_real_worker_empties_the_queue(celery_worker):
    import time

    project = project_create(name="Worker fill", overlap=2)
    import_file(project)  # commits (autocommit around the import's own transaction), then sends the fill
    deadline = time.monotonic() + 120  # a generous deadline on a shared machine, polled, not slept through
    while response_vectors_pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response_vectors_pending() == 0, celery_worker.log()[-2000:]
    assert ResponseSearchVector.objects.filter(response_id__in=imported_ids(project)).count() == 8
    assert search(project, "Marseille") == {"p1"}


@pytest.mark.django_db(transaction=True)
def test_a_large_import_leaves_fresh_planner_statistics_behind():
    from annotation.services.response_search import ANALYZE_AFTER_ROWS

    project = project_create(name="Analyzed", overlap=2)
    many = [(f"Question {i} about sorting?", [f"Answer {i}a: sort it.", f"Answer {i}b: sorted copies."])
            for i in range(ANALYZE_AFTER_ROWS // 3 + 1)]
    import_file(project, many)  # commits; the settle task then runs in process (eager Celery)
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                       "('annotation_response', 'annotation_rankingtask', 'annotation_response_search')")
        estimates = dict(cursor.fetchall())
    # ANALYZE read every row of these small tables: the planner's row counts are the real ones.
    assert estimates["annotation_response"] == Response.objects.count() == 2 * len(many)
    assert estimates["annotation_response_search"] == 2 * len(many)
    assert response_vectors_pending() == 0
