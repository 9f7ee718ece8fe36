"""Each service that ends an export, a training job or a generation run records its event, once.

The services run here in the test's transaction (their commit hooks never fire), so what is
checked is the delivery row each state change records with it; the sending itself is tested in
test_delivery.py and test_attempts.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from annotation.errors import Conflict
from annotation.models import ExportSnapshot, JobStatus, Role, RunStatus, WebhookDelivery, WebhookEvent
from annotation.services.export import export_snapshot_create, export_snapshot_run
from annotation.services.generation import generation_run_cancel, generation_run_create, generation_run_fail
from annotation.services.training import training_job_create, training_job_run
from annotation.services.webhooks import webhook_create
from tests.factories import add_prompts, make_project, make_user, numbered_prompts
from training.synthetic import synthetic_export
from workers.tasks.generation import generate_batch

pytestmark = pytest.mark.django_db

ALL_EVENTS = list(WebhookEvent.values)


@pytest.fixture
def project():
    admin = make_user("hook-admin")
    project = make_project("Emitting", admin=admin, members={admin: Role.ADMIN})
    # A public IP literal: registered without DNS; nothing is sent from these tests.
    webhook_create(project=project, data={"url": "https://93.184.216.34/hook", "events": ALL_EVENTS})
    return project


def recorded() -> list[tuple[str, int, str | None]]:
    return [(d.event, d.object_id, json.loads(d.body).get("status")) for d in WebhookDelivery.objects.order_by("id")]


def test_an_export_that_succeeds_records_export_succeeded(project):
    snapshot = export_snapshot_create(project=project, options={"format": "rankings"})
    assert recorded() == []
    export_snapshot_run(snapshot_id=snapshot.pk)
    assert ExportSnapshot.objects.get(pk=snapshot.pk).status == JobStatus.SUCCEEDED
    assert recorded() == [("export.succeeded", snapshot.pk, "succeeded")]
    export_snapshot_run(snapshot_id=snapshot.pk)  # a redelivered message: nothing more
    assert len(recorded()) == 1


def test_an_export_that_fails_records_export_failed(project):
    # Stored options the export refuses (the API validates before storing, so only a row made by
    # hand can carry them): the run fails with the reason.
    snapshot = ExportSnapshot.objects.create(project=project, format="pairs", options={"format": "pairs", "seed": "x"})
    with pytest.raises(Exception, match="seed"):
        export_snapshot_run(snapshot_id=snapshot.pk)
    assert ExportSnapshot.objects.get(pk=snapshot.pk).status == JobStatus.FAILED
    assert recorded() == [("export.failed", snapshot.pk, "failed")]


def make_export(project) -> ExportSnapshot:
    snapshot = ExportSnapshot.objects.create(project=project, format="pairs", status=JobStatus.SUCCEEDED)
    directory = Path(settings.MEDIA_ROOT) / "exports" / str(snapshot.pk)
    synthetic_export(directory, train_prompts=16, test_prompts=4)
    snapshot.directory = str(directory.relative_to(settings.MEDIA_ROOT))
    snapshot.manifest = json.loads((directory / "manifest.json").read_text())
    snapshot.save(update_fields=["directory", "manifest"])
    return snapshot


def test_a_training_job_that_fails_records_training_job_failed(project, tmp_path, tiny_model_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    job = training_job_create(project=project, kind="reward", export=make_export(project), base_model=str(broken),
                              options={"max_steps": 2}, enqueue=False)
    assert training_job_run(job_id=job.pk).status == JobStatus.FAILED
    assert recorded() == [("training_job.failed", job.pk, "failed")]


@pytest.mark.slow
def test_a_training_job_that_succeeds_records_training_job_succeeded(project, tiny_model_path):
    job = training_job_create(project=project, kind="reward", export=make_export(project),
                              options={"max_steps": 2, "eval_steps": 2, "logging_steps": 1, "per_device_batch_size": 8},
                              enqueue=False)
    assert training_job_run(job_id=job.pk).status == JobStatus.SUCCEEDED
    (delivery,) = WebhookDelivery.objects.all()
    body = json.loads(delivery.body)
    assert (delivery.event, delivery.object_id, body["status"], body["kind"]) == ("training_job.succeeded", job.pk, "succeeded", "reward")


def test_a_generation_run_that_ends_records_generation_run_finished_once(project, tiny_model_path):
    add_prompts(project, numbered_prompts(4))
    run = generation_run_create(project=project, n=2, max_new_tokens=4, batch_size=2, enqueue=False)
    generate_batch.apply(args=[run.pk, run.batches[0]])
    assert recorded() == []  # one batch of two to go
    generate_batch.apply(args=[run.pk, run.batches[1]])
    assert recorded() == [("generation_run.finished", run.pk, RunStatus.SUCCEEDED)]
    generate_batch.apply(args=[run.pk, run.batches[1]])  # redelivered: nothing more
    assert len(recorded()) == 1


def test_cancelling_or_failing_a_run_records_generation_run_finished_with_its_status(project, tiny_model_path):
    add_prompts(project, numbered_prompts(2))
    cancelled = generation_run_create(project=project, max_new_tokens=4, enqueue=False)
    generation_run_cancel(run=cancelled)
    with pytest.raises(Conflict):
        generation_run_cancel(run=cancelled)
    failed = generation_run_create(project=project, max_new_tokens=4, enqueue=False)
    assert generation_run_fail(run_id=failed.pk, error="the model cannot load") is True
    assert generation_run_fail(run_id=failed.pk, error="again") is False
    assert recorded() == [("generation_run.finished", cancelled.pk, "cancelled"), ("generation_run.finished", failed.pk, "failed")]
