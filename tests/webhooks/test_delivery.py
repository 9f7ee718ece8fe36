"""Deliveries through a real Celery worker on Redis to a real receiver on 127.0.0.1.

The worker runs with WEBHOOK_ALLOW_PRIVATE=1, at most 4 attempts, a 0.2 s first backoff and a 3 s
timeout (tests/webhooks/conftest.py). Waits are generous deadlines, never measures of speed.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from django.db import transaction

from annotation.models import Role, WebhookDelivery
from annotation.services.webhooks import webhook_create, webhook_events_emit
from tests.factories import make_project, make_user
from tests.webhooks.conftest import WORKER_MAX_ATTEMPTS

pytestmark = [pytest.mark.needs_postgres, pytest.mark.needs_redis, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SECRET = "correct horse battery staple"


@pytest.fixture
def project():
    admin = make_user("hook-admin")
    return make_project("Delivered", admin=admin, members={admin: Role.ADMIN})


def emit(project, *, event="training_job.succeeded", object_id=7) -> int:
    with transaction.atomic():
        (delivery_id,) = webhook_events_emit(project_id=project.pk, event=event, object_id=object_id,
                                             data={"status": "succeeded"})
    return delivery_id


def finished(delivery_id: int, timeout: float = 180.0) -> WebhookDelivery:
    """The delivery once it is no longer pending (a generous deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.get(pk=delivery_id)
        if delivery.status != "pending":
            return delivery
        time.sleep(0.2)
    raise AssertionError(f"delivery {delivery_id} still pending after {timeout}s: {delivery.__dict__}")


def test_the_signature_verifies_with_the_secret(project, receiver, allow_private, webhook_worker):
    webhook_create(project=project, data={"url": receiver.url(), "events": ["training_job.succeeded"], "secret": SECRET})
    delivery_id = emit(project, object_id=7)
    delivery = finished(delivery_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200), webhook_worker.log()[-3000:]

    (request,) = receiver.received
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-signature-256"], expected)
    forged = "sha256=" + hmac.new(b"another secret entirely", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-signature-256"] != forged
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-webhook-event"] == "training_job.succeeded"
    assert request.headers["x-webhook-delivery"] == str(delivery_id)
    body = json.loads(request.body)
    assert body["event"] == "training_job.succeeded"
    assert body["project"] == {"id": project.pk, "slug": project.slug}
    assert body["object_type"] == "training_job" and body["object_id"] == 7
    assert body["created_at"].endswith("Z")
    assert request.body.decode() == delivery.body  # the stored body, byte for byte


def test_a_receiver_that_fails_then_succeeds_is_retried_and_ends_delivered(project, receiver, allow_private, webhook_worker):
    receiver.script = ["500", "hang", "200"]  # an error, then a timeout, then an answer
    webhook_create(project=project, data={"url": receiver.url(), "events": ["training_job.succeeded"], "secret": SECRET})
    delivery = finished(emit(project))
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == ("delivered", 3, 200, ""), \
        webhook_worker.log()[-3000:]
    requests = receiver.wait_for(3)
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # every retry sends the same body ...
    assert len({r.headers["x-signature-256"] for r in requests}) == 1  # ... with the same signature
    assert {r.headers["x-webhook-delivery"] for r in requests} == {str(delivery.pk)}


def test_a_receiver_that_always_fails_ends_failed_after_the_maximum_attempts(project, receiver, allow_private, webhook_worker):
    receiver.script = ["500"] * 20
    webhook_create(project=project, data={"url": receiver.url(), "events": ["training_job.succeeded"]})
    delivery = finished(emit(project))
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", WORKER_MAX_ATTEMPTS, 500)
    assert delivery.last_error == "HTTP 500: receiver says no"
    assert delivery.finished_at is not None and delivery.next_attempt_at is None
    assert len(receiver.received) == WORKER_MAX_ATTEMPTS


def test_a_rolled_back_change_sends_nothing(project, receiver, allow_private, webhook_worker):
    webhook_create(project=project, data={"url": receiver.url(), "events": ["training_job.succeeded"]})
    with pytest.raises(RuntimeError, match="the change failed"), transaction.atomic():
        webhook_events_emit(project_id=project.pk, event="training_job.succeeded", object_id=1)
        raise RuntimeError("the change failed")
    # A later, committed event is delivered; by then the rolled-back one would have been too.
    delivery = finished(emit(project, object_id=2))
    assert delivery.status == "delivered"
    assert [json.loads(r.body)["object_id"] for r in receiver.received] == [2]
    assert list(WebhookDelivery.objects.values_list("object_id", flat=True)) == [2]


def test_emitting_outside_a_transaction_is_refused(project):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        webhook_events_emit(project_id=project.pk, event="task.completed", object_id=1)
