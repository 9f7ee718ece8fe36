"""The ranking API: next-task, submit, skip, heartbeat, gold; bad input, tenants, blinding, idempotency."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.models import Assignment, AssignmentStatus, Ranking, RankingTask
from tests.factories import SECRET_MODEL, import_tasks, make_member, make_ranked_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def next_task(client: APIClient, project) -> dict:
    response = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client: APIClient, assignment_id: int, body: dict, **headers):
    return client.post(f"/api/v1/assignments/{assignment_id}/submit", body, format="json", **headers)


def in_order(task: dict) -> list[list[str]]:
    return [[r["id"]] for r in task["responses"]]


@pytest.fixture
def setup():
    project, admin = make_ranked_project(name="Alpha", tasks=3, k=3, overlap=2)
    ann = make_member(project, "ann")
    return project, admin, ann


def test_next_task_shows_the_prompt_and_blinded_responses_in_display_order(setup):
    project, _, ann = setup
    response = ann.client().get(f"/api/v1/projects/{project.slug}/next-task")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"id", "messages", "responses", "lease_expires_at", "progress"}
    # The contract's fields, plus the server-rendered HTML added beside them (fields are only ever added).
    assert body["messages"] == [{"role": "user", "content": "Question 0?", "content_html": "<p>Question 0?</p>\n"}]
    assert [r["label"] for r in body["responses"]] == ["A", "B", "C"]
    assignment = Assignment.objects.get(pk=body["id"])
    assert [assignment.opaque_ids[r["id"]] for r in body["responses"]] == assignment.display_order
    # Blinding: no model name, no response/run ids, no gold flag anywhere in what is sent.
    raw = response.content.decode()
    assert SECRET_MODEL not in raw and "model" not in raw and "gold" not in raw and "run" not in raw
    assert body["progress"] == {"done_today": 0, "done_total": 0, "left_in_project": 3}


def test_a_full_cycle_counts_progress_and_ends_with_204_and_a_reason(setup):
    project, _, ann = setup
    client = ann.client()
    for done in range(3):
        task = next_task(client, project)
        assert task["progress"]["done_today"] == done
        assert submit(client, task["id"], {"ranking": in_order(task), "rating": 5}).status_code == 201
    response = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert response.status_code == 204
    assert response["X-No-Task-Reason"] == "nothing_for_you"  # overlap 2: others still have work
    other = make_member(project, "other")
    for _ in range(3):
        task = next_task(other.client(), project)
        submit(other.client(), task["id"], {"ranking": in_order(task)})
    done = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert done.status_code == 204 and done["X-No-Task-Reason"] == "all_done"
    assert Ranking.objects.count() == 6
    assert all(t.is_complete and t.submitted_count == 2 for t in RankingTask.objects.all())


def test_submission_stores_real_response_ids_flags_rationale_and_rating(setup):
    project, _, ann = setup
    client = ann.client()
    task = next_task(client, project)
    a, b, c = (r["id"] for r in task["responses"])
    body = {
        "ranking": [[b], [a], [c]],
        "flags": {c: ["harmful", "off_topic"]},
        "rating": 6,
        "rationale": "B is precise.",
        "duration_seconds": 12.5,
    }
    response = submit(client, task["id"], body)
    assert response.status_code == 201, response.content
    stored = Ranking.objects.get()
    shown = Assignment.objects.get(pk=task["id"]).opaque_ids
    assert stored.tiers == [[shown[b]], [shown[a]], [shown[c]]]
    assert stored.flags == {str(shown[c]): ["harmful", "off_topic"]}
    assert (stored.rating, stored.rationale, stored.duration_seconds) == (6, "B is precise.", 12.5)
    assert Assignment.objects.get(pk=task["id"]).status == AssignmentStatus.SUBMITTED


def test_all_bad_marks_every_response(setup):
    project, _, ann = setup
    task = next_task(ann.client(), project)
    assert submit(ann.client(), task["id"], {"ranking": in_order(task), "all_bad": True}).status_code == 201
    assert all(flags == ["all_bad"] for flags in Ranking.objects.get().flags.values())
    assert len(Ranking.objects.get().flags) == 3


BAD_SUBMISSIONS = [
    ("missing ranking", lambda ids: {}, "ranking"),
    ("ranking not a list", lambda ids: {"ranking": "r1>r2"}, "ranking"),
    ("empty tier", lambda ids: {"ranking": [[ids[0]], [], [ids[1]], [ids[2]]]}, "ranking"),
    ("unknown id", lambda ids: {"ranking": [[ids[0]], [ids[1]], ["r999999"]]}, "ranking"),
    ("named twice", lambda ids: {"ranking": [[ids[0]], [ids[0]], [ids[1]], [ids[2]]]}, "ranking"),
    ("one missing", lambda ids: {"ranking": [[ids[0]], [ids[1]]]}, "ranking"),
    ("tie not allowed", lambda ids: {"ranking": [[ids[0], ids[1]], [ids[2]]]}, "ranking"),
    ("unknown flag", lambda ids: {"ranking": [[i] for i in ids], "flags": {ids[0]: ["boring"]}}, "flags"),
    ("flag on unknown id", lambda ids: {"ranking": [[i] for i in ids], "flags": {"r999999": ["harmful"]}}, "flags"),
    ("rating too low", lambda ids: {"ranking": [[i] for i in ids], "rating": 0}, "rating"),
    ("rating too high", lambda ids: {"ranking": [[i] for i in ids], "rating": 8}, "rating"),
    ("rating not a number", lambda ids: {"ranking": [[i] for i in ids], "rating": "good"}, "rating"),
    ("rationale too long", lambda ids: {"ranking": [[i] for i in ids], "rationale": "x" * 10_001}, "rationale"),
    ("negative duration", lambda ids: {"ranking": [[i] for i in ids], "duration_seconds": -1}, "duration_seconds"),
    ("all_bad not a bool", lambda ids: {"ranking": [[i] for i in ids], "all_bad": "maybe"}, "all_bad"),
]


@pytest.mark.parametrize(("case", "make_body", "field"), BAD_SUBMISSIONS, ids=[c[0] for c in BAD_SUBMISSIONS])
def test_bad_submissions_get_400_naming_the_field_and_store_nothing(setup, case, make_body, field):
    project, _, ann = setup
    task = next_task(ann.client(), project)
    ids = [r["id"] for r in task["responses"]]
    response = submit(ann.client(), task["id"], make_body(ids))
    assert response.status_code == 400, (case, response.content)
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["fields"], error
    assert Ranking.objects.count() == 0
    assignment = Assignment.objects.get(pk=task["id"])
    assert assignment.status == AssignmentStatus.LEASED
    assert RankingTask.objects.get(pk=assignment.task_id).submitted_count == 0
    # The same assignment still accepts a correct answer afterwards.
    assert submit(ann.client(), task["id"], {"ranking": [[i] for i in ids]}).status_code == 201


def test_ties_are_accepted_where_the_project_allows_them():
    project, _ = make_ranked_project(name="Ties", tasks=1, allow_ties=True)
    ann = make_member(project, "tie")
    task = next_task(ann.client(), project)
    ids = [r["id"] for r in task["responses"]]
    assert submit(ann.client(), task["id"], {"ranking": [[ids[0], ids[1]], [ids[2]]]}).status_code == 201
    assert len(Ranking.objects.get().tiers[0]) == 2


def test_an_overlong_idempotency_key_is_refused(setup):
    project, _, ann = setup
    task = next_task(ann.client(), project)
    response = submit(ann.client(), task["id"], {"ranking": in_order(task)}, HTTP_IDEMPOTENCY_KEY="k" * 201)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]["fields"]


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(setup):
    project, _, ann = setup
    task = next_task(ann.client(), project)
    first = submit(ann.client(), task["id"], {"ranking": in_order(task), "rationale": "first"}, HTTP_IDEMPOTENCY_KEY="abc-1")
    retry = submit(ann.client(), task["id"], {"ranking": in_order(task)[::-1], "rationale": "second"}, HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json()["ranking_id"] == first.json()["ranking_id"] and retry.json()["replayed"] is True
    other_key = submit(ann.client(), task["id"], {"ranking": in_order(task)}, HTTP_IDEMPOTENCY_KEY="abc-2")
    no_key = submit(ann.client(), task["id"], {"ranking": in_order(task)})
    assert other_key.status_code == 409 and no_key.status_code == 409
    assert no_key.json()["error"]["reason"] == "already_submitted"
    assert Ranking.objects.count() == 1 and Ranking.objects.get().rationale == "first"
    assert RankingTask.objects.get(pk=Assignment.objects.get(pk=task["id"]).task_id).submitted_count == 1


def test_late_submission_is_409_when_the_slot_went_to_someone_else_and_kept_otherwise():
    project, _ = make_ranked_project(name="Late", tasks=1, overlap=1, lease_seconds=60)
    a, b = make_member(project, "late-a"), make_member(project, "late-b")
    first = next_task(a.client(), project)
    # a's lease runs out (state set directly: the clock cannot be waited for in a test).
    Assignment.objects.filter(pk=first["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    taken = next_task(b.client(), project)  # b's claim sweeps a's lease and gets its slot
    assert Assignment.objects.get(pk=taken["id"]).task_id == Assignment.objects.get(pk=first["id"]).task_id
    late = submit(a.client(), first["id"], {"ranking": in_order(first)})
    assert late.status_code == 409 and late.json()["error"]["reason"] == "lease_lost"
    assert Ranking.objects.count() == 0
    # An expired lease whose slot is still free is kept, marked late.
    import_tasks(project, 1, start=1)
    second_lease = next_task(a.client(), project)
    Assignment.objects.filter(pk=second_lease["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    ok = submit(a.client(), second_lease["id"], {"ranking": in_order(second_lease)})
    assert ok.status_code == 201 and ok.json()["late"] is True


def test_skip_with_reason_and_heartbeat(setup):
    project, _, ann = setup
    client = ann.client()
    task = next_task(client, project)
    beat = client.post(f"/api/v1/assignments/{task['id']}/heartbeat")
    assert beat.status_code == 200 and beat.json()["status"] == "leased"
    bad = client.post(f"/api/v1/assignments/{task['id']}/skip", {"reason": "x" * 501}, format="json")
    assert bad.status_code == 400 and "reason" in bad.json()["error"]["fields"]
    skipped = client.post(f"/api/v1/assignments/{task['id']}/skip", {"reason": "not my language"}, format="json")
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    assert Assignment.objects.get(pk=task["id"]).skip_reason == "not my language"
    assert client.post(f"/api/v1/assignments/{task['id']}/heartbeat").status_code == 409
    assert next_task(client, project)["id"] != task["id"]


def test_other_tenants_and_other_annotators_get_404(setup):
    project, _, ann = setup
    other_project, _ = make_ranked_project(name="Beta", tasks=1)
    outsider = make_member(other_project, "outsider")
    assert outsider.client().get(f"/api/v1/projects/{project.pk}/next-task").status_code == 404
    assert outsider.client().get(f"/api/v1/projects/{project.slug}/next-task").status_code == 404
    task = next_task(ann.client(), project)
    colleague = make_member(project, "colleague")
    for who in (outsider, colleague):
        for action in ("submit", "skip", "heartbeat"):
            response = who.client().post(f"/api/v1/assignments/{task['id']}/{action}", {"ranking": in_order(task)}, format="json")
            assert response.status_code == 404, (who.user.username, action)
    assert Ranking.objects.count() == 0 and Assignment.objects.get(pk=task["id"]).status == AssignmentStatus.LEASED
    assert APIClient().get(f"/api/v1/projects/{project.pk}/next-task").status_code in (401, 403)


def test_marking_gold_is_for_project_admins_only(setup):
    project, admin, ann = setup
    task = RankingTask.objects.filter(project=project).first()
    ids = list(task.responses.order_by("id").values_list("id", flat=True))
    body = {"gold_ranking": [[ids[1]], [ids[0]], [ids[2]]]}
    url = f"/api/v1/tasks/{task.pk}/gold/"
    engineer = make_member(project, "eng", role="engineer")
    _, other_admin = make_ranked_project(name="Gamma", tasks=1)
    assert ann.client().post(url, body, format="json").status_code == 403
    assert engineer.client().post(url, body, format="json").status_code == 403
    assert other_admin.client().post(url, body, format="json").status_code == 404
    bad = admin.client().post(url, {"gold_ranking": [[ids[0]]]}, format="json")
    assert bad.status_code == 400 and "gold_ranking" in bad.json()["error"]["fields"]
    ok = admin.client().post(url, body, format="json")
    assert ok.status_code == 200 and ok.json()["is_gold"] is True
    task.refresh_from_db()
    assert task.is_gold and task.gold_ranking == [[ids[1]], [ids[0]], [ids[2]]]
    assert admin.client().post(url, {"gold_ranking": None}, format="json").json()["is_gold"] is False


def test_the_schema_describes_the_ranking_endpoints(setup):
    _, admin, _ = setup
    response = admin.client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"] if response["Content-Type"].startswith("application/json") else response.content.decode()
    for fragment in ("next-task", "/submit", "/skip", "/heartbeat", "/gold/"):
        assert any(fragment in p for p in paths), fragment


def test_the_page_can_prefetch_one_task_after_the_current_one(setup):
    project, _, ann = setup
    client = ann.client()
    current = next_task(client, project)
    prefetched = client.get(f"/api/v1/projects/{project.pk}/next-task?after={current['id']}").json()
    assert prefetched["id"] != current["id"]
    # Asking again gives the same two, never a third lease.
    assert next_task(client, project)["id"] == current["id"]
    assert client.get(f"/api/v1/projects/{project.pk}/next-task?after={current['id']}").json()["id"] == prefetched["id"]
    assert client.get(f"/api/v1/projects/{project.pk}/next-task?after={prefetched['id']}").json()["id"] == current["id"]
    assert Assignment.objects.filter(annotator=ann.user, status=AssignmentStatus.LEASED).count() == 2
    assert submit(client, current["id"], {"ranking": in_order(current)}).status_code == 201
    assert next_task(client, project)["id"] == prefetched["id"]
    bad = client.get(f"/api/v1/projects/{project.pk}/next-task?after=abc")
    assert bad.status_code == 400 and "after" in bad.json()["error"]["fields"]
