"""The list at 100k tasks: a fixed number of queries whatever the filters, the ordering or the page
(no per-row query), and the least agreed tasks first. Speed is measured in bench/curation.py."""
from __future__ import annotations

import pytest

from annotation.models import RankingTask, Role
from tests.curation.scale import big_project_fill
from tests.export_factories import make_project, make_user
from tests.factories import api_client

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres, pytest.mark.slow]

N = 100_000


def test_the_list_of_a_100k_task_project_takes_three_queries_per_page(django_assert_num_queries):
    engineer = make_user("big-eng")
    project = make_project("big", members={engineer: Role.ENGINEER})
    big_project_fill(project_id=project.pk, tasks=N)
    assert RankingTask.objects.filter(project=project).count() == N
    client = api_client(engineer)
    url = f"/api/v1/projects/{project.pk}/tasks"
    queries = [
        {"ordering": "agreement", "limit": 10},
        {"ordering": "-created_at", "judged": "false", "limit": 100, "offset": 50_000},
        {"ordering": "-priority", "status": "complete", "gold": "false", "limit": 100},
        {"agreement_lt": "0.2", "agreement_gt": "0.1", "rankings": "2", "flagged": "false", "limit": 100},
        {"q": "planets", "ordering": "agreement", "limit": 100},
        # A word of every response: an OR of two subqueries probed per task row took minutes here.
        {"q": "answer", "ordering": "agreement", "limit": 100},
    ]
    for params in queries:
        # The caller's project and role, the count, the page: three statements.
        with django_assert_num_queries(3):
            response = client.get(url, params)
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == params["limit"]
    assert client.get(url, {"q": "answer", "limit": 1}).json()["count"] == N
    ten = client.get(url, {"ordering": "agreement", "limit": 10}).json()
    assert ten["count"] == N
    values = [row["agreement"] for row in ten["results"]]
    lowest = list(RankingTask.objects.filter(project=project, agreement__isnull=False)
                  .order_by("agreement", "id").values_list("agreement", flat=True)[:10])
    assert values == lowest and values == sorted(values)
