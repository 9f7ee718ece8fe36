"""Celery tasks on the default queue: delivering webhook events, and resuming overdue deliveries.

The service claims each attempt with a conditional update, so a redelivered message makes no
second attempt; the attempt count, backoff and the final status live on the WebhookDelivery row.
"""
from __future__ import annotations

from celery import shared_task

from annotation.dispatch import TaskName
from annotation.services.webhooks import webhook_deliveries_resume as resume_overdue
from annotation.services.webhooks import webhook_delivery_attempt
from config.celery import app

RESUME_EVERY_SECONDS = 60.0


@shared_task(bind=True, name=TaskName.WEBHOOK_DELIVER, acks_late=True, max_retries=None)
def webhook_deliver(self, delivery_id: int) -> str:
    """One attempt at delivery `delivery_id`; a failed one is retried after the backoff the service chose.

    max_retries=None: the service bounds the attempts (settings.WEBHOOK_MAX_ATTEMPTS).
    """
    outcome = webhook_delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name=TaskName.WEBHOOK_RESUME)
def webhook_deliveries_resume() -> int:
    """Re-send overdue pending deliveries (lost messages, killed workers); returns how many."""
    return resume_overdue()


@app.on_after_finalize.connect
def _schedule(sender, **kwargs) -> None:
    # Runs under `celery beat`; a plain worker ignores the schedule.
    sender.add_periodic_task(RESUME_EVERY_SECONDS, webhook_deliveries_resume.s(), name="resume webhook deliveries")
