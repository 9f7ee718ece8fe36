"""The task browser's API against hand-built data: every filter and ordering, bad values named,
role rules (annotator 403, other project 404, engineers see pseudonyms), the task's whole story,
and the curation actions one task at a time and on a filtered selection."""
from __future__ import annotations

import pytest

from annotation.models import RankingTask, Role
from tests.curation.helpers import build
from tests.export_factories import make_project, make_user
from tests.factories import api_client

pytestmark = pytest.mark.django_db


def listed(client, project, **params) -> list[int]:
    response = client.get(f"/api/v1/projects/{project.pk}/tasks", params)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def cur():
    return build()


def test_each_filter_selects_exactly_the_hand_built_tasks(cur):
    client, p, t = api_client(cur.engineer), cur.project, cur.tasks
    ids = {key: task.pk for key, task in t.items()}
    by = lambda *keys: sorted(ids[k] for k in keys)  # noqa: E731
    assert sorted(listed(client, p)) == by("agree", "split", "fight", "single", "fresh")
    assert sorted(listed(client, p, status="complete")) == by("agree", "split")
    assert sorted(listed(client, p, status="in_progress")) == by("fight", "single")
    assert sorted(listed(client, p, status="open")) == by("fresh")
    assert sorted(listed(client, p, gold="true")) == by("fresh")
    assert sorted(listed(client, p, gold="false")) == by("agree", "split", "fight", "single")
    assert sorted(listed(client, p, flagged="true")) == by("split")
    assert sorted(listed(client, p, flagged="false")) == by("agree", "fight", "single", "fresh")
    assert sorted(listed(client, p, agreement_lt="0.5")) == by("split", "fight")
    assert sorted(listed(client, p, agreement_gt="0.2")) == by("split", "agree")
    assert sorted(listed(client, p, agreement_gt="0.2", agreement_lt="0.9")) == by("split")
    assert sorted(listed(client, p, rankings="3")) == by("agree", "split")
    assert sorted(listed(client, p, rankings="0")) == by("fresh")
    assert sorted(listed(client, p, run=str(cur.run_id))) == by("fresh")


def test_orderings_put_the_least_agreed_first_newest_first_and_highest_priority_first(cur):
    client, p, t = api_client(cur.engineer), cur.project, cur.tasks
    ids = {key: task.pk for key, task in t.items()}
    assert listed(client, p, ordering="agreement") == [ids[k] for k in ("fight", "split", "agree", "single", "fresh")]
    assert listed(client, p, ordering="-created_at") == [ids[k] for k in ("fresh", "single", "fight", "split", "agree")]
    assert listed(client, p, ordering="-priority") == [ids[k] for k in ("agree", "split", "fresh", "fight", "single")]


def test_each_item_has_status_gold_count_agreement_and_the_prompts_first_line(cur):
    rows = api_client(cur.admin).get(f"/api/v1/projects/{cur.project.pk}/tasks", {"ordering": "agreement", "limit": 2}).json()
    assert rows["count"] == 5 and rows["next"]
    first, second = rows["results"]
    assert first["id"] == cur.tasks["fight"].pk and first["agreement"] == 0.0 and first["status"] == "in_progress"
    assert first["rankings"] == 2 and first["is_gold"] is False and first["prompt_first_line"] == "Write a haiku about databases."
    assert second["agreement"] == pytest.approx(1 / 3, abs=1e-6)
    agree = listed(api_client(cur.admin), cur.project, rankings="3", agreement_gt="0.9")
    assert agree == [cur.tasks["agree"].pk]
    row = api_client(cur.admin).get(f"/api/v1/projects/{cur.project.pk}/tasks", {"agreement_gt": "0.9"}).json()["results"][0]
    assert row["prompt_first_line"] == "How do I sort a list in Python?"  # the first line only


@pytest.mark.parametrize(("param", "value"), [
    ("status", "done"), ("gold", "maybe"), ("flagged", "2"), ("agreement_lt", "abc"), ("agreement_gt", "1.5"),
    ("agreement_lt", "nan"), ("rankings", "-1"), ("rankings", "٣"), ("run", "x"), ("run", "999999"), ("ordering", "id"),
    ("q", "x" * 201), ("limit", "0"),
])
def test_a_bad_filter_value_is_a_400_naming_the_parameter(cur, param, value):
    response = api_client(cur.engineer).get(f"/api/v1/projects/{cur.project.pk}/tasks", {param: value})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [param]


def test_a_run_of_another_project_is_refused_by_name(cur):
    other = build("other")
    response = api_client(cur.engineer).get(f"/api/v1/projects/{cur.project.pk}/tasks", {"run": other.run_id})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["run"] == [f"no generation run {other.run_id} in this project"]


def test_annotators_get_403_and_outsiders_404_everywhere(cur):
    outsider = make_user("outsider")
    make_project("elsewhere", members={outsider: Role.ADMIN})
    task = cur.tasks["split"].pk
    reads = [f"/api/v1/projects/{cur.project.pk}/tasks", f"/api/v1/tasks/{task}"]
    for url in reads:
        assert api_client(cur.annotator).get(url).status_code == 403
        assert api_client(outsider).get(url).status_code == 404
    writes = [(f"/api/v1/tasks/{task}/more-rankings", {}), (f"/api/v1/tasks/{task}/priority", {"priority": 3}),
              (f"/api/v1/tasks/{task}/excluded", {"excluded": True}),
              (f"/api/v1/projects/{cur.project.pk}/tasks/bulk", {"action": "exclude"})]
    for url, body in writes:
        assert api_client(cur.annotator).post(url, body, format="json").status_code == 403
        assert api_client(cur.engineer).post(url, body, format="json").status_code == 403  # engineers read only
        assert api_client(outsider).post(url, body, format="json").status_code == 404
    assert api_client(outsider).get("/api/v1/tasks/999999999").json()["error"]["message"] == "Task not found."
    assert RankingTask.objects.get(pk=task).excluded is False and RankingTask.objects.get(pk=task).overlap == 3


def test_the_task_shows_everything_with_real_names_for_admins_and_pseudonyms_for_engineers(cur):
    task = cur.tasks["split"]
    as_admin = api_client(cur.admin).get(f"/api/v1/tasks/{task.pk}").json()
    as_engineer = api_client(cur.engineer).get(f"/api/v1/tasks/{task.pk}").json()
    assert [r["annotator"] for r in as_admin["rankings"]] == ["cur-r0", "cur-r1", "cur-r2"]
    pseudonyms = [r["annotator"] for r in as_engineer["rankings"]]
    assert len(set(pseudonyms)) == 3 and not any("cur-r" in name for name in pseudonyms)
    assert str(as_engineer).count("cur-r") == 0
    paris, lyon, marseille = (r["id"] for r in as_admin["responses"])
    assert as_admin["prompt"]["messages"][0]["content"] == "What is the capital of France?"
    assert as_admin["responses"][0] | {} == {"id": paris, "text": "Paris.", "run": None, "run_model": None, "model": "", "sample_index": 0,
                                             "token_count": 1, "finish_reason": "stop", "prompt_truncated": False}
    third = as_admin["rankings"][2]
    assert third["flags"] == {str(marseille): ["factual_error"]} and third["rationale"] == "third one is wrong"
    assert third["duration_seconds"] == 12.5 and third["tiers"] == [[marseille], [lyon], [paris]]
    assert as_admin["consensus"]["tiers"] == [[paris], [lyon], [marseille]] and as_admin["consensus"]["votes"] == 3
    bt = as_admin["consensus"]["bradley_terry"]
    assert bt[str(paris)] > bt[str(lyon)] > bt[str(marseille)]
    assert as_admin["agreement"] == pytest.approx(1 / 3, abs=1e-6) and as_admin["status"] == "complete"
    fresh = api_client(cur.engineer).get(f"/api/v1/tasks/{cur.tasks['fresh'].pk}").json()
    assert fresh["is_gold"] and fresh["rankings"] == [] and fresh["responses"][0]["run"] == cur.run_id
    assert fresh["responses"][0]["run_model"] == "tiny-llama" and fresh["agreement"] is None


def test_more_rankings_raises_the_overlap_and_reopens_a_complete_task(cur):
    task = cur.tasks["agree"]  # 3 rankings, overlap 3, complete
    body = api_client(cur.admin).post(f"/api/v1/tasks/{task.pk}/more-rankings").json()
    assert body["overlap"] == 4 and body["is_complete"] is False and body["rankings_count"] == 3
    row = RankingTask.objects.get(pk=task.pk)
    assert (row.overlap, row.submitted_count, row.is_complete) == (4, 3, False)


def test_priority_and_exclusion_of_one_task(cur):
    task = cur.tasks["fight"]
    client = api_client(cur.admin)
    assert client.post(f"/api/v1/tasks/{task.pk}/priority", {"priority": 9}, format="json").json()["priority"] == 9
    bad = client.post(f"/api/v1/tasks/{task.pk}/priority", {"priority": "high"}, format="json")
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["priority"]
    assert client.post(f"/api/v1/tasks/{task.pk}/excluded", {"excluded": True}, format="json").json()["excluded"] is True
    assert RankingTask.objects.get(pk=task.pk).priority == 9
    assert listed(client, cur.project, excluded="true") == [task.pk]


def test_bulk_actions_change_exactly_the_filtered_selection(cur):
    client, url = api_client(cur.admin), f"/api/v1/projects/{cur.project.pk}/tasks/bulk"
    body = client.post(url, {"action": "more_rankings", "filters": {"agreement_lt": 0.5}}, format="json").json()
    assert body["tasks"] == 2 and body["filters"] == {"agreement_lt": "0.5"}
    overlaps = dict(RankingTask.objects.filter(project=cur.project).values_list("id", "overlap"))
    assert overlaps == {t.pk: 4 if key in ("split", "fight") else 3 for key, t in cur.tasks.items()}
    assert RankingTask.objects.get(pk=cur.tasks["split"].pk).is_complete is False
    # 'split' was reopened by the first action, so it is in progress now too.
    assert client.post(url, {"action": "priority", "priority": 7, "filters": {"status": "in_progress"}}, format="json").json()["tasks"] == 3
    assert sorted(RankingTask.objects.filter(priority=7).values_list("id", flat=True)) == sorted(
        [cur.tasks["split"].pk, cur.tasks["fight"].pk, cur.tasks["single"].pk])
    assert client.post(url, {"action": "exclude", "filters": {"flagged": True}}, format="json").json()["tasks"] == 1
    assert list(RankingTask.objects.filter(excluded=True).values_list("id", flat=True)) == [cur.tasks["split"].pk]
    for bad, field in [({"action": "delete"}, "action"), ({"action": "priority", "priority": 2**40}, "priority"),
                       ({"action": "exclude", "filters": {"status": "nope"}}, "status")]:
        response = client.post(url, bad, format="json")
        assert response.status_code == 400 and list(response.json()["error"]["fields"]) == [field], response.content
    assert RankingTask.objects.filter(excluded=True).count() == 1  # nothing half-done by a refused request


def test_the_task_takes_the_same_number_of_queries_whatever_its_rankings(cur, django_assert_num_queries):
    client = api_client(cur.engineer)
    # The task, the caller's project and role, the responses with their runs, the rankings with their
    # annotators, the judge's comparisons and rankings (each with its run and constitution).
    for key in ("fresh", "single", "split"):
        with django_assert_num_queries(6):
            assert client.get(f"/api/v1/tasks/{cur.tasks[key].pk}").status_code == 200
