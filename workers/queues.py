"""Every Celery queue, what belongs on it, and which tasks go there: declared here once.

config/celery.py applies QUEUES and ROUTES to the app; task decorators name no queue, and services
enqueue by task name (annotation.dispatch), so routing by name is the only routing there is.
"""
from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"  # CPU work: exports, agreement refresh, lease expiry, webhook deliveries.
    GENERATION = "generation"  # GPU hosts: sampling responses from a model, and judge runs (AI feedback).
    TRAINING = "training"  # GPU hosts: reward-model and DPO training jobs.


# Task name patterns -> queue; anything unmatched goes to Queue.DEFAULT.
ROUTES: dict[str, Queue] = {
    "workers.tasks.generation.*": Queue.GENERATION,
    "workers.tasks.judge.*": Queue.GENERATION,  # a judge is a model on a GPU host, as generation
    "workers.tasks.training.*": Queue.TRAINING,
}
