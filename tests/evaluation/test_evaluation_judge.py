"""The judge on a head-to-head evaluation (real forward passes of the tiny model): `evaluate --judge`, the
report's `judge` section next to the people's, the API, and bad input that writes nothing."""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.errors import ApplicationError
from annotation.models import Evaluation, EvaluationItem, JudgeComparison, JudgeRanking, JudgeRun, Role, RunStatus
from annotation.services.evaluation import evaluation_create, evaluation_report
from annotation.services.judge import constitution_create, judge_run_create
from tests.evaluation.test_evaluation import rank_all, two_runs
from tests.factories import make_task
from tests.judge.finetune import CONSTITUTION
from tests.ranking_helpers import make_member

pytestmark = [pytest.mark.django_db]


def _is_interval(ci) -> bool:
    return isinstance(ci, list) and len(ci) == 2 and 0.0 <= ci[0] <= ci[1] <= 1.0


def test_evaluate_judge_ranks_only_the_evaluation_tasks_and_the_report_shows_the_judge_beside_the_people(tiny_model_path, capsys):
    project, _, run_a, run_b = two_runs(prompts=3, overlap=1, name="EJ")
    constitution_create(project=project, text=CONSTITUTION)
    evaluation = evaluation_create(project=project, runs=[run_a.pk, run_b.pk])
    rank_all(project, [make_member(project, "ej1")], lambda item, a: True)  # the people: B on every task
    other, _ = make_task(project, "Not part of the evaluation?", ["one", "two"])  # an ordinary task the judge must skip
    runs = f"{run_a.pk},{run_b.pk}"
    call_command("evaluate", project.slug, "--runs", runs, "--judge", "--backend", "transformers",
                 "--model", str(tiny_model_path), "--batch-size", "2")
    out = capsys.readouterr().out
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert f"judge run {run.pk} over its 3 tasks" in out and f"judge run {run.pk} succeeded: 3 tasks ranked" in out
    assert run.params["evaluation"] == evaluation.pk and Evaluation.objects.count() == 1
    task_ids = set(EvaluationItem.objects.filter(evaluation=evaluation).values_list("task_id", flat=True))
    assert set(JudgeRanking.objects.filter(run=run).values_list("task_id", flat=True)) == task_ids
    assert not JudgeComparison.objects.filter(task=other).exists()

    report = evaluation_report(evaluation=evaluation)
    assert (report["votes"], report["wins_b"]) == (3, 3)  # the people's section is unchanged
    judge = report["judge"]
    assert judge["run"]["id"] == run.pk and judge["run"]["evaluation_only"] is True
    counts = [judge[k] for k in ("tasks_judged", "wins_b", "wins_a", "ties", "tasks_with_both")]
    assert all(type(c) is int for c in counts) and judge["tasks_judged"] == 3 == judge["tasks_with_both"]
    assert judge["wins_b"] + judge["wins_a"] + judge["ties"] == 3
    win = judge["win_rate"]
    assert win["n"] == judge["wins_b"] + judge["wins_a"] and win["successes"] == judge["wins_b"] and _is_interval(win["ci95"])
    # The people named B on every task: the judge agrees exactly where it named B.
    assert judge["agreement"]["n"] == win["n"] and judge["agreement"]["count"] == judge["wins_b"]
    assert judge["agreement_with_ties"]["n"] == 3 and judge["agreement_with_ties"]["count"] == judge["wins_b"]
    if win["n"] == 0:
        assert win["value"] is None and win["ci95"] == [0.0, 1.0]
    # Ties are the judge's undecided tasks: orders disagreeing or below judge_confidence.
    undecided = sum(1 for r in JudgeRanking.objects.filter(run=run) if not r.confident or len(r.tiers) == 1)
    assert judge["ties"] == undecided

    call_command("evaluate", project.slug, "--runs", runs, "--report")
    text = capsys.readouterr().out
    assert f"judge (run {run.pk}" in text and f"ties {judge['ties']}" in text and "judge-human agreement:" in text
    call_command("evaluate", project.slug, "--runs", runs, "--report", "--json")
    assert json.loads(capsys.readouterr().out)["judge"]["tasks_judged"] == 3


def test_the_report_has_no_judge_section_before_a_judge_run():
    project, _, run_a, run_b = two_runs(prompts=2, overlap=1, name="EJ0")
    assert evaluation_report(evaluation=evaluation_create(project=project, runs=[run_a.pk, run_b.pk]))["judge"] is None


def test_the_api_starts_a_judge_run_on_an_evaluation_and_the_report_carries_it(tiny_model_path, django_capture_on_commit_callbacks):
    project, admin, run_a, run_b = two_runs(prompts=2, overlap=1, name="EJA")
    evaluation = evaluation_create(project=project, runs=[run_a.pk, run_b.pk])
    url = f"/api/v1/projects/{project.pk}/evaluations/{evaluation.pk}/judge-runs/"
    engineer, annotator = make_member(project, "eja-e", Role.ENGINEER), make_member(project, "eja-a")
    missing = engineer.client().post(url, {"model": str(tiny_model_path)}, format="json")
    assert missing.status_code == 400 and missing.json()["error"]["fields"] == {"constitution": ["the project has no constitution"]}
    constitution_create(project=project, text=CONSTITUTION)
    bad = engineer.client().post(url, {"model": "/nonexistent"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"model": ["no model at this path"]}
    assert not JudgeRun.objects.exists()
    assert annotator.client().post(url, {"model": str(tiny_model_path)}, format="json").status_code == 403
    elsewhere, _, other_a, other_b = two_runs(prompts=1, overlap=1, name="EJB")
    foreign = evaluation_create(project=elsewhere, runs=[other_a.pk, other_b.pk])
    assert engineer.client().post(f"/api/v1/projects/{project.pk}/evaluations/{foreign.pk}/judge-runs/",
                                  {"model": str(tiny_model_path)}, format="json").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):  # the batches run in-process (eager) after the commit
        created = engineer.client().post(url, {"model": str(tiny_model_path)}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["params"]["evaluation"] == evaluation.pk and created.json()["progress"]["tasks_total"] == 2
    report = engineer.client().get(f"/api/v1/projects/{project.pk}/evaluations/{evaluation.pk}/report/").json()
    assert report["judge"]["run"]["id"] == created.json()["id"] and report["judge"]["tasks_judged"] == 2
    assert report["judge"]["tasks_with_both"] == 0 and report["judge"]["agreement"]["n"] == 0  # nobody ranked yet
    assert _is_interval(report["judge"]["win_rate"]["ci95"])


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("no constitution", "has no constitution"),
        ("run of another project", "is not a generation run of project"),
        ("unknown model", "no model at /nonexistent/model"),
        ("no model", "model: required"),
    ],
)
def test_bad_input_exits_2_naming_the_cause_and_writes_nothing(tiny_model_path, case, named):
    project, _, run_a, run_b = two_runs(prompts=2, overlap=1, name="EJX")
    if case != "no constitution":
        constitution_create(project=project, text=CONSTITUTION)
    runs = f"{run_a.pk},{run_b.pk}"
    model = str(tiny_model_path)
    if case == "run of another project":
        _, _, foreign, _ = two_runs(prompts=1, overlap=1, name="EJY")
        runs = f"{run_a.pk},{foreign.pk}"
    elif case == "unknown model":
        model = "/nonexistent/model"
    elif case == "no model":
        model = ""
    with pytest.raises(CommandError) as info:
        call_command("evaluate", project.slug, "--runs", runs, "--judge", "--model", model)
    assert info.value.returncode == 2 and named in str(info.value)
    # Nothing half-written: not even the evaluation the judge would have ranked.
    assert not Evaluation.objects.exists() and not JudgeRun.objects.exists() and not JudgeComparison.objects.exists()


def test_a_judge_run_refuses_an_evaluation_of_another_project(tiny_model_path):
    project, _, run_a, run_b = two_runs(prompts=1, overlap=1, name="EJP")
    constitution_create(project=project, text=CONSTITUTION)
    elsewhere, _, other_a, other_b = two_runs(prompts=1, overlap=1, name="EJQ")
    foreign = evaluation_create(project=elsewhere, runs=[other_a.pk, other_b.pk])
    with pytest.raises(ApplicationError) as info:
        judge_run_create(project=project, backend="transformers", model=str(tiny_model_path), evaluation=foreign, enqueue=False)
    assert "evaluation" in info.value.fields and not JudgeRun.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.needs_redis
@pytest.mark.needs_postgres
def test_evaluate_judge_wait_follows_a_real_worker_to_the_end(celery_worker, tiny_model_path):
    project, _, run_a, run_b = two_runs(prompts=2, overlap=1, name="EJW")
    constitution_create(project=project, text=CONSTITUTION)
    # --wait polls until a final status; run it in a thread so the test has its own generous deadline
    # (a cold worker loads torch and the model first).
    import io
    import threading

    from django.db import connection

    out, failure = io.StringIO(), []

    def command() -> None:
        try:
            call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_b.pk}", "--judge", "--model",
                         str(tiny_model_path), "--batch-size", "1", "--wait", stdout=out, stderr=io.StringIO())
        except BaseException as exc:  # noqa: BLE001  reported by the assertion below
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=command)
    thread.start()
    thread.join(timeout=300)
    assert not thread.is_alive(), ("--wait did not return within 300 s", celery_worker.log_path.read_text()[-3000:])
    assert not failure, failure
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, (run.error, celery_worker.log_path.read_text()[-3000:])
    assert f"judge run {run.pk} succeeded: 2 tasks ranked" in out.getvalue()
    evaluation = Evaluation.objects.get(project=project)
    assert evaluation_report(evaluation=evaluation)["judge"]["tasks_judged"] == 2


@pytest.fixture(scope="module")
def marker_judge(tiny_model_path, tmp_path_factory):
    """The tiny model fine-tuned (real training, tests/judge/finetune.py) to prefer responses carrying MARKER."""
    import torch

    from tests.judge.finetune import train_judge

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared CPU one thread trains the tiny model several times faster
    try:
        return train_judge(tiny_model_path, tmp_path_factory.mktemp("eval-judge") / "marker", rule="marker", steps=60)
    finally:
        torch.set_num_threads(threads)


def test_a_judge_that_prefers_b_counts_its_wins_and_its_agreement_with_people(marker_judge, capsys):
    from annotation.models import Project, Prompt, Response
    from annotation.services.importing import prompt_content_hash
    from tests.export_factories import make_run
    from tests.judge.finetune import MARKED_TEXT, PLAIN_TEXTS, SHORT_TEMPLATE

    project, _, _, _ = two_runs(prompts=0, overlap=1, name="EJM")
    Project.objects.filter(pk=project.pk).update(judge_prompt_template=SHORT_TEMPLATE)
    constitution_create(project=project, text=CONSTITUTION)
    run_a, run_b = make_run(project, model_name="plain"), make_run(project, model_name="marked")
    for i in range(4):
        messages = [{"role": "user", "content": f"question {i}?"}]
        prompt = Prompt.objects.create(project=project, messages=messages, content_hash=prompt_content_hash(messages))
        Response.objects.create(prompt=prompt, run=run_a, sample_index=0, text=PLAIN_TEXTS[i], model_name="plain")
        Response.objects.create(prompt=prompt, run=run_b, sample_index=0, text=MARKED_TEXT, model_name="marked")
    evaluation = evaluation_create(project=project, runs=[run_a.pk, run_b.pk])
    last = max(EvaluationItem.objects.filter(evaluation=evaluation).values_list("task__prompt_id", flat=True))
    rank_all(project, [make_member(project, "ejm1")], lambda item, a: item.task.prompt_id != last)  # B on 3, A on 1
    call_command("evaluate", project.slug, "--runs", f"{run_a.pk},{run_b.pk}", "--judge", "--model", str(marker_judge))
    capsys.readouterr()
    judge = evaluation_report(evaluation=evaluation)["judge"]
    print(f"marker judge on the evaluation: {json.dumps(judge)}")  # figures for the note
    # The judge prefers the marked run B (3 wins and 1 undecided task here, at seed 0).
    assert judge["tasks_judged"] == 4 and judge["wins_b"] >= 2 and judge["wins_b"] > judge["wins_a"]
    # Agreement on exact counts: the person named B on 3 tasks and A on the last.
    rankings = {r.task.prompt_id: r for r in JudgeRanking.objects.select_related("task")}
    items = {i.task.prompt_id: i for i in EvaluationItem.objects.select_related("task")}

    def judge_says(prompt_id: int) -> str:
        r, item = rankings[prompt_id], items[prompt_id]
        if not r.confident or len(r.tiers) == 1:
            return "tie"
        return "b" if r.tiers[0] == [item.response_b_id] else "a"

    said = {pid: judge_says(pid) for pid in rankings}
    people = {pid: "a" if pid == last else "b" for pid in said}
    decided = [pid for pid in said if said[pid] != "tie"]
    assert judge["agreement"]["n"] == len(decided)
    assert judge["agreement"]["count"] == sum(said[pid] == people[pid] for pid in decided)
    # The person never tied, so an undecided judge never agrees with them: the same count over all 4 tasks.
    assert (judge["agreement_with_ties"]["count"], judge["agreement_with_ties"]["n"]) == (judge["agreement"]["count"], 4)
    assert judge["win_rate"]["n"] == len(decided) and judge["win_rate"]["successes"] == judge["wins_b"]
    low, high = judge["win_rate"]["ci95"]
    assert low <= judge["win_rate"]["value"] <= high
