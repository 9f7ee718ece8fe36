"""POST assignments/{id}/submit?next=true: the ranking stored and the next assignment, in one round trip."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation.models import Assignment, AssignmentStatus, Membership, Ranking
from tests.ranking_helpers import SECRET_MODEL, make_member, make_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def in_order(task: dict) -> list[list[str]]:
    return [[r["id"]] for r in task["responses"]]


def first_task(client: APIClient, project) -> dict:
    response = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert response.status_code == 200, response.content
    return response.json()


def submit_next(client: APIClient, task: dict, query: str = "next=true", **headers):
    return client.post(f"/api/v1/assignments/{task['id']}/submit?{query}", {"ranking": in_order(task)}, format="json", **headers)


@pytest.fixture
def setup():
    project, _ = make_project(name="Oneshot", tasks=3, k=3, overlap=1)
    return project, make_member(project, "ann")


def test_submit_with_next_stores_the_ranking_and_answers_the_next_task_payload(setup):
    project, ann = setup
    client = ann.client()
    task = first_task(client, project)
    response = submit_next(client, task)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "submitted" and body["assignment"] == task["id"] and body["next_empty"] is None
    assert Ranking.objects.get(pk=body["ranking_id"]).assignment_id == task["id"]
    following = body["next"]
    # next-task's own payload: a new lease, blinded, with the progress counting the ranking just stored.
    assert set(following) == set(task) and following["id"] != task["id"]
    assert Assignment.objects.get(pk=following["id"]).status == AssignmentStatus.LEASED
    assert following["progress"]["done_total"] == 1
    assert SECRET_MODEL not in response.content.decode()
    # It is what next-task now resumes.
    assert first_task(client, project)["id"] == following["id"]


def test_without_next_the_answer_is_unchanged(setup):
    project, ann = setup
    task = first_task(ann.client(), project)
    response = ann.client().post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": in_order(task)}, format="json")
    assert response.status_code == 201 and "next" not in response.json() and "next_empty" not in response.json()


def test_after_prefetches_the_one_after_the_shown_task(setup):
    project, ann = setup
    client = ann.client()
    shown = first_task(client, project)
    prefetched = client.get(f"/api/v1/projects/{project.pk}/next-task?after={shown['id']}").json()
    body = submit_next(client, shown, f"next=true&after={prefetched['id']}").json()
    # The page shows its prefetched task and gets the one after it: a third, new lease.
    assert body["next"]["id"] not in (shown["id"], prefetched["id"])
    live = Assignment.objects.filter(annotator=ann.user, status=AssignmentStatus.LEASED).count()
    assert live == 2, "at most two live leases: the one shown and the one prefetched"
    # Without after, the live lease is resumed, as next-task does.
    body = submit_next(client, prefetched).json()
    assert body["next"]["id"] not in (shown["id"], prefetched["id"])


def test_nothing_left_is_next_null_with_next_tasks_reason(setup):
    project, ann = setup
    client = ann.client()
    task = first_task(client, project)
    for _ in range(2):
        task = submit_next(client, task).json()["next"]
    body = submit_next(client, task).json()
    assert body["next"] is None
    assert body["next_empty"]["reason"] == "all_done" and body["next_empty"]["message"]
    assert Ranking.objects.count() == 3


def test_a_replayed_retry_gets_the_first_ranking_and_resumes_the_same_next(setup):
    project, ann = setup
    client = ann.client()
    task = first_task(client, project)
    first = submit_next(client, task, HTTP_IDEMPOTENCY_KEY="k-1")
    retry = submit_next(client, task, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == 201 and retry.status_code == 200 and retry.json()["replayed"] is True
    assert retry.json()["ranking_id"] == first.json()["ranking_id"]
    assert retry.json()["next"]["id"] == first.json()["next"]["id"]
    assert Ranking.objects.count() == 1


def test_a_refused_submission_leases_nothing(setup):
    project, ann = setup
    client = ann.client()
    task = first_task(client, project)
    bad = client.post(f"/api/v1/assignments/{task['id']}/submit?next=true", {"ranking": [["r0"]]}, format="json")
    assert bad.status_code == 400 and "ranking" in bad.json()["error"]["fields"]
    assert submit_next(client, task).status_code == 201
    again = submit_next(client, task)
    assert again.status_code == 409 and again.json()["error"]["reason"] == "already_submitted"
    assert Assignment.objects.filter(annotator=ann.user).count() == 2  # the first and the one leased by the 201


@pytest.mark.parametrize("query, field", [("next=maybe", "next"), ("next=true&after=x", "after"), ("next=true&after=0", "after")])
def test_bad_query_values_are_400_naming_the_parameter_and_store_nothing(setup, query, field):
    project, ann = setup
    task = first_task(ann.client(), project)
    response = submit_next(ann.client(), task, query)
    assert response.status_code == 400 and field in response.json()["error"]["fields"]
    assert Ranking.objects.count() == 0


def test_a_member_removed_after_leasing_is_refused_and_nothing_is_stored_or_leased(setup):
    # Removal ends the member's leases and refuses every later call on their assignments (issue 14
    # item 1, annotation.services.projects.membership_remove): with next=true as without.
    project, ann = setup
    task = first_task(ann.client(), project)
    Membership.objects.filter(user=ann.user, project=project).delete()
    response = submit_next(ann.client(), task)
    assert response.status_code == 404 and "error" in response.json()
    assert Ranking.objects.filter(assignment_id=task["id"]).count() == 0
    assert Assignment.objects.filter(annotator=ann.user).count() == 1


def test_a_member_removed_between_the_submission_and_the_lease_gets_no_access_and_no_lease(setup):
    # submit?next reads the project with the submitted assignment and leaves the membership check to
    # the lease's first statement (annotation.services.assignment.assignment_lease_next, member_check):
    # a removal committed in between is answered no_access, and nothing is leased.
    from annotation.services.assignment import assignment_lease_next

    project, ann = setup
    first_task(ann.client(), project)
    Membership.objects.filter(user=ann.user, project=project).delete()
    result = assignment_lease_next(project=project, annotator=ann.user, member_check=True)
    assert result.code == "no_access" and result.message
    assert Assignment.objects.filter(annotator=ann.user).count() == 1
    # Without the check (next-task, which read the membership itself just before) the lease is resumed.
    assert assignment_lease_next(project=project, annotator=ann.user).annotator_id == ann.user.pk


def test_the_progress_read_by_the_lease_equals_a_fresh_count(setup):
    # The lease reads done_counts in its first statement (held_done_counts); the payload's progress
    # must equal what annotator_progress counts on its own.
    from annotation.services.assignment import annotator_progress

    project, ann = setup
    client = ann.client()
    task = first_task(client, project)
    body = submit_next(client, task).json()
    assert body["next"]["progress"] == annotator_progress(project=project, annotator=ann.user)
    assert body["next"]["progress"]["done_total"] == 1 and body["next"]["progress"]["done_today"] == 1
    resumed = first_task(client, project)
    assert resumed["id"] == body["next"]["id"] and resumed["progress"] == body["next"]["progress"]



def test_statements_of_one_round_trip():
    # The hot path's statement budget (issue 16 item 4), counted as the database sees them (BEGIN and
    # COMMIT included): a first ranking of a task costs no agreement statement (the store statement
    # leaves its NULL), a later one a single UPDATE (the store statement read the earlier rankings),
    # and the lease reads the membership and the progress in its lock statement.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.models import RankingTask

    project, _ = make_project(name="Budget", tasks=3, k=3, overlap=2)
    ann, other = make_member(project, "ann"), make_member(project, "ann2")
    task = first_task(ann.client(), project)
    with CaptureQueriesContext(connection) as first:
        assert submit_next(ann.client(), task).json()["next"] is not None
    statements = [q["sql"] for q in first.captured_queries]
    assert not any('"agreement"' in s and "annotation_agreementreport" not in s and "CASE WHEN" not in s for s in statements)
    assert len(statements) <= 12, statements
    second_task = first_task(other.client(), project)
    assert Assignment.objects.get(pk=second_task["id"]).task_id == Assignment.objects.get(pk=task["id"]).task_id
    with CaptureQueriesContext(connection) as second:
        assert submit_next(other.client(), second_task).status_code == 201
    assert len(second.captured_queries) <= 13, [q["sql"] for q in second.captured_queries]
    ranked = RankingTask.objects.get(pk=Assignment.objects.get(pk=task["id"]).task_id)
    assert ranked.submitted_count == 2 and ranked.agreement is not None
