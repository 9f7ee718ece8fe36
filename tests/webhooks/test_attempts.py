"""One delivery attempt at a time, in this process, against a real receiver on 127.0.0.1.

The address check at delivery time (a name that resolved to a public address when registered may
resolve elsewhere later), redirects, the claim that makes a second message a no-op, the backoff,
and the sweep that resends a delivery whose message was lost. The tests run in the test's own
transaction, so the commit hooks (the task messages) never fire and each attempt is made here.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from annotation.models import DeliveryStatus, Role, WebhookDelivery
from annotation.services.webhooks import (
    webhook_create,
    webhook_deliveries_resume,
    webhook_delivery_attempt,
    webhook_events_emit,
    webhook_signature,
)
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    admin = make_user("hook-admin")
    return make_project("Attempts", admin=admin, members={admin: Role.ADMIN})


def emit(project, *, event="export.succeeded", object_id=1) -> WebhookDelivery:
    with transaction.atomic():
        (delivery_id,) = webhook_events_emit(project_id=project.pk, event=event, object_id=object_id, data={"status": "succeeded"})
    return WebhookDelivery.objects.get(pk=delivery_id)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_one_attempt_posts_the_signed_body_and_records_the_delivery(project, receiver, allow_private, host):
    # By name, the connection goes to the address resolved and checked; the Host header stays the URL's.
    hook = webhook_create(project=project, data={"url": f"http://{host}:{receiver.port}/in?x=1", "events": ["export.succeeded"],
                                                 "secret": "a-long-shared-secret"})
    delivery = emit(project, object_id=41)
    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.status == DeliveryStatus.DELIVERED and outcome.retry_in is None
    (request,) = receiver.received
    assert request.path == "/in?x=1"
    assert request.headers["host"] == f"{host}:{receiver.port}"
    assert request.headers["x-signature-256"] == webhook_signature(secret=hook.secret, body=request.body)
    body = json.loads(request.body)
    assert body["event"] == "export.succeeded" and body["object_id"] == 41 and body["status"] == "succeeded"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == ("delivered", 1, 200, "")
    assert delivery.finished_at is not None and delivery.next_attempt_at is None


def test_a_second_message_for_a_delivered_or_not_yet_due_delivery_makes_no_attempt(project, receiver, allow_private):
    receiver.script = ["500"]
    webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    first = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert first.status == DeliveryStatus.PENDING and first.retry_in > 0
    assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "skipped"  # not due yet
    later = timezone.now() + timedelta(seconds=first.retry_in + 1)
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=later).status == DeliveryStatus.DELIVERED
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=later + timedelta(hours=1)).status == "skipped"
    assert len(receiver.received) == 2
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.status == "delivered"


def test_the_backoff_doubles_after_each_failed_attempt_and_the_attempts_are_bounded(project, receiver, allow_private):
    allow_private.WEBHOOK_MAX_ATTEMPTS = 4
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 10
    receiver.script = ["503"] * 10
    webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    now, delays = timezone.now(), []
    for _ in range(3):
        outcome = webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        assert outcome.status == DeliveryStatus.PENDING
        delays.append(outcome.retry_in)
        now += timedelta(seconds=outcome.retry_in + 1)
    for attempt, delay in enumerate(delays, start=1):
        assert 10 * 2 ** (attempt - 1) <= delay <= 1.25 * 10 * 2 ** (attempt - 1)
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now).status == DeliveryStatus.FAILED
    assert webhook_delivery_attempt(delivery_id=delivery.pk, now=now + timedelta(days=1)).status == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 4, 503)
    assert delivery.last_error == "HTTP 503: receiver says no"
    assert len(receiver.received) == 4


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_address_is_checked_again_at_delivery_time(project, receiver, allow_private, host):
    # Registered while private addresses were allowed; by delivery time they are not (as when a
    # name that resolved to a public address at registration resolves to a private one later).
    webhook_create(project=project, data={"url": f"http://{host}:{receiver.port}/hook", "events": ["export.succeeded"]})
    delivery = emit(project)
    allow_private.WEBHOOK_ALLOW_PRIVATE = False
    outcome = webhook_delivery_attempt(delivery_id=delivery.pk)
    assert outcome.status == DeliveryStatus.PENDING  # a failed attempt, retried like any other
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("refused: ") and "loopback address" in delivery.last_error, delivery.last_error
    assert delivery.last_status_code is None
    assert receiver.received == []


def test_redirects_are_not_followed(project, receiver, allow_private):
    receiver.script = ["302"]
    webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    assert webhook_delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_status_code == 302 and "redirects are not followed" in delivery.last_error
    assert [r.path for r in receiver.received] == ["/hook"]  # nothing reached /elsewhere


def test_a_refused_connection_is_a_failed_attempt(project, receiver, allow_private):
    webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    receiver.close()  # nothing listens on the port any more
    assert webhook_delivery_attempt(delivery_id=delivery.pk).status == DeliveryStatus.PENDING
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("could not connect to 127.0.0.1"), delivery.last_error


def test_the_sweep_resends_a_delivery_whose_message_was_lost(project, receiver, allow_private):
    # In this test's transaction the commit hook never runs: the delivery's message is never sent.
    webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    assert webhook_deliveries_resume() == 0  # not overdue yet: its own message gets the first chance
    assert webhook_deliveries_resume(now=timezone.now() + timedelta(minutes=5)) == 1  # eager: delivered here
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and len(receiver.received) == 1


def test_a_deleted_webhooks_pending_delivery_is_gone(project, receiver, allow_private):
    hook = webhook_create(project=project, data={"url": receiver.url(), "events": ["export.succeeded"]})
    delivery = emit(project)
    hook.delete()
    assert webhook_delivery_attempt(delivery_id=delivery.pk).status == "skipped"
    assert receiver.received == []
