"""The judge in the task browser, against hand-built judge data (rows made through the ORM and the
judge's constitution service, no model): the list's `judged` filter (true, false, a bad value named),
its fixed query count, and the task's judge section in the API and on the page, under the same roles."""
from __future__ import annotations

import pytest

from annotation.models import JudgeComparison, JudgeRanking, JudgeRun, Ranking, RankingTask
from annotation.services.judge import constitution_create
from tests.curation.helpers import build
from tests.factories import api_client

pytestmark = pytest.mark.django_db

CONSTITUTION = "- Prefer the correct answer.\n- Prefer the shorter answer.\n"


def judge_run(project, constitution, model: str) -> JudgeRun:
    return JudgeRun.objects.create(project=project, constitution=constitution, backend=JudgeRun.Backend.TRANSFORMERS,
                                   model_name=model, system_prompt="You judge.", prompt_template="{a} {b}", status="succeeded")


def ids_of(task: RankingTask) -> list[int]:
    return sorted(task.responses.values_list("id", flat=True))


@pytest.fixture
def judged():
    """The curation fixture's five tasks; run 1 (constitution v1) ranked 'agree' and 'split', run 2
    (v2) ranked 'split' again and, on 'fight', only failed, so it wrote comparisons but no ranking."""
    cur = build("jdg")
    v1 = constitution_create(project=cur.project, text=CONSTITUTION)
    v2 = constitution_create(project=cur.project, text=CONSTITUTION + "- Prefer kind answers.\n")
    first, second = judge_run(cur.project, v1, "tiny-judge"), judge_run(cur.project, v2, "other-judge")
    a, b, c = ids_of(cur.tasks["split"])
    for run, task in ((first, "agree"), (first, "split"), (second, "split")):
        x, y, z = ids_of(cur.tasks[task])
        JudgeRanking.objects.create(run=run, project=cur.project, task=cur.tasks[task], tiers=[[x], [y, z]],
                                    strengths={str(x): 1.0, str(y): 0.0, str(z): 0.0}, confident=run == first)
    JudgeComparison.objects.create(run=first, task=cur.tasks["split"], response_a_id=a, response_b_id=b,
                                   principle="Prefer the correct answer.", principle_index=0,
                                   p_first=0.9, p_second=0.7, prob_a=0.8, orders_agree=True)
    JudgeComparison.objects.create(run=first, task=cur.tasks["split"], response_a_id=b, response_b_id=c,
                                   principle="Prefer the shorter answer.", principle_index=1,
                                   p_first=0.6, p_second=0.3, prob_a=0.45, orders_agree=False)
    x, y, _ = ids_of(cur.tasks["fight"])
    JudgeComparison.objects.create(run=second, task=cur.tasks["fight"], response_a_id=x, response_b_id=y,
                                   principle="Prefer kind answers.", principle_index=2, failed=True,
                                   failed_text="no letter in the answer")
    cur.runs = (first, second)
    return cur


def listed(client, project, **params) -> list[int]:
    response = client.get(f"/api/v1/projects/{project.pk}/tasks", params)
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


def test_judged_selects_the_tasks_with_a_judge_ranking_and_false_the_others(judged):
    client, p, t = api_client(judged.engineer), judged.project, judged.tasks
    by = lambda *keys: sorted(t[k].pk for k in keys)  # noqa: E731
    assert listed(client, p, judged="true") == by("agree", "split")
    # 'fight' has comparisons (all failed) but no ranking: not judged.
    assert listed(client, p, judged="false") == by("fight", "single", "fresh")
    assert listed(client, p, judged="1", status="complete") == by("agree", "split")
    assert listed(client, p, judged="no", flagged="true") == []
    assert listed(client, p, judged="") == by("agree", "split", "fight", "single", "fresh")  # blank: not set


def test_a_bad_judged_value_is_a_400_naming_judged(judged):
    response = api_client(judged.admin).get(f"/api/v1/projects/{judged.project.pk}/tasks", {"judged": "maybe"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {"judged": ["must be true or false"]} and "judged" in error["message"]
    bulk = api_client(judged.admin).post(f"/api/v1/projects/{judged.project.pk}/tasks/bulk",
                                         {"action": "exclude", "filters": {"judged": "maybe"}}, format="json")
    assert bulk.status_code == 400 and list(bulk.json()["error"]["fields"]) == ["judged"]
    assert not RankingTask.objects.filter(excluded=True).exists()


def test_bulk_actions_take_the_judged_filter(judged):
    response = api_client(judged.admin).post(f"/api/v1/projects/{judged.project.pk}/tasks/bulk",
                                             {"action": "exclude", "filters": {"judged": True}}, format="json")
    assert response.status_code == 200 and response.json()["tasks"] == 2 and response.json()["filters"] == {"judged": "true"}
    assert sorted(RankingTask.objects.filter(excluded=True).values_list("id", flat=True)) == sorted(
        [judged.tasks["agree"].pk, judged.tasks["split"].pk])


def test_the_judged_filter_keeps_the_list_at_three_queries(judged, django_assert_num_queries):
    client = api_client(judged.engineer)
    client.get(f"/api/v1/projects/{judged.project.pk}/tasks")  # warm the session
    for value in ("true", "false"):
        # The caller's project and role, the count, the rows: the EXISTS is inside both.
        with django_assert_num_queries(3):
            assert client.get(f"/api/v1/projects/{judged.project.pk}/tasks", {"judged": value}).status_code == 200


def test_the_task_lists_each_judge_run_with_its_ranking_and_comparisons(judged):
    first, second = judged.runs
    a, b, c = ids_of(judged.tasks["split"])
    body = api_client(judged.engineer).get(f"/api/v1/tasks/{judged.tasks['split'].pk}").json()
    assert [(j["run"], j["model"], j["constitution_version"]) for j in body["judge"]] == [
        (first.pk, "tiny-judge", 1), (second.pk, "other-judge", 2)]
    one, two = body["judge"]
    assert one["tiers"] == [[a], [b, c]] and one["confident"] is True and one["status"] == "succeeded"
    assert one["comparisons"] == [
        {"id": one["comparisons"][0]["id"], "response_a": a, "response_b": b, "principle": "Prefer the correct answer.",
         "principle_index": 0, "p_first": 0.9, "p_second": 0.7, "prob_a": 0.8, "orders_agree": True, "hard_label": False,
         "failed": False, "failed_text": ""},
        {"id": one["comparisons"][1]["id"], "response_a": b, "response_b": c, "principle": "Prefer the shorter answer.",
         "principle_index": 1, "p_first": 0.6, "p_second": 0.3, "prob_a": 0.45, "orders_agree": False, "hard_label": False,
         "failed": False, "failed_text": ""},
    ]
    assert two["tiers"] == [[a], [b, c]] and two["confident"] is False and two["comparisons"] == []
    # A run that only failed on the task: its comparisons, no ranking.
    fight = api_client(judged.admin).get(f"/api/v1/tasks/{judged.tasks['fight'].pk}").json()["judge"]
    assert len(fight) == 1 and fight[0]["run"] == second.pk and fight[0]["tiers"] is None and fight[0]["confident"] is None
    assert fight[0]["comparisons"][0]["failed"] is True and fight[0]["comparisons"][0]["failed_text"] == "no letter in the answer"
    assert fight[0]["comparisons"][0]["prob_a"] is None and fight[0]["comparisons"][0]["orders_agree"] is None
    assert api_client(judged.engineer).get(f"/api/v1/tasks/{judged.tasks['fresh'].pk}").json()["judge"] == []


def test_the_judge_never_touches_the_human_side_of_the_task(judged):
    body = api_client(judged.engineer).get(f"/api/v1/tasks/{judged.tasks['agree'].pk}").json()
    assert body["rankings_count"] == 3 and len(body["rankings"]) == 3 == Ranking.objects.filter(task=judged.tasks["agree"]).count()
    assert body["consensus"]["votes"] == 3


def test_annotators_get_403_and_other_projects_404_as_before(judged):
    from tests.export_factories import make_project, make_user

    annotator = api_client(judged.annotator)
    assert annotator.get(f"/api/v1/projects/{judged.project.pk}/tasks", {"judged": "true"}).status_code == 403
    assert annotator.get(f"/api/v1/tasks/{judged.tasks['split'].pk}").status_code == 403
    stranger = make_user("jdg-stranger")
    make_project("jdg-other", members={stranger: "admin"})
    assert api_client(stranger).get(f"/api/v1/tasks/{judged.tasks['split'].pk}").status_code == 404


def test_the_pages_filter_by_judged_and_show_the_judges_comparisons(judged, client):
    client.force_login(judged.engineer)
    slug, t = judged.project.slug, judged.tasks
    page = client.get(f"/projects/{slug}/tasks/", {"judged": "true"})
    assert sorted(row["id"] for row in page.context["rows"]) == sorted([t["agree"].pk, t["split"].pk])
    assert '<option value="true" selected>judged</option>' in page.content.decode()
    bad = client.get(f"/projects/{slug}/tasks/", {"judged": "maybe"})
    assert bad.status_code == 400 and "<strong>judged</strong>" in bad.content.decode()
    html = client.get(f"/projects/{slug}/tasks/{t['split'].pk}/").content.decode()
    first, second = judged.runs
    assert 'id="judge"' in html and f'id="judge-run-{first.pk}"' in html and f'id="judge-run-{second.pk}"' not in html
    assert "tiny-judge" in html and "constitution v1" in html and "other-judge" in html and "constitution v2" in html
    assert "Ranking: A &gt; B = C" in html and "A vs B" in html and "0.450" in html and "Prefer the shorter answer." in html
    fight = client.get(f"/projects/{slug}/tasks/{t['fight'].pk}/").content.decode()
    assert "none written" in fight and "no letter in the answer" in fight and "failed" in fight
    assert 'id="judge"' not in client.get(f"/projects/{slug}/tasks/{t['fresh'].pk}/").content.decode()
    client.force_login(judged.annotator)
    assert client.get(f"/projects/{slug}/tasks/{t['split'].pk}/").status_code == 403
