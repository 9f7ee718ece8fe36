"""The services' one touchpoint with Celery: enqueue a task by name once the transaction commits.

Services never import task modules (the tasks import the services, so that would be a cycle);
they name the task, and Celery's routing (config/celery.py) picks its queue. A worker must never
see a row its transaction has not committed yet, hence `transaction.on_commit`.

Without a broker (CELERY_TASK_ALWAYS_EAGER, the demo and most tests) the task runs in this process
after the commit, as `task.apply()` would run it; `send_task` alone would ignore eager mode.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


class TaskName(StrEnum):
    """Every Celery task a service enqueues; workers/tasks/ registers each under this name."""

    AGREEMENT_REFRESH = "workers.tasks.agreement.agreement_refresh"
    EXPIRE_LEASES = "workers.tasks.assignment.expire_leases"
    EXPORT_RUN = "workers.tasks.exports.export_snapshot_run_task"
    GENERATION_BATCH = "workers.tasks.generation.generate_batch"
    PRIORITY_SCORE = "workers.tasks.generation.priority_score"
    PRERENDER_FILL = "workers.tasks.rendering.prerender_fill_task"
    RESPONSE_VECTORS_FILL = "workers.tasks.search.response_vectors_fill_task"
    JUDGE_BATCH = "workers.tasks.judge.judge_batch"
    TRAINING_RUN = "workers.tasks.training.training_job_run_task"
    WEBHOOK_DELIVER = "workers.tasks.webhooks.webhook_deliver"
    WEBHOOK_RESUME = "workers.tasks.webhooks.webhook_deliveries_resume"
    WORK_REAP = "workers.tasks.work.work_reap_task"


class DispatchError(Exception):
    """The broker refused the message (down, unreachable)."""


def tasks_run_in_process() -> bool:
    """True when Celery runs tasks eagerly in this process (no broker configured)."""
    from config.celery import app

    return bool(app.conf.task_always_eager)


def send_now(task_name: str, *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
             countdown: float | None = None) -> None:
    """Send one task message now (or run it in-process when eager); DispatchError if the broker refuses."""
    from kombu.exceptions import OperationalError as BrokerError

    from config.celery import app

    if app.conf.task_always_eager:
        if task_name not in app.tasks:
            app.loader.import_default_modules()  # the task modules (autodiscovered lazily) register here
        app.tasks[task_name].apply(args=list(args), kwargs=kwargs or {})
        return
    try:
        app.send_task(task_name, args=list(args), kwargs=kwargs or {}, countdown=countdown)
    except (BrokerError, ConnectionError) as exc:
        raise DispatchError(f"could not enqueue {task_name} (is the broker up?): {exc}") from exc


def enqueue_after_commit(task_name: str, *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                         countdown: float | None = None,
                         on_error: Callable[[DispatchError], None] | None = None) -> None:
    """Send `task_name` when the current transaction commits (at once outside a transaction).

    `on_error` is told when the broker refuses the message, so the caller can mark its row failed
    instead of leaving it queued for ever; without it the error is logged.
    """

    def send() -> None:
        try:
            send_now(task_name, args=args, kwargs=kwargs, countdown=countdown)
        except DispatchError as exc:
            if on_error is None:
                logger.error("%s", exc)
            else:
                on_error(exc)

    transaction.on_commit(send)


def enqueue_many_after_commit(task_name: str, *, args_list: Sequence[Sequence[Any]],
                              on_error: Callable[[DispatchError], None] | None = None) -> None:
    """Send one `task_name` message per args tuple after the commit; stops at the first refusal."""

    def send() -> None:
        try:
            for args in args_list:
                send_now(task_name, args=args)
        except DispatchError as exc:
            if on_error is None:
                logger.error("%s", exc)
            else:
                on_error(exc)

    transaction.on_commit(send)


def queue_has_consumer(queue: str, *, timeout: float = 2.0) -> bool | None:
    """Whether any live worker consumes `queue` (a broadcast ping of the workers' queues).

    None when it cannot be told (eager mode, or the broker does not answer). A waiting command uses it to
    say that nobody will run its job, instead of waiting silently for ever.
    """
    from config.celery import app

    if app.conf.task_always_eager:
        return None
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception:  # noqa: BLE001 - broker errors come in many types; unknown is the honest answer
        return None
    return any(q.get("name") == queue for queues in replies.values() for q in (queues or []))
