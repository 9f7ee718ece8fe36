"""Sending a task back goes through the real next-task engine: a complete task reopened by
`more_rankings` is leased to one more annotator, and only one; its counters stay exact and it
completes again at the new overlap. Everything through the API, as annotators and an admin."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from annotation.models import RankingTask, Role
from annotation.services.consensus import task_agreement
from tests.ranking_helpers import make_member, make_project

pytestmark = pytest.mark.django_db


def rank_next(member, project) -> int | None:
    response = member.client().get(f"/api/v1/projects/{project.pk}/next-task")
    if response.status_code == 204:
        return None
    body = response.json()
    ids = [r["id"] for r in body["responses"]]
    submitted = member.client().post(f"/api/v1/assignments/{body['id']}/submit", {"ranking": [[i] for i in ids]}, format="json")
    assert submitted.status_code == 201, submitted.content
    return body["id"]


def test_a_reopened_task_takes_exactly_one_more_ranking_and_completes_again():
    project, admin = make_project(name="Reopen", tasks=1, k=3, overlap=1)
    admin_client = admin.client()
    ann = [make_member(project, f"reopen-{i}", Role.ANNOTATOR) for i in range(3)]
    assert rank_next(ann[0], project) is not None
    task = RankingTask.objects.get(project=project)
    assert (task.submitted_count, task.is_complete) == (1, True)
    assert rank_next(ann[1], project) is None  # complete: nothing to lease

    body = admin_client.post(f"/api/v1/tasks/{task.pk}/more-rankings").json()
    assert (body["overlap"], body["is_complete"], body["rankings_count"]) == (2, False, 1)
    assert rank_next(ann[0], project) is None  # never the same annotator twice
    assert rank_next(ann[1], project) is not None
    assert rank_next(ann[2], project) is None  # exactly one more
    task.refresh_from_db()
    assert (task.overlap, task.submitted_count, task.active_count, task.is_complete) == (2, 2, 2, True)
    # The second submission recomputed the stored agreement from both rankings.
    assert task.agreement == task_agreement(list(task.rankings.order_by("id").values_list("tiers", flat=True)))
    assert task.agreement is not None


@pytest.mark.django_db(transaction=True)
@pytest.mark.needs_postgres
@pytest.mark.parametrize("round_", range(3))
def test_sending_back_while_the_last_rankings_arrive_keeps_the_counters_exact(round_):
    """Three leases out on an overlap-3 task; the three submissions and a bulk `more_rankings` race.
    Whatever the order, the task ends with overlap 4, three rankings, and open for one more."""
    project, admin = make_project(name=f"Race {round_}", tasks=1, k=3, overlap=3)
    ann = [make_member(project, f"race{round_}-{i}", Role.ANNOTATOR) for i in range(4)]
    leased = []
    for member in ann[:3]:
        response = member.client().get(f"/api/v1/projects/{project.pk}/next-task")
        assert response.status_code == 200
        leased.append((member, response.json()))
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def submit(member, body):
        barrier.wait()
        ids = [r["id"] for r in body["responses"]]
        response = member.client().post(f"/api/v1/assignments/{body['id']}/submit", {"ranking": [[i] for i in ids]}, format="json")
        assert response.status_code == 201, response.content

    def send_back():
        barrier.wait()
        response = admin.client().post(f"/api/v1/projects/{project.pk}/tasks/bulk", {"action": "more_rankings"}, format="json")
        assert response.json()["tasks"] == 1

    def wrapped(target, *args):
        try:
            target(*args)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(submit, m, b)) for m, b in leased]
    threads.append(threading.Thread(target=wrapped, args=(send_back,)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    task = RankingTask.objects.get(project=project)
    assert (task.overlap, task.submitted_count, task.active_count, task.is_complete) == (4, 3, 3, False)
    assert rank_next(ann[3], project) is not None  # the one more ranking it was sent back for
    task.refresh_from_db()
    assert (task.submitted_count, task.is_complete) == (4, True)
