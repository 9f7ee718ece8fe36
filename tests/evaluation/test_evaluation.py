"""Head-to-head evaluation: blinded pairwise tasks of two runs, ranked through the engine, and the report."""
from __future__ import annotations

import json
import random

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Assignment, Evaluation, EvaluationItem, RankingTask, Response
from annotation.services.evaluation import evaluation_create, evaluation_report, length_controlled_win_rate
from annotation.services.projects import project_create
from tests.export_factories import make_run
from tests.ranking_helpers import make_member

pytestmark = [pytest.mark.django_db]


def two_runs(*, prompts: int = 4, overlap: int = 2, name: str = "H2H"):
    admin = make_member(None, f"{name.lower()}-admin")
    project = project_create(name=name, created_by=admin.user, overlap=overlap)
    from annotation.models import Prompt
    from annotation.services.importing import prompt_content_hash

    run_a, run_b = make_run(project, model_name="base-model"), make_run(project, model_name="policy-model")
    for i in range(prompts):
        messages = [{"role": "user", "content": f"Question {i}?"}]
        prompt = Prompt.objects.create(project=project, messages=messages, content_hash=prompt_content_hash(messages))
        for run, text in ((run_a, f"Short {i}."), (run_b, f"A longer answer to question {i}.")):
            for sample in range(2):
                Response.objects.create(prompt=prompt, run=run, sample_index=sample, text=f"{text} (sample {sample})",
                                        model_name=run.model_name)
    return project, admin, run_a, run_b


def rank_all(project, members, choose) -> None:
    """Each member ranks every task they are offered through the API; choose(item, assignment) -> True when B is put first."""
    for member in members:
        client = member.client()
        while True:
            answer = client.get(f"/api/v1/projects/{project.pk}/next-task")
            if answer.status_code == 204:
                break
            task = answer.json()
            assert task["type"] == "ranking" and len(task["responses"]) == 2
            assert "model" not in json.dumps(task)  # blinded: no model name anywhere
            assignment = Assignment.objects.get(pk=task["id"])
            item = EvaluationItem.objects.get(task_id=assignment.task_id)
            opaque = {rid: key for key, rid in assignment.opaque_ids.items()}
            b_first = choose(item, assignment)
            first, second = (item.response_b_id, item.response_a_id) if b_first else (item.response_a_id, item.response_b_id)
            body = {"ranking": [[opaque[first]], [opaque[second]]]}
            assert client.post(f"/api/v1/assignments/{task['id']}/submit", body, format="json").status_code == 201


def test_evaluate_makes_one_blinded_pair_per_prompt_and_the_report_counts_the_votes(capsys):
    project, _, run_a, run_b = two_runs(prompts=4, overlap=2)
    call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_b.pk}")
    assert "4 blinded pairwise tasks" in capsys.readouterr().out
    evaluation = Evaluation.objects.get(project=project)
    items = list(EvaluationItem.objects.filter(evaluation=evaluation).select_related("response_a", "response_b"))
    assert len(items) == 4
    for item in items:
        assert (item.response_a.run_id, item.response_b.run_id) == (run_a.pk, run_b.pk)
        assert set(item.task.responses.values_list("id", flat=True)) == {item.response_a_id, item.response_b_id}
    # Asking again returns the same evaluation (no second set of tasks).
    call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_b.pk}")
    assert Evaluation.objects.count() == 1 and RankingTask.objects.filter(evaluation__isnull=False).count() == 4

    annotators = [make_member(project, name) for name in ("e1", "e2")]
    # e1 prefers B everywhere, e2 prefers B on the first three prompts and A on the last.
    last_prompt = max(item.task.prompt_id for item in items)
    rank_all(project, annotators[:1], lambda item, a: True)
    rank_all(project, annotators[1:], lambda item, a: item.task.prompt_id != last_prompt)
    report = evaluation_report(evaluation=evaluation)
    assert (report["votes"], report["wins_b"], report["wins_a"], report["ties"]) == (8, 7, 1, 0)
    assert report["win_rate"]["value"] == 7 / 8 and report["win_rate"]["n"] == 8
    low, high = report["win_rate"]["ci95"]
    assert 0.5 < low < 7 / 8 < high <= 1  # Wilson on 7 of 8: about [0.529, 0.978]
    assert report["b_better"] is True
    call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_b.pk}", "--report")
    text = capsys.readouterr().out
    assert "B wins 7, A wins 1, ties 0" in text and "7/8 decisive" in text and "length-controlled" in text


def test_a_run_against_itself_gives_an_interval_containing_one_half():
    project, _, run_a, _ = two_runs(prompts=10, overlap=2, name="Self")
    evaluation = evaluation_create(project=project, runs=[run_a.pk, run_a.pk])
    items = EvaluationItem.objects.filter(evaluation=evaluation).select_related("response_a", "response_b")
    assert all(item.response_a.run_id == item.response_b.run_id == run_a.pk and item.response_a_id != item.response_b_id
               for item in items)
    rng = random.Random(11)
    rank_all(project, [make_member(project, "s1"), make_member(project, "s2")], lambda item, a: rng.random() < 0.5)
    report = evaluation_report(evaluation=evaluation)
    assert report["votes"] == 20
    low, high = report["win_rate"]["ci95"]
    assert low < 0.5 < high
    lc_low, lc_high = report["length_controlled"]["ci95"]
    assert lc_low < 0.5 < lc_high and report["b_better"] is False


def test_the_length_controlled_win_rate_removes_a_win_rate_explained_by_length():
    # B longer (x = +1/3): 12 wins, 3 losses; B shorter (x = -1/3): 1 win, 4 losses. Raw: 13 of 20.
    outcomes = [(1.0, 10, 20)] * 12 + [(0.0, 10, 20)] * 3 + [(1.0, 20, 10)] + [(0.0, 20, 10)] * 4
    fitted = length_controlled_win_rate(outcomes)
    assert fitted["value"] == pytest.approx(0.5, abs=2e-3)  # logit: +-log 4 around an intercept of 0
    assert fitted["length_coefficient"] == pytest.approx(3 * 1.386294, rel=1e-2)
    assert length_controlled_win_rate([])["value"] is None


def test_ties_are_counted_and_left_out_of_the_decisive_interval():
    project, _, run_a, run_b = two_runs(prompts=2, overlap=1, name="Ties")
    project.allow_ties = True
    project.save()
    evaluation = evaluation_create(project=project, runs=[run_a.pk, run_b.pk])
    member = make_member(project, "t1")
    client = member.client()
    for _ in range(2):
        task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
        ids = [r["id"] for r in task["responses"]]
        assert client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": [ids]}, format="json").status_code == 201
    report = evaluation_report(evaluation=evaluation)
    assert (report["ties"], report["win_rate"]["n"], report["win_rate"]["value"], report["win_rate_ties_half"]) == (2, 0, None, 0.5)
    assert report["win_rate"]["ci95"] == [0.0, 1.0]


def test_a_run_of_another_project_is_refused_naming_it_and_nothing_is_written():
    project, admin, run_a, _ = two_runs(prompts=2, name="Mine")
    other, _, foreign, _ = two_runs(prompts=2, name="Other")
    tasks_before = RankingTask.objects.count()
    with pytest.raises(CommandError) as raised:
        call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{foreign.pk}")
    assert raised.value.returncode == 2 and f"run {foreign.pk} is not a generation run of project {project.slug}" in str(raised.value)
    for bad in ("3", "a,b", "1,2,3"):
        with pytest.raises(CommandError) as raised:
            call_command("evaluate", project.slug, "--runs", bad)
        assert raised.value.returncode == 2 and "runs" in str(raised.value)
    answer = admin.client().post(f"/api/v1/projects/{project.pk}/evaluations", {"runs": [run_a.pk, foreign.pk]}, format="json")
    assert answer.status_code == 400 and str(foreign.pk) in answer.json()["error"]["fields"]["runs"][0]
    with pytest.raises(CommandError) as raised:
        call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_a.pk + 1}", "--report")
    assert raised.value.returncode == 2
    assert not Evaluation.objects.exists() and RankingTask.objects.count() == tasks_before


def test_runs_without_a_common_prompt_are_refused():
    project, admin, run_a, _ = two_runs(prompts=1, name="Empty")
    empty = make_run(project, model_name="nothing-yet")
    answer = admin.client().post(f"/api/v1/projects/{project.pk}/evaluations", {"runs": [run_a.pk, empty.pk]}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["fields"]["runs"] == ["no prompt has a response of both runs"]


def test_the_api_creates_and_reports_and_annotators_may_not():
    project, admin, run_a, run_b = two_runs(prompts=2, name="Api")
    made = admin.client().post(f"/api/v1/projects/{project.pk}/evaluations", {"runs": [run_a.pk, run_b.pk]}, format="json")
    assert made.status_code == 201 and made.json()["tasks_created"] == 2
    report = admin.client().get(f"/api/v1/projects/{project.pk}/evaluations/{made.json()['id']}/report")
    assert report.status_code == 200 and report.json()["votes"] == 0 and report.json()["win_rate"]["ci95"] == [0.0, 1.0]
    annotator = make_member(project, "nosy")
    assert annotator.client().get(f"/api/v1/projects/{project.pk}/evaluations").status_code == 403
    stranger = make_member(None, "stranger")
    assert stranger.client().get(f"/api/v1/projects/{project.pk}/evaluations/{made.json()['id']}/report").status_code == 404
