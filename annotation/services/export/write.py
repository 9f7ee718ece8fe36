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
from annotation.services.export.options import ExportOptions
from annotation.services.export.reader import excluded_task_count
from annotation.services.export.rows import ExportStats
from annotation.services.export.sources import DemonstrationSource, RankingTaskSource, RowSource, sources_for
from annotation.services.export.split import SPLIT_RULE, split_of
from annotation.services.export.writers import COLUMNS, writer_for, writer_path
from annotation.services.ranking_filter import ranking_filter_resolve
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

    The annotators filter is checked against the project first (ApplicationError naming
    `annotators`, nothing written). Files are written as *.partial and renamed at the end;
    manifest.json is written last, so a directory holding a manifest is a complete export. The
    manifest's `warnings` say when the export is empty or its test split is.
    """
    ranking_filter = ranking_filter_resolve(project=project, ranking_filter=options.ranking_filter)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = options.file_format
    writers = {name: writer_for(ext, options.format, out / f"{name}.{ext}.partial") for name in ("train", "test")}
    stats = ExportStats()
    sources = sources_for(project=project, options=options, ranking_filter=ranking_filter)
    try:
        with _fewer_gc_passes():
            _write_rows(options, sources, writers, stats, progress)
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
        "policy": sources[0].policy() if isinstance(sources[0], DemonstrationSource) else options.policy_description()
        | _weights_description(sources),
        "columns": COLUMNS[options.format],
        "split": SPLIT_RULE,
        "splits": splits,
        "counts": stats.summary() | {"rows": dict(stats.rows)},
        "excluded_tasks": excluded_task_count(project, options),
        "warnings": export_warnings(options=options, stats=stats,
                                    demonstrations=isinstance(sources[0], DemonstrationSource)),
    }
    tmp = out / "manifest.json.partial"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "manifest.json")
    return manifest


def _weights_description(sources: list[RowSource]) -> dict:
    """The reliability weights the people's consensus used, when the project weighs its annotators."""
    weights = next((s.weights for s in sources if isinstance(s, RankingTaskSource) and s.weights is not None), None)
    return {} if weights is None else {"consensus_weights": weights.as_json()}


def _write_rows(options: ExportOptions, sources: list[RowSource], writers: dict, stats: ExportStats,
                progress: Progress | None) -> None:
    total = sum(source.total() for source in sources)
    if progress:
        progress(0, total)
    done = 0
    # Sources give a prompt's units adjacently, so prompts are counted without remembering them;
    # with several sources a prompt can come from more than one, and a set counts it once.
    seen: set[int] | None = set() if len(sources) > 1 else None
    last_prompt: int | None = None
    for source in sources:
        for batch in source.batches(stats):
            units = 0
            for prompt_id, rows in batch:
                units += 1
                if not rows:
                    continue
                split = split_of(prompt_id=prompt_id, seed=options.seed, test_fraction=options.test_fraction)
                writers[split].write_rows(rows)
                stats.rows[split] += len(rows)
                if seen is None:
                    if prompt_id != last_prompt:
                        stats.prompts[split] += 1
                        last_prompt = prompt_id
                elif prompt_id not in seen:
                    seen.add(prompt_id)
                    stats.prompts[split] += 1
            for writer in writers.values():
                writer.flush()
            done += units
            if progress:
                progress(done, max(total, done))


def export_warnings(*, options: ExportOptions, stats: ExportStats, demonstrations: bool = False) -> list[str]:
    """What an export's reader must not miss: no rows at all, or no test rows although a test split was asked for."""
    rows = stats.rows["train"] + stats.rows["test"]
    if not rows:
        if demonstrations:
            why = (f"none of its {stats.tasks_seen} demonstrations is accepted yet" if stats.tasks_seen
                   else "the project has no demonstrations" + ("" if options.ranking_filter.is_empty else " that match the filters"))
        elif not stats.tasks_seen:
            why = "the project has no ranking tasks" + (" that are not gold" if options.exclude_gold else "")
        elif stats.tasks_without_rankings == stats.tasks_seen:
            why = f"it has {stats.tasks_seen} tasks and none has a ranking" + (
                " that matches the filters (since, until, annotators)" if not options.ranking_filter.is_empty else " yet")
        else:
            why = (f"{stats.tasks_kept} of {stats.tasks_seen} tasks kept ({stats.tasks_without_rankings} without rankings, "
                   f"{stats.tasks_below_min_votes} below min_votes, {stats.tasks_below_min_agreement} below min_agreement)"
                   f" and they give no {options.format} rows")
        return [f"The export is empty (0 rows): {why}. Its files are empty."]
    if options.test_fraction > 0 and not stats.rows["test"]:
        return [f"The test split is empty: test_fraction {options.test_fraction} of {stats.prompts['train']} prompts put none "
                "in it (more prompts, a larger fraction or another seed)."]
    return []


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
