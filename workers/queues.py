"""Every Celery queue, and what belongs on it."""
from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"  # CPU work: exports, agreement refresh, lease expiry.
    GENERATION = "generation"  # GPU hosts: sampling responses from a model.
    TRAINING = "training"  # GPU hosts: reward-model and DPO training jobs.
