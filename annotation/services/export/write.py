"""Writing one export directory: train/test files of one format and manifest.json, last.

Files are written as *.partial and renamed at the end; manifest.json is written last, so a
directory holding a manifest is a complete export. The split is prompt-disjoint (split.py).
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.utils import timezone

from annotation.models import Project
from annotation.models import Response as ResponseRow
from annotation.services.export.options import ExportOptions
from annotation.services.export.reader import TaskData, in_background, task_data_iter, task_queryset
from annotation.services.export.rows import ExportStats, RowBuilder
from annotation.services.export.split import SPLIT_RULE, split_of
from annotation.services.export.writers import COLUMNS, writer_for, writer_path
from training.data import file_sha256

SCHEMA_VERSION = 1

Progress = Callable[[int, int], None]  # (tasks done, tasks total)


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Let the cyclic garbage collector run rarely while exporting.

    An export makes millions of small lists, dicts and tuples without cycles (reference counting
    frees them); at the default thresholds the collector keeps rescanning every long-lived object
    of the process because of them, which cost a third of the reading time. Objects alive before
    the export are frozen out of the scans; the thresholds are restored afterwards.
    """
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def export_write(
    *,
    project: Project,
    options: ExportOptions,
    out_dir: str | os.PathLike,
    created_by: str = "",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write one export of `project` into `out_dir` (created if missing) and return its manifest.

    Files are written as *.partial and renamed at the end; manifest.json is written last, so a
    directory holding a manifest is a complete export.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = options.file_format
    columns = COLUMNS[options.format]
    writers = {name: writer_for(ext, options.format, out / f"{name}.{ext}.partial") for name in ("train", "test")}
    stats = ExportStats()
    builder = RowBuilder(options)
    runs = builder.runs
    total = task_queryset(project, options).count()
    if progress:
        progress(0, total)
    try:
        with _fewer_gc_passes():
            _write_rows(project, options, runs, builder, writers, stats, total, progress)
        splits = {}
        for name, writer in writers.items():
            info = writer.close()
            final = out / f"{name}.{ext}"
            os.replace(writer_path(writer), final)
            splits[name] = {"file": final.name, **info, "prompts": stats.prompts[name]}
    except BaseException:
        for writer in writers.values():
            with contextlib.suppress(Exception):  # already failing; the original error matters
                writer.close()
            writer_path(writer).unlink(missing_ok=True)
        raise
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": options.format,
        "file_format": ext,
        "project": project.slug,
        "created_at": timezone.now().isoformat(),
        "created_by": created_by,
        "seed": options.seed,
        "test_fraction": options.test_fraction,
        "filters": options.filters(),
        "policy": options.policy_description(),
        "columns": columns,
        "split": SPLIT_RULE,
        "splits": splits,
        "counts": stats.summary() | {"rows": dict(stats.rows)},
    }
    tmp = out / "manifest.json.partial"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "manifest.json")
    return manifest


def _write_rows(project: Project, options: ExportOptions, runs: dict, builder: RowBuilder, writers: dict, stats: ExportStats,
                total: int, progress: Progress | None) -> None:
    last_prompt: int | None = None  # tasks come ordered by prompt (see task_data_iter)
    for batch in in_background(lambda: task_data_iter(project, options, runs)):
        builder.response_details = _response_details(batch) if options.format == "rankings" else {}
        for task in batch:
            stats.tasks_seen += 1
            rows = builder.rows(task, stats)
            if not rows:
                continue
            split = split_of(prompt_id=task.prompt_id, seed=options.seed, test_fraction=options.test_fraction)
            writers[split].write_rows(rows)
            stats.rows[split] += len(rows)
            if task.prompt_id != last_prompt:
                stats.prompts[split] += 1
                last_prompt = task.prompt_id
        for writer in writers.values():
            writer.flush()
        if progress:
            progress(stats.tasks_seen, max(total, stats.tasks_seen))


def _response_details(batch: list[TaskData]) -> dict[int, dict[str, Any]]:
    ids = [rid for task in batch for rid in task.responses]
    return {
        rid: {"sample_index": index, "finish_reason": reason, "token_count": tokens, "model": model}
        for rid, index, reason, tokens, model in ResponseRow.objects.filter(id__in=ids).values_list(
            "id", "sample_index", "finish_reason", "token_count", "model_name"
        )
    }


def manifest_verify(*, directory: str | os.PathLike) -> list[str]:
    """Problems found comparing manifest.json with the files beside it (empty list: all match)."""
    root = Path(directory)
    manifest = json.loads((root / "manifest.json").read_text())
    problems = []
    for name, info in manifest["splits"].items():
        path = root / info["file"]
        if not path.exists():
            problems.append(f"{name}: {info['file']} is missing")
            continue
        sha = file_sha256(path)
        if sha != info["sha256"]:
            problems.append(f"{name}: sha256 {sha} != manifest {info['sha256']}")
        if path.stat().st_size != info["bytes"]:
            problems.append(f"{name}: {path.stat().st_size} bytes != manifest {info['bytes']}")
    return problems
