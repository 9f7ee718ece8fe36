"""The Celery app. Queues and routes come from workers.queues, the one place that declares them."""
import os

from celery import Celery
from kombu import Queue as KombuQueue

from workers.queues import ROUTES, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("annotation_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = Queue.DEFAULT.value
app.conf.task_queues = tuple(KombuQueue(queue.value) for queue in Queue)
app.conf.task_routes = {pattern: {"queue": queue.value} for pattern, queue in ROUTES.items()}
app.autodiscover_tasks(["workers"])
