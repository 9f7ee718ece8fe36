"""Snapshots: the stored, asynchronous form of an export (a row, a Celery run, files under MEDIA_ROOT)."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.dispatch import TaskName, enqueue_after_commit
from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import ExportSnapshot, JobStatus, Project, WebhookEvent
from annotation.services.export.options import export_options_from_input
from annotation.services.export.write import export_write
from annotation.services.webhooks import webhook_events_emit


def export_snapshot_create(*, project: Project, created_by: Any = None, options: dict[str, Any]) -> ExportSnapshot:
    """Validate the options, record a queued ExportSnapshot and enqueue its run after commit."""
    opts = export_options_from_input(options, project=project)
    with transaction.atomic():
        snapshot = ExportSnapshot.objects.create(
            project=project,
            format=opts.format,
            file_format=opts.file_format,
            options=opts.to_json(),
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        )
        enqueue_after_commit(TaskName.EXPORT_RUN, args=[snapshot.id])
    return snapshot


def export_snapshot_directory(snapshot: Any) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / str(snapshot.id)


ADVISORY_LOCK_NAMESPACE = 0x45585054  # "EXPT": keeps these advisory lock keys apart from other users'


@contextlib.contextmanager
def _snapshot_lock(snapshot_id: int) -> Iterator[bool]:
    """Hold a PostgreSQL session advisory lock on the snapshot while it runs; yields False if another holds it.

    A second delivery of the message while the first worker is alive finds the lock taken and
    leaves; when the first worker dies its session ends and the lock goes with it, so the
    redelivered message can start over. SQLite (one process, the demo) needs no lock.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, snapshot_id])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ADVISORY_LOCK_NAMESPACE, snapshot_id])


def export_snapshot_run(*, snapshot_id: int) -> None:
    """Run a snapshot's export into MEDIA_ROOT/exports/<id>/. Idempotent.

    A finished (succeeded or failed) snapshot is left alone, and so is one another live worker is
    running. Otherwise (queued, or running when a killed worker's message is redelivered) the
    export is written into a fresh temporary directory, which replaces any earlier attempt's
    leftovers, and is moved into place when complete: a half-written attempt never shows.
    Failures are recorded on the row.
    """
    with _snapshot_lock(snapshot_id) as acquired:
        if acquired:
            _snapshot_run_locked(snapshot_id)


def _snapshot_run_locked(snapshot_id: int) -> None:
    snapshot = ExportSnapshot.objects.select_related("project", "created_by").filter(pk=snapshot_id).first()
    if snapshot is None or snapshot.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        return
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.RUNNING, error="", rows_done=0)
    final = export_snapshot_directory(snapshot)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in final.parent.glob(f".{snapshot.id}.*.partial"):  # a killed attempt's files
        shutil.rmtree(leftover, ignore_errors=True)
    work = final.parent / f".{snapshot.id}.{secrets.token_hex(4)}.partial"

    def progress(done: int, total: int) -> None:
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(rows_done=done, rows_total=total)

    try:
        options = export_options_from_input(snapshot.options, project=snapshot.project)
        manifest = export_write(
            project=snapshot.project,
            options=options,
            out_dir=work,
            created_by=snapshot.created_by.get_username() if snapshot.created_by else "",
            progress=progress,
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(work, final)
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        message = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
        with transaction.atomic():
            ExportSnapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.FAILED, error=message, finished_at=timezone.now())
            webhook_events_emit(project_id=snapshot.project_id, event=WebhookEvent.EXPORT_FAILED, object_id=snapshot.pk,
                                data={"status": JobStatus.FAILED.value})
        raise
    files = {info["file"]: {k: info[k] for k in ("rows", "bytes", "sha256")} for info in manifest["splits"].values()}
    with transaction.atomic():
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(
            status=JobStatus.SUCCEEDED,
            directory=str(final.relative_to(settings.MEDIA_ROOT)),
            files=files,
            manifest=manifest,
            finished_at=timezone.now(),
        )
        webhook_events_emit(project_id=snapshot.project_id, event=WebhookEvent.EXPORT_SUCCEEDED, object_id=snapshot.pk,
                            data={"status": JobStatus.SUCCEEDED.value})


def export_snapshot_files(*, snapshot: Any) -> list[Path]:
    """The snapshot's files (manifest first), for download. Conflict until it has succeeded."""
    if snapshot.status != JobStatus.SUCCEEDED:
        raise Conflict(f"Export {snapshot.id} is {snapshot.status}, not ready for download.")
    root = Path(settings.MEDIA_ROOT) / snapshot.directory
    names = ["manifest.json", *snapshot.files]
    paths = [root / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise NotFound(f"Export {snapshot.id} files are gone: {', '.join(missing)}.")
    return paths
