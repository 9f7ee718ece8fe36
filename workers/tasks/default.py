"""Celery tasks on the default queue."""
