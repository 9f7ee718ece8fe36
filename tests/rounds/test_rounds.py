"""Rounds with lineage: base model -> run -> tasks -> rankings -> export -> jobs -> the job's policy -> run -> ...

Two rounds are built through the services (runs, tasks, rankings, an evaluation); the reward job's
model is the tiny local model with a scalar head, so the mean reward is a real forward pass.
"""
from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from annotation.models import ExportSnapshot, JobStatus, Prompt, RankingTask, Response, TrainingJob
from annotation.services.evaluation import evaluation_create
from annotation.services.importing import prompt_content_hash
from annotation.services.projects import project_create
from annotation.services.rounds import rounds_of_project
from annotation.services.tasks import tasks_create_for_prompts
from annotation.services.training import training_job_model_dir
from tests.export_factories import make_run, make_user, rank

pytestmark = [pytest.mark.django_db]


def responses_for(run, prompts, texts):
    for prompt in prompts:
        for sample, text in enumerate(texts):
            Response.objects.create(prompt=prompt, run=run, sample_index=sample, text=f"{text} ({prompt.pk})",
                                    model_name=run.model_name, token_count=len(text.split()))
    tasks_create_for_prompts(project=run.project, prompt_ids=[p.pk for p in prompts], run=run)


def save_reward_model(job, tiny_model_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    out = training_job_model_dir(job)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return model, tokenizer


def two_rounds(tiny_model_path, *, b_wins: int, a_wins: int):
    project = project_create(name="Rounds", overlap=1)
    annotator = make_user("r-ann")
    prompts = []
    for i in range(6):
        messages = [{"role": "user", "content": f"Question {i}?"}]
        prompts.append(Prompt.objects.create(project=project, messages=messages, content_hash=prompt_content_hash(messages)))
    base = make_run(project, model_name="base-model")
    responses_for(base, prompts, ["Short.", "Also short."])
    for task in RankingTask.objects.filter(project=project):
        ids = sorted(task.responses.values_list("id", flat=True))
        rank(task, annotator, [[ids[0]], [ids[1]]])
    export = ExportSnapshot.objects.create(project=project, format="pairs", status=JobStatus.SUCCEEDED)
    reward = TrainingJob.objects.create(project=project, kind="reward", export=export, status=JobStatus.SUCCEEDED,
                                        finished_at=timezone.now())
    model, tokenizer = save_reward_model(reward, tiny_model_path)
    dpo = TrainingJob.objects.create(project=project, kind="dpo", export=export, status=JobStatus.SUCCEEDED,
                                     finished_at=timezone.now())
    policy = make_run(project, model_name=str(training_job_model_dir(dpo)), source_training_job=dpo)
    responses_for(policy, prompts, ["A much longer and better answer.", "Another long answer here."])
    evaluation = evaluation_create(project=project, runs=[base.pk, policy.pk])
    judge = make_user("r-judge")
    for n, item in enumerate(evaluation.items.select_related("task")):
        if n < b_wins:
            rank(item.task, judge, [[item.response_b_id], [item.response_a_id]])
        elif n < b_wins + a_wins:
            rank(item.task, judge, [[item.response_a_id], [item.response_b_id]])
    return dict(project=project, base=base, policy=policy, export=export, reward=reward, dpo=dpo, evaluation=evaluation,
                model=model, tokenizer=tokenizer, prompts=prompts)


def test_the_lineage_of_two_rounds(tiny_model_path):
    world = two_rounds(tiny_model_path, b_wins=6, a_wins=0)
    result = rounds_of_project(project=world["project"])
    assert [r["round"] for r in result["rounds"]] == [1, 2] and result["reward_job"] == world["reward"].pk
    first, second = result["rounds"]
    assert first["policy"] == {"kind": "base_model", "model": "base-model"}
    assert [r["id"] for r in first["generation_runs"]] == [world["base"].pk]
    assert (first["tasks"], first["rankings"], first["demonstrations"]) == (6, 6, 0)
    assert [e["id"] for e in first["exports"]] == [world["export"].pk]
    assert [j["id"] for j in first["training_jobs"]] == [world["reward"].pk, world["dpo"].pk]
    assert first["head_to_head"] is None and first["promoted"] is None

    assert second["policy"]["kind"] == "training_job" and second["policy"]["training_job"] == world["dpo"].pk
    assert second["parent_round"] == 1
    assert [r["id"] for r in second["generation_runs"]] == [world["policy"].pk]
    assert (second["tasks"], second["rankings"], second["exports"], second["training_jobs"]) == (6, 0, [], [])
    texts = list(Response.objects.filter(run=world["policy"]).values_list("text", flat=True))
    assert second["mean_response_chars"] == pytest.approx(sum(map(len, texts)) / len(texts))
    h2h = second["head_to_head"]
    assert h2h["evaluation"] == world["evaluation"].pk and (h2h["wins"], h2h["losses"], h2h["ties"]) == (6, 0, 0)
    assert h2h["win_rate"]["value"] == 1.0 and h2h["win_rate"]["ci95"][0] > 0.5 and second["promoted"] is True

    # The mean reward is the reward model's own scores of the round's responses (real forward passes).
    from training.evaluation import reward_scores

    rows = Response.objects.filter(run=world["policy"]).order_by("id").values_list("text", "prompt__messages")
    expected = reward_scores(world["model"], world["tokenizer"], [[*m, {"role": "assistant", "content": t}] for t, m in rows])
    assert second["mean_reward"]["value"] == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    assert second["mean_reward"]["n"] == 12 and second["mean_reward"]["reward_job"] == world["reward"].pk
    assert [e["evaluation"] for e in result["evaluations"]] == [world["evaluation"].pk]


def test_a_policy_is_not_promoted_when_its_interval_reaches_one_half(tiny_model_path, capsys):
    world = two_rounds(tiny_model_path, b_wins=2, a_wins=1)
    second = rounds_of_project(project=world["project"], with_reward=False)["rounds"][1]
    low, high = second["head_to_head"]["win_rate"]["ci95"]
    assert low < 0.5 < high and second["promoted"] is False and second["mean_reward"] is None
    call_command("rounds", world["project"].slug, "--no-reward")
    text = capsys.readouterr().out
    assert "Round 2: policy training job" in text and "not promoted" in text and "2 wins, 1 losses" in text
    call_command("rounds", world["project"].slug, "--json", "--no-reward")
    assert json.loads(capsys.readouterr().out)["rounds"][1]["promoted"] is False


def test_rounds_of_an_unknown_project_exit_2_and_a_project_without_runs_has_none(capsys):
    with pytest.raises(CommandError) as raised:
        call_command("rounds", "no-such-project")
    assert raised.value.returncode == 2 and "no-such-project" in str(raised.value)
    project = project_create(name="Empty rounds")
    call_command("rounds", project.slug)
    assert "no generation runs yet" in capsys.readouterr().out


def test_the_rounds_page_shows_the_chain_and_only_engineers_open_it(tiny_model_path, client):
    from annotation.models import Role
    from annotation.services.projects import membership_add

    world = two_rounds(tiny_model_path, b_wins=6, a_wins=0)
    engineer, annotator = make_user("r-eng"), make_user("r-annot")
    membership_add(project=world["project"], user=engineer, role=Role.ENGINEER)
    membership_add(project=world["project"], user=annotator, role=Role.ANNOTATOR)
    url = f"/projects/{world['project'].slug}/rounds/"
    client.force_login(engineer)
    assert "not computed yet" in client.get(url).content.decode()  # the page never loads the reward model itself
    rounds_of_project(project=world["project"])  # as the command does: computes and caches the mean rewards
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    reward = rounds_of_project(project=world["project"], reward_cached_only=True)["rounds"][1]["mean_reward"]["value"]
    assert reward is not None and f"{reward:.3f}" in html
    assert "base model <code>base-model</code>" in html and f"training job {world['dpo'].pk}</a> (round 1)" in html
    assert "6–0 (0 ties)" in html and "promoted</strong>" in html
    assert 'data-testid="evaluations"' in html and "6/6 = 1.000" in html
    assert [item["key"] for item in page.context["project_nav"]][-1] == "rounds"
    client.force_login(annotator)
    assert client.get(url).status_code == 403
    client.force_login(make_user("r-stranger"))
    assert client.get(url).status_code == 404
