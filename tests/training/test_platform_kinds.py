"""The training kinds in the platform: `train --kind ...` and the API, the RL step on the project's prompts
against a reward job, policies as the next job's base and the next round's generation model, bad input."""
from __future__ import annotations

import json
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import ExportSnapshot, GenerationRun, JobStatus, TrainingJob
from annotation.services.training import training_job_create, training_job_run
from tests.factories import api_client, make_project, make_user
from tests.generation_helpers import add_prompts, numbered_prompts
from training.synthetic import synthetic_export

pytestmark = [pytest.mark.django_db]

FAST = {"max_steps": 3, "learning_rate": 3e-3, "eval_steps": 0, "per_device_batch_size": 8}


def make_export(project, *, train_prompts: int = 24, test_prompts: int = 8) -> ExportSnapshot:
    """A succeeded snapshot row whose directory holds a synthetic `pairs` export."""
    snapshot = ExportSnapshot.objects.create(project=project, format="pairs", status=JobStatus.SUCCEEDED)
    directory = Path(settings.MEDIA_ROOT) / "exports" / str(snapshot.pk)
    synthetic_export(directory, train_prompts=train_prompts, test_prompts=test_prompts)
    snapshot.directory = str(directory.relative_to(settings.MEDIA_ROOT))
    snapshot.manifest = json.loads((directory / "manifest.json").read_text())
    snapshot.save(update_fields=["directory", "manifest"])
    return snapshot


@pytest.fixture
def world(tiny_model_path):
    engineer, outsider = make_user("eng"), make_user("out")
    project = make_project("Project A", admin=engineer)
    other = make_project("Project B", admin=outsider)
    return {"engineer": engineer, "project": project, "other": other, "export": make_export(project)}


def _reward_job(project, export, *, run: bool = True) -> TrainingJob:
    job = training_job_create(project=project, kind="reward", export=export, options=FAST, enqueue=False)
    if run:
        training_job_run(job_id=job.pk)
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def test_train_kind_has_choices_and_help():
    from annotation.management.commands.train import Command

    help_text = Command().create_parser("manage.py", "train").format_help()
    for kind in ("sft", "reward", "dpo", "kto", "orpo", "rloo", "grpo"):
        assert kind in help_text
    assert "RL step" in help_text
    with pytest.raises(CommandError, match="invalid choice: 'ppo'"):
        call_command("train", "whatever", "--kind", "ppo")


def test_the_api_refuses_an_unknown_kind_naming_the_choices(world):
    answer = api_client(world["engineer"]).post(f"/api/v1/projects/{world['project'].slug}/training-jobs/",
                                                {"kind": "ppo", "export": world["export"].pk}, format="json")
    assert answer.status_code == 400 and "kind" in answer.json()["error"]["fields"]


def test_an_rl_job_needs_a_succeeded_reward_job_of_this_project(world):
    project, client = world["project"], api_client(world["engineer"])
    add_prompts(project, numbered_prompts(6))
    url = f"/api/v1/projects/{project.slug}/training-jobs/"
    queued_reward = _reward_job(project, world["export"], run=False)
    dpo = training_job_create(project=project, kind="dpo", export=world["export"], options=FAST, enqueue=False)
    others = _reward_job(world["other"], make_export(world["other"]), run=False)
    for body, problem in [({}, "needs --reward-job"), ({"reward_job": queued_reward.pk}, "not a succeeded reward job"),
                          ({"reward_job": dpo.pk}, "not a succeeded reward job"),
                          ({"reward_job": others.pk}, "not found in this project")]:
        answer = client.post(url, {"kind": "rloo", **body}, format="json")
        assert answer.status_code == 400, answer.json()
        assert problem in answer.json()["error"]["fields"]["reward_job"][0]
    with pytest.raises(CommandError) as exc:
        call_command("train", project.slug, "--kind", "grpo", "--reward-job", str(dpo.pk), stdout=StringIO())
    assert exc.value.returncode == 2 and "reward_job" in str(exc.value) and f"training job {dpo.pk}" in str(exc.value)
    assert TrainingJob.objects.filter(kind__in=["rloo", "grpo"]).count() == 0  # nothing half-written


def test_an_rl_job_on_a_project_without_prompts_is_refused(world):
    reward = _reward_job(world["project"], world["export"], run=False)
    TrainingJob.objects.filter(pk=reward.pk).update(status=JobStatus.SUCCEEDED)
    answer = api_client(world["engineer"]).post(f"/api/v1/projects/{world['project'].slug}/training-jobs/",
                                                {"kind": "rloo", "reward_job": reward.pk}, format="json")
    assert answer.status_code == 400 and "no prompts" in answer.json()["error"]["fields"]["project"][0]


def test_an_export_with_an_empty_test_split_is_refused_unless_allowed(world):
    project = world["project"]
    empty = make_export(project, train_prompts=4, test_prompts=0)
    with pytest.raises(CommandError) as exc:
        call_command("train", project.slug, "--kind", "reward", "--export", str(empty.pk), stdout=StringIO())
    assert exc.value.returncode == 2 and "test split is empty" in str(exc.value)
    answer = api_client(world["engineer"]).post(f"/api/v1/projects/{project.slug}/training-jobs/",
                                                {"kind": "reward", "export": empty.pk}, format="json")
    assert answer.status_code == 400 and "test split is empty" in answer.json()["error"]["fields"]["export"][0]
    assert not TrainingJob.objects.exists()
    err = StringIO()
    call_command("train", project.slug, "--kind", "reward", "--export", str(empty.pk), "--allow-no-test", "--max-steps", "1",
                 stdout=StringIO(), stderr=err)
    assert "WARNING" in err.getvalue() and TrainingJob.objects.count() == 1
    add_prompts(project, numbered_prompts(4))
    reward = TrainingJob.objects.get()
    TrainingJob.objects.filter(pk=reward.pk).update(status=JobStatus.SUCCEEDED)
    with pytest.raises(CommandError, match="test split is empty"):
        call_command("train", project.slug, "--kind", "rloo", "--reward-job", str(reward.pk), "--test-fraction", "0",
                     stdout=StringIO())


def test_a_wrong_format_for_the_kind_is_refused_naming_the_export(world):
    answer = api_client(world["engineer"]).post(f"/api/v1/projects/{world['project'].slug}/training-jobs/",
                                                {"kind": "sft", "export": world["export"].pk}, format="json")
    assert answer.status_code == 400
    assert "a sft job needs 'sft'" in answer.json()["error"]["fields"]["export"][0]


@pytest.mark.slow
def test_rloo_on_the_project_prompts_then_its_policy_generates_and_is_the_next_base(world, capsys,
                                                                                   django_capture_on_commit_callbacks):
    project = world["project"]
    add_prompts(project, numbered_prompts(12))
    reward = _reward_job(project, world["export"])
    call_command("train", project.slug, "--kind", "rloo", "--reward-job", str(reward.pk), "--test-fraction", "0.25",
                 "--max-steps", "2", "--option", "per_device_batch_size=4", "--option", "num_generations=2",
                 "--option", "max_new_tokens=8", "--wait", "--no-progress")
    out = capsys.readouterr().out
    job = TrainingJob.objects.get(kind="rloo")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.reward_job_id == reward.pk and job.data_path.endswith("/prompts")
    test = job.report["test"]
    assert test["prompts"] + job.report["data"]["train_prompts"] == 12
    assert "held-out mean reward" in out and "KL to reference" in out and "samples/s" in out
    assert job.report["reward_model"].endswith(f"training/{reward.pk}/model")

    # The RL policy is the next round's generation model ...
    with django_capture_on_commit_callbacks(execute=True):
        call_command("generate", project.slug, "--from-training-job", str(job.pk), "--n", "1", "--max-new-tokens", "4",
                     stdout=StringIO())
    assert GenerationRun.objects.get(source_training_job=job).model_name.endswith(f"training/{job.pk}/model")
    # ... and the base of the next job; a reward job is neither.
    nxt = training_job_create(project=project, kind="dpo", export=world["export"], base_training_job=job,
                              options=FAST, enqueue=False)
    assert nxt.base_model.endswith(f"training/{job.pk}/model")
    with pytest.raises(CommandError) as exc:
        call_command("train", project.slug, "--kind", "dpo", "--export", str(world["export"].pk),
                     "--base-training-job", str(reward.pk), stdout=StringIO())
    assert exc.value.returncode == 2 and "base_training_job" in str(exc.value)


@pytest.mark.needs_redis
def test_train_wait_says_when_no_worker_consumes_the_training_queue(transactional_db, tiny_model_path):
    from config.celery import app

    if not settings.REDIS_AVAILABLE:
        pytest.skip("Redis not reachable")
    engineer = make_user("eng")
    project = make_project("No worker", admin=engineer)
    export = make_export(project)
    err, failure = StringIO(), []
    app.conf.task_always_eager = False  # the broker is up; no worker is started

    def run() -> None:
        try:
            call_command("train", project.slug, "--kind", "reward", "--export", str(export.pk), "--wait",
                         "--no-progress", stdout=StringIO(), stderr=err)
        except CommandError as exc:
            failure.append(exc)
        finally:
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=run)
    try:
        thread.start()
        deadline = time.monotonic() + 120
        while "No worker consumes the 'training' queue" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "No worker consumes the 'training' queue" in err.getvalue()
        assert "celery -A config worker -Q training" in err.getvalue()
        TrainingJob.objects.filter(project=project).update(status=JobStatus.FAILED, error="stopped by the test")
        thread.join(timeout=300)  # generous: the --wait loop notices the failed job at its next poll
        assert failure and failure[0].returncode == 1
    finally:
        app.control.purge()
        app.conf.task_always_eager = True
