"""Preference dataset exports that TRL reads as they are: pairs, unpaired (KTO), sft and rankings.

One export is a directory: `train.<ext>`, `test.<ext>` and `manifest.json` (written last, so a
directory with a manifest is complete). Rows are streamed: tasks are read in prompt order in
chunks, each chunk's rankings, responses and prompts are fetched with one query each (in a
reader thread on PostgreSQL), and rows are written as they are made, so memory stays flat however
many rankings there are. docs/export.md has the formats, the rules and the figures.

The package, by concern (each module's docstring says more):
- options.py: ExportOptions, the one typed options object, and its validation.
- split.py: the prompt-disjoint train/test split.
- pairs.py: pair maths of one task (Borda consensus and pair votes in one pass, pair policies).
- sql.py: the reading queries (raw SQL on PostgreSQL, the ORM twin elsewhere).
- reader.py: chunks of TaskData, read ahead in a thread.
- rows.py: a task's rows in each format, and the counts of what was kept and dropped.
- sources.py: where rows come from (ranking tasks today; demonstrations can join for sft).
- writers.py: JSONL and Parquet writers (hashing as they write) and each format's columns.
- write.py: export_write (one directory, manifest last) and manifest_verify.
- snapshots.py: the stored, asynchronous form (ExportSnapshot rows run by a Celery task).
- selectors.py: snapshots with the access check.

The names below are the package's API; import them from `annotation.services.export`.
"""
from annotation.services.export.options import (
    FILE_FORMATS,
    FORMATS,
    POLICIES,
    ExportOptions,
    ExportOptionsSerializer,
    export_options_from_input,
)
from annotation.services.export.selectors import export_snapshot_get_for_user, export_snapshots_of_project
from annotation.services.export.snapshots import (
    export_snapshot_create,
    export_snapshot_directory,
    export_snapshot_files,
    export_snapshot_run,
)
from annotation.services.export.split import split_of
from annotation.services.export.write import SCHEMA_VERSION, export_write, manifest_verify

__all__ = [
    "FILE_FORMATS",
    "FORMATS",
    "POLICIES",
    "SCHEMA_VERSION",
    "ExportOptions",
    "ExportOptionsSerializer",
    "export_options_from_input",
    "export_snapshot_create",
    "export_snapshot_directory",
    "export_snapshot_files",
    "export_snapshot_get_for_user",
    "export_snapshot_run",
    "export_snapshots_of_project",
    "export_write",
    "manifest_verify",
    "split_of",
]
