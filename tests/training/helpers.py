"""Set-up shared by the training platform tests: fast trainer settings and a ready export snapshot."""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from annotation.models import ExportSnapshot, JobStatus
from training.synthetic import synthetic_export

FAST = {"max_steps": 12, "learning_rate": 3e-3, "eval_steps": 6, "logging_steps": 3, "per_device_batch_size": 8}


def make_export(project, *, train_prompts: int = 24, test_prompts: int = 8, status=JobStatus.SUCCEEDED) -> ExportSnapshot:
    """A snapshot row whose directory holds a synthetic `pairs` export (the export service is tested elsewhere)."""
    snapshot = ExportSnapshot.objects.create(project=project, format="pairs", status=status)
    directory = Path(settings.MEDIA_ROOT) / "exports" / str(snapshot.pk)
    synthetic_export(directory, train_prompts=train_prompts, test_prompts=test_prompts)
    snapshot.directory = str(directory.relative_to(settings.MEDIA_ROOT))
    snapshot.manifest = json.loads((directory / "manifest.json").read_text())
    snapshot.save(update_fields=["directory", "manifest"])
    return snapshot
