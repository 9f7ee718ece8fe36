"""The whole data flow through the API on a real Celery worker: import, generate, rank as several annotators,
export, train a reward model and a DPO policy, and sample round two from the trained policy."""
from __future__ import annotations

import io
import json
import time

import pytest

from annotation.models import RankingTask, Response, Role, TrainingMetric
from tests.factories import api_client, make_project, make_user

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_redis, pytest.mark.slow,
              pytest.mark.django_db(transaction=True)]

PROMPTS = [f"Tell me about {topic}, briefly." for topic in
           ("tea", "rivers", "trains", "owls", "maps", "bread", "stars", "bees", "clocks", "salt", "snow", "wool")]


def poll(client, url: str, *, done=("succeeded", "failed", "partial", "cancelled"), timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in done:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url} still {body['status']} after {timeout}s: {body}")


def rank_everything(client, slug: str) -> int:
    """Lease and rank tasks until none is left; every annotator prefers the shorter response."""
    submitted = 0
    while True:
        answer = client.get(f"/api/v1/projects/{slug}/next-task")
        if answer.status_code == 204:
            return submitted
        task = answer.json()
        shown = sorted(task["responses"], key=lambda r: (len(r["content"]), r["id"]))
        result = client.post(f"/api/v1/assignments/{task['id']}/submit",
                             {"ranking": [[r["id"]] for r in shown], "duration_seconds": 3.0}, format="json")
        assert result.status_code == 201, result.json()
        submitted += 1


def test_import_generate_rank_export_train_and_generate_again(celery_worker, tiny_model_path):
    engineer = make_user("e2e-engineer")
    annotators = [make_user(f"e2e-annotator-{i}") for i in range(3)]
    project = make_project("End to end", admin=engineer, members={a: Role.ANNOTATOR for a in annotators},
                           responses_per_prompt=2, overlap=3)
    eng = api_client(engineer)
    slug = project.slug

    # Import prompts (multipart file upload).
    body = "".join(json.dumps({"prompt": text}) + "\n" for text in PROMPTS).encode()
    upload = io.BytesIO(body)
    upload.name = "prompts.jsonl"
    answer = eng.post(f"/api/v1/projects/{slug}/prompts/import/", {"file": upload}, format="multipart")
    assert answer.status_code in (200, 201), answer.json()

    # Generate two responses per prompt with the tiny model on the worker.
    answer = eng.post(f"/api/v1/projects/{slug}/generation-runs",
                      {"n": 2, "max_new_tokens": 16, "temperature": 1.0, "seed": 3}, format="json")
    assert answer.status_code == 201, answer.json()
    run = poll(eng, f"/api/v1/projects/{slug}/generation-runs/{answer.json()['id']}")
    assert run["status"] == "succeeded", run
    tasks = RankingTask.objects.filter(project=project).count()
    assert tasks >= 8  # prompts whose two samples came out identical get no task

    # Three annotators rank every task (overlap 3).
    for annotator in annotators:
        assert rank_everything(api_client(annotator), slug) == tasks

    # Export pairs with a prompt-disjoint test split.
    answer = eng.post(f"/api/v1/projects/{slug}/exports/", {"format": "pairs", "test_fraction": 0.3, "seed": 1},
                      format="json")
    assert answer.status_code == 202, answer.json()
    export = poll(eng, f"/api/v1/exports/{answer.json()['id']}/")
    assert export["status"] == "succeeded", export
    assert export["manifest"]["splits"]["test"]["rows"] > 0

    # A reward model, then DPO judged by it.
    options = {"max_steps": 6, "learning_rate": 1e-3, "eval_steps": 3, "logging_steps": 2, "per_device_batch_size": 4}
    answer = eng.post(f"/api/v1/projects/{slug}/training-jobs/",
                      {"kind": "reward", "export": export["id"], "options": options}, format="json")
    assert answer.status_code == 202, answer.json()
    reward = poll(eng, f"/api/v1/training-jobs/{answer.json()['id']}/")
    assert reward["status"] == "succeeded", reward["error"] + celery_worker.log()[-2000:]
    assert reward["report"]["test"]["pairs"] == export["manifest"]["splits"]["test"]["rows"]
    assert 0.0 <= reward["report"]["test"]["accuracy"]["value"] <= 1.0
    assert "baseline_longer_wins" in reward["report"]["test"]

    answer = eng.post(f"/api/v1/projects/{slug}/training-jobs/",
                      {"kind": "dpo", "export": export["id"], "judge_training_job": reward["id"],
                       "options": {**options, "win_rate_prompts": 4, "max_new_tokens": 8}}, format="json")
    assert answer.status_code == 202, answer.json()
    dpo = poll(eng, f"/api/v1/training-jobs/{answer.json()['id']}/")
    assert dpo["status"] == "succeeded", dpo["error"] + celery_worker.log()[-2000:]
    assert dpo["steps_done"] == dpo["steps_total"] == 6
    assert dpo["report"]["test"]["implicit_reward_accuracy"]["n"] > 0
    assert dpo["report"]["test"]["win_rate_vs_base"]["prompts"] >= 1
    for job in (reward, dpo):
        metrics = eng.get(f"/api/v1/training-jobs/{job['id']}/metrics").json()
        assert {m["split"] for m in metrics} >= {"train", "test"}
        assert any(a["path"].endswith("model/model.safetensors") for a in job["artifacts"])
    assert TrainingMetric.objects.filter(job_id=dpo["id"], split="test", values__has_key="rewards/accuracies").exists()

    # Round two samples from round one's policy.
    answer = eng.post(f"/api/v1/training-jobs/{dpo['id']}/generate", {"n": 2, "max_new_tokens": 8}, format="json")
    assert answer.status_code == 202, answer.json()
    second = poll(eng, f"/api/v1/projects/{slug}/generation-runs/{answer.json()['id']}")
    assert second["status"] == "succeeded" and second["source_training_job"] == dpo["id"]
    assert Response.objects.filter(run_id=second["id"]).count() == 2 * len(PROMPTS)
