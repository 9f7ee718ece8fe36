"""Celery tasks: thin wrappers over services. Ids in, rows re-read, idempotent, named queue."""
from . import agreement, assignment, default, exports, generation, judge, rendering, search, training, webhooks, work  # noqa: F401
