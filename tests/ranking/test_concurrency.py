"""Many annotators at once, through the real API on real PostgreSQL: exact overlap, nothing lost.

A small version of bench/serving.py's invariant checks: 20 annotators in 20 threads on 200 tasks,
and one annotator in ten parallel sessions (ten threads, one token).
"""
from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db.models import Count, Q

from annotation.models import Assignment, AssignmentStatus, Ranking, RankingTask
from tests.factories import make_member, make_ranked_project
from tests.threads import run_threads

pytestmark = [pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def assert_invariants(project) -> None:
    # No task above its overlap, and the counters equal the rows they count.
    for task in RankingTask.objects.filter(project=project).annotate(
        live=Count(
            "assignments", filter=Q(assignments__status__in=[AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED]), distinct=True
        ),
        done=Count("assignments", filter=Q(assignments__status=AssignmentStatus.SUBMITTED), distinct=True),
        ranked=Count("rankings", distinct=True),
    ):
        assert task.active_count == task.live <= task.overlap, task
        assert task.submitted_count == task.done == task.ranked, task
        assert task.is_complete == (task.submitted_count >= task.overlap), task
    # No annotator twice on a task, no two rankings of one task by one annotator.
    assert not Assignment.objects.values("task", "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not Ranking.objects.values("task", "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_twenty_annotators_on_two_hundred_tasks_fill_every_task_exactly_to_its_overlap():
    project, _ = make_ranked_project(name="Crowd", tasks=200, k=3, overlap=3)
    people = [make_member(project, f"crowd{i}") for i in range(20)]
    accepted: list[int] = []  # ranking ids answered 201
    lock = threading.Lock()

    def annotate(person, seed):
        rng = random.Random(seed)
        client = person.client()
        while True:
            response = client.get(f"/api/v1/projects/{project.pk}/next-task")
            if response.status_code == 204:
                return
            assert response.status_code == 200, response.content
            task = response.json()
            ids = [r["id"] for r in task["responses"]]
            rng.shuffle(ids)
            if rng.random() < 0.05:  # now and then someone skips: the slot must go back to the pool
                assert client.post(f"/api/v1/assignments/{task['id']}/skip", {"reason": "unsure"}, format="json").status_code == 200
                continue
            result = client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": [[i] for i in ids]}, format="json")
            assert result.status_code == 201, result.content
            with lock:
                accepted.append(result.json()["ranking_id"])

    run_threads(annotate, [(person, i) for i, person in enumerate(people)])

    assert_invariants(project)
    stored = set(Ranking.objects.filter(project=project).values_list("id", flat=True))
    assert stored == set(accepted), "every accepted submission is stored, nothing else is"
    # Enough annotators for everything: every task got exactly its overlap of rankings.
    assert not RankingTask.objects.filter(project=project, is_complete=False).exists()
    assert len(accepted) == 200 * 3
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED).exists()


def test_one_annotator_in_ten_parallel_sessions_never_holds_a_task_twice_nor_ranks_it_twice():
    project, _ = make_ranked_project(name="Tabs", tasks=30, k=3, overlap=2)
    person = make_member(project, "tabby")
    outcomes: Counter = Counter()
    accepted: list[int] = []
    live_seen: list[int] = []
    lock = threading.Lock()

    def tab(seed):
        rng = random.Random(seed)
        client = person.client()
        for _ in range(15):
            response = client.get(f"/api/v1/projects/{project.pk}/next-task")
            if response.status_code == 204:
                return
            task = response.json()
            live = Assignment.objects.filter(project=project, annotator=person.user, status=AssignmentStatus.LEASED).count()
            ids = [r["id"] for r in task["responses"]]
            rng.shuffle(ids)
            result = client.post(
                f"/api/v1/assignments/{task['id']}/submit",
                {"ranking": [[i] for i in ids]},
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"tab{seed}-{task['id']}",
            )
            with lock:
                live_seen.append(live)
                outcomes[result.status_code] += 1
                if result.status_code == 201:
                    accepted.append(result.json()["ranking_id"])
            assert result.status_code in (201, 409), result.content

    run_threads(tab, [(i,) for i in range(10)])

    assert_invariants(project)
    assert max(live_seen) <= 1, "parallel sessions share one lease, they never hold several"
    mine = Ranking.objects.filter(annotator=person.user)
    assert sorted(mine.values_list("id", flat=True)) == sorted(accepted)
    assert mine.count() == mine.values("task").distinct().count()
    assert outcomes[201] == len(accepted) > 0


def test_ten_concurrent_retries_of_one_submission_store_it_once():
    project, _ = make_ranked_project(name="Retry", tasks=1, k=3, overlap=1)
    person = make_member(project, "retrier")
    task = person.client().get(f"/api/v1/projects/{project.pk}/next-task").json()
    body = {"ranking": [[r["id"]] for r in task["responses"]]}
    codes: list[tuple[int, int]] = []
    lock = threading.Lock()

    def retry():
        result = person.client().post(f"/api/v1/assignments/{task['id']}/submit", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
        with lock:
            codes.append((result.status_code, result.json()["ranking_id"]))

    run_threads(retry, [() for _ in range(10)])
    assert sorted(c for c, _ in codes) == [200] * 9 + [201]
    assert len({rid for _, rid in codes}) == 1
    assert Ranking.objects.count() == 1
    assert_invariants(project)


def test_submit_with_next_under_concurrency_fills_every_task_exactly_and_stores_every_accepted_ranking():
    # Eight annotators, one request per ranking (submit?next=true), two of them in three tabs each (twelve sessions).
    project, _ = make_ranked_project(name="One trip", tasks=60, k=3, overlap=3)
    people = [make_member(project, f"trip{i}") for i in range(8)]
    accepted: list[int] = []
    lock = threading.Lock()

    def annotate(person, seed):
        rng = random.Random(seed)
        client = person.client()
        response = client.get(f"/api/v1/projects/{project.pk}/next-task")
        task = response.json() if response.status_code == 200 else None
        while task is not None:
            ids = [r["id"] for r in task["responses"]]
            rng.shuffle(ids)
            result = client.post(f"/api/v1/assignments/{task['id']}/submit?next=true", {"ranking": [[i] for i in ids]},
                                 format="json", HTTP_IDEMPOTENCY_KEY=f"{seed}-{task['id']}")
            assert result.status_code in (201, 409), result.content
            if result.status_code == 409:  # a parallel tab submitted it first: ask next-task, as the page does
                assert result.json()["error"]["reason"] == "already_submitted", result.content
                response = client.get(f"/api/v1/projects/{project.pk}/next-task")
                task = response.json() if response.status_code == 200 else None
                continue
            body = result.json()
            with lock:
                accepted.append(body["ranking_id"])
            assert (body["next"] is None) == (body["next_empty"] is not None)
            task = body["next"]

    tabs = [(people[0], 100 + i) for i in range(3)] + [(people[1], 200 + i) for i in range(3)]
    run_threads(annotate, [(p, i) for i, p in enumerate(people[2:])] + tabs)

    assert_invariants(project)
    assert sorted(Ranking.objects.values_list("id", flat=True)) == sorted(accepted)
    assert all(t.is_complete for t in RankingTask.objects.filter(project=project)), "nobody stopped while work was left"
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED).exists()
