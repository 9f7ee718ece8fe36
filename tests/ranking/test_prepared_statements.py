"""The hot paths' statements are prepared once per connection on PostgreSQL (annotation.sql.cursor), and not
with PREPARED_STATEMENTS off; either way the answers are the same and Django's query log shows each statement."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from annotation.models import Ranking
from tests.ranking_helpers import make_member, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def prepared_here() -> dict[str, int]:
    """This connection's prepared statements: their text -> how many times each ran."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return dict(cursor.fetchall())


def rank_all(client, project) -> int:
    """Rank every task the annotator gets, one request per ranking (submit?next=true); how many were stored."""
    task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    stored = 0
    while task:
        response = client.post(f"/api/v1/assignments/{task['id']}/submit?next=true",
                               {"ranking": [[r["id"]] for r in task["responses"]]}, format="json")
        assert response.status_code == 201, response.content
        stored += 1
        task = response.json()["next"]
    return stored


def test_the_claim_and_the_store_are_prepared_once_and_reused():
    project, _ = make_project(name="Prepared", tasks=8, k=3, overlap=1)
    ann = make_member(project, "ann")
    assert rank_all(ann.client(), project) == 8
    prepared = prepared_here()
    claims = [runs for text, runs in prepared.items() if "WITH claimed AS" in text and "SKIP LOCKED" in text]
    stores = [runs for text, runs in prepared.items() if "INSERT INTO \"annotation_ranking\"" in text]
    # One prepared claim, run for each of the 8 leases and the final empty one (which is retried
    # by the claim that waits for locked rows, a statement of its own), and one store per ranking.
    assert len(claims) == 1 and claims[0] >= 9, prepared
    assert stores == [8], prepared
    assert Ranking.objects.filter(project=project).count() == 8


@override_settings(PREPARED_STATEMENTS=False)
def test_with_prepared_statements_off_nothing_new_is_prepared_and_the_work_is_the_same():
    project, _ = make_project(name="Unprepared", tasks=5, k=3, overlap=1)
    ann = make_member(project, "ann")
    before = prepared_here()
    assert rank_all(ann.client(), project) == 5
    assert prepared_here() == before
    assert Ranking.objects.filter(project=project).count() == 5


def test_the_query_log_shows_prepared_statements_with_their_values():
    project, _ = make_project(name="Logged", tasks=2, k=3, overlap=1)
    ann = make_member(project, "ann")
    client = ann.client()
    with CaptureQueriesContext(connection) as log:
        task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    claim = [q["sql"] for q in log.captured_queries if q["sql"] and "WITH claimed AS" in q["sql"]]
    assert len(claim) == 1 and f"\"project_id\" = {project.pk}" in claim[0], log.captured_queries
    assert all(q["sql"] for q in log.captured_queries)
    assert task["id"] and len(task["responses"]) == 3
