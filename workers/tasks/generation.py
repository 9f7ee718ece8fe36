"""Celery tasks on the generation queue."""
