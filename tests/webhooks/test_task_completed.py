"""task.completed: sent for the submission that gives a task its required rankings, once per task.

"Completed" is the submit transaction's counter update leaving `is_complete` true (today: the
overlap-th ranking of a non-gold task; the update takes the task row's lock, so concurrent
submissions are ordered and exactly one of them is the overlap-th). The unique
(webhook, event, object) constraint makes "once" hold however the task gets there.
"""
from __future__ import annotations

import json
import random
import threading
import time

import pytest

from annotation.models import RankingTask, WebhookDelivery
from annotation.services.assignment import task_set_gold
from annotation.services.webhooks import webhook_create
from tests.factories import make_member, make_ranked_project, next_task_retrying_gold_draws
from tests.threads import run_threads

pytestmark = [pytest.mark.needs_postgres]


def next_task(client, project) -> dict:
    response = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, task: dict):
    ids = [r["id"] for r in task["responses"]]
    return client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": [[i] for i in ids]}, format="json")


def wait_all_finished(count: int, timeout: float = 240.0) -> list[WebhookDelivery]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(WebhookDelivery.objects.all())
        if len(rows) >= count and all(row.status != "pending" for row in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"deliveries not finished: {[(r.pk, r.status, r.last_error) for r in WebhookDelivery.objects.all()]}")


@pytest.mark.django_db
def test_only_the_submission_that_reaches_the_overlap_records_the_event(allow_private, receiver):
    project, admin = make_ranked_project(name="Three", tasks=1, k=3, overlap=3)
    webhook_create(project=project, data={"url": receiver.url(), "events": ["task.completed"]})
    people = [make_member(project, f"p{i}") for i in range(3)]
    task_id = RankingTask.objects.get(project=project).pk
    for done, person in enumerate(people, start=1):
        assert submit(person.client(), next_task(person.client(), project)).status_code == 201
        expected = [task_id] if done == 3 else []
        assert list(WebhookDelivery.objects.values_list("object_id", flat=True)) == expected, done
    delivery = WebhookDelivery.objects.get()
    assert (delivery.event, delivery.object_type) == ("task.completed", "task")


@pytest.mark.django_db
def test_a_gold_task_never_completes_and_unmarking_it_completes_it_once(allow_private, receiver):
    project, admin = make_ranked_project(name="Golden", tasks=1, k=3, overlap=2, gold_rate=0.99)
    webhook_create(project=project, data={"url": receiver.url(), "events": ["task.completed"]})
    task = RankingTask.objects.get(project=project)
    ids = list(task.responses.order_by("id").values_list("id", flat=True))
    task_set_gold(task=task, gold_ranking=[[i] for i in ids])
    for i in range(3):  # gold tasks are not limited by the overlap
        person = make_member(project, f"g{i}")
        assert submit(person.client(), next_task_retrying_gold_draws(person.client(), project)).status_code == 201
    assert not WebhookDelivery.objects.exists()
    task_set_gold(task=task, gold_ranking=None)  # 3 rankings >= overlap 2: complete now
    assert list(WebhookDelivery.objects.values_list("object_id", flat=True)) == [task.pk]
    task_set_gold(task=task, gold_ranking=[[i] for i in ids])
    task_set_gold(task=task, gold_ranking=None)  # complete again, but it was already reported
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.slow
@pytest.mark.needs_redis
@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_record_and_deliver_each_completion_once(allow_private, receiver, webhook_worker):
    """Three annotators hold each task and submit at the same instant (a barrier), round after round;
    then a crowd of nine takes the rest. Two webhooks: each hears of every task exactly once."""
    project, admin = make_ranked_project(name="Race", tasks=16, k=3, overlap=3)
    first = webhook_create(project=project, data={"url": receiver.url("/a"), "events": ["task.completed"]})
    second = webhook_create(project=project, data={"url": receiver.url("/b"), "events": ["task.completed", "export.failed"]})
    webhook_create(project=project, data={"url": receiver.url("/c"), "events": ["export.failed"]})  # not subscribed
    trio = [make_member(project, f"race{i}") for i in range(3)]

    for _ in range(6):  # six rounds: the same task leased to all three, then three simultaneous submits
        held = [next_task(person.client(), project) for person in trio]
        assert len({frozenset(r["content"] for r in t["responses"]) for t in held}) == 1  # the same task
        barrier = threading.Barrier(3)
        results: list[int] = []

        def race(person, task, barrier=barrier, results=results):
            client = person.client()
            barrier.wait(timeout=60)
            results.append(submit(client, task).status_code)

        run_threads(race, list(zip(trio, held, strict=True)))
        assert results == [201, 201, 201]

    crowd = trio + [make_member(project, f"crowd{i}") for i in range(6)]

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
            result = client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": [[i] for i in ids]}, format="json")
            assert result.status_code == 201, result.content

    run_threads(annotate, [(person, seed) for seed, person in enumerate(crowd)])

    tasks = list(RankingTask.objects.filter(project=project))
    assert all(t.is_complete and t.submitted_count == 3 for t in tasks)
    task_ids = sorted(t.pk for t in tasks)
    rows = wait_all_finished(2 * len(tasks))
    for hook in (first, second):
        mine = [r for r in rows if r.webhook_id == hook.pk]
        assert sorted(r.object_id for r in mine) == task_ids  # every task once, none twice
        assert all(r.event == "task.completed" and r.status == "delivered" and r.attempts == 1 for r in mine)
    assert len(rows) == 2 * len(tasks)
    received = receiver.wait_for(2 * len(tasks))
    by_path = {path: sorted(json.loads(r.body)["object_id"] for r in received if r.path == path) for path in ("/a", "/b", "/c")}
    assert by_path == {"/a": task_ids, "/b": task_ids, "/c": []}


@pytest.mark.django_db(transaction=True)
def test_the_submission_does_not_wait_for_the_receiver(allow_private, receiver):
    """Without a broker the delivery runs in a background thread: the submit answers while the
    receiver still holds the delivery's request open (it answers only when the test lets it)."""
    allow_private.WEBHOOK_TIMEOUT_SECONDS = 600
    allow_private.WEBHOOK_MAX_ATTEMPTS = 1
    receiver.script = ["hang"]
    project, admin = make_ranked_project(name="Patient", tasks=1, k=3, overlap=1)
    webhook_create(project=project, data={"url": receiver.url(), "events": ["task.completed"]})
    person = make_member(project, "quick")
    assert submit(person.client(), next_task(person.client(), project)).status_code == 201
    assert len(receiver.wait_for(1)) == 1
    assert receiver.hanging == 1  # the answer came back while the receiver had not answered
    receiver.release.set()
    (row,) = wait_all_finished(1)
    assert row.status == "failed" and row.attempts == 1  # the receiver hung up without answering
