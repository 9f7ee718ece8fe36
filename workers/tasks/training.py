"""Celery tasks on the training queue."""
