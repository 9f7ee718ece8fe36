"""The services enqueue by task name: every name they use is a registered task, routed to its queue."""
from __future__ import annotations

import pytest

from annotation.dispatch import TaskName
from config.celery import app
from workers.queues import Queue


@pytest.mark.parametrize("name", list(TaskName))
def test_every_task_name_the_services_use_is_a_registered_task(name):
    app.loader.import_default_modules()
    assert name.value in app.tasks


@pytest.mark.parametrize(
    ("name", "queue"),
    [
        (TaskName.GENERATION_BATCH, Queue.GENERATION),
        (TaskName.TRAINING_RUN, Queue.TRAINING),
        (TaskName.EXPORT_RUN, Queue.DEFAULT),
        (TaskName.AGREEMENT_REFRESH, Queue.DEFAULT),
        (TaskName.EXPIRE_LEASES, Queue.DEFAULT),
        (TaskName.WEBHOOK_DELIVER, Queue.DEFAULT),
        (TaskName.WEBHOOK_RESUME, Queue.DEFAULT),
    ],
)
def test_each_task_is_routed_to_its_queue_by_name(name, queue):
    route = app.amqp.router.route({}, name.value)
    assert route["queue"].name == queue.value
