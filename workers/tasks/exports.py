"""Celery tasks for exports (default queue). Ids in; the service re-reads the row and is idempotent."""
from __future__ import annotations

from celery import shared_task

from annotation.dispatch import TaskName
from annotation.errors import ApplicationError
from annotation.services.export import export_snapshot_run
from annotation.services.work import work_heartbeat


@shared_task(
    name=TaskName.EXPORT_RUN,
    acks_late=True,  # a worker killed mid-export gets the message redelivered and starts over
)
def export_snapshot_run_task(snapshot_id: int) -> None:
    """Write the snapshot's files; a second delivery of a finished snapshot does nothing.

    Under a heartbeat: if the worker dies, the reaper re-sends the export (annotation.services.work)."""
    with work_heartbeat(task_name=TaskName.EXPORT_RUN, args=[snapshot_id]):
        try:
            export_snapshot_run(snapshot_id=snapshot_id)
        except ApplicationError:
            return  # recorded on the snapshot as failed; bad options do not get better on retry
