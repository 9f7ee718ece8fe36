"""Read an export directory (manifest.json plus train/test splits) into datasets, checking it first.

The layout is the export engineer's contract (docs/export.md): manifest.json with schema_version 1,
format, file_format and splits {name: {file, rows, sha256, bytes}}. Train and test never share a prompt.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
# Columns each export format must carry, and those of them that are chat messages.
FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "pairs": PAIR_COLUMNS, "unpaired": ("prompt", "completion", "label"), "sft": ("messages",), "prompts": ("prompt",),
}
MESSAGE_COLUMNS: dict[str, tuple[str, ...]] = {
    "pairs": PAIR_COLUMNS, "unpaired": ("prompt", "completion"), "sft": ("messages",), "prompts": ("prompt",),
}


class ExportDataError(ValueError):
    """The export directory cannot be trained on; the message says what is wrong and where."""


@dataclass
class ExportData:
    manifest: dict[str, Any]
    train: Any  # datasets.Dataset
    test: Any  # datasets.Dataset or None when the export has no test rows


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks; the hash the export manifest records for each split."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: str | Path, *, formats: tuple[str, ...] = ("pairs",), kind: str = "reward and DPO"
                  ) -> dict[str, Any]:
    """The checked manifest of an export directory whose format is one of `formats` (ExportDataError if not)."""
    root = Path(directory)
    if not root.is_dir():
        raise ExportDataError(f"{root}: not a directory (expected an export directory with manifest.json)")
    path = root / "manifest.json"
    if not path.exists():
        raise ExportDataError(f"{path}: missing (is {root} an export directory?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportDataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(manifest, dict):
        raise ExportDataError(f"{path}: expected a JSON object")
    if manifest.get("schema_version") != 1:
        raise ExportDataError(f"{path}: schema_version {manifest.get('schema_version')!r} is not supported (expected 1)")
    if manifest.get("format") not in formats:
        raise ExportDataError(
            f"{path}: format {manifest.get('format')!r}; {kind} training needs an export of format "
            + " or ".join(repr(f) for f in formats)
        )
    if manifest.get("file_format") not in ("jsonl", "parquet"):
        raise ExportDataError(f"{path}: file_format {manifest.get('file_format')!r} is not jsonl or parquet")
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or "train" not in splits:
        raise ExportDataError(f"{path}: 'splits' must name at least a 'train' split")
    return manifest


def _load_split(root: Path, name: str, entry: dict[str, Any], file_format: str, cache_dir: str | None,
                export_format: str = "pairs"):
    from datasets import load_dataset

    file_name = entry.get("file") if isinstance(entry, dict) else None
    if not file_name or Path(file_name).name != file_name:
        raise ExportDataError(f"manifest.json: split {name!r} has no plain file name")
    path = root / file_name
    if not path.exists():
        raise ExportDataError(f"{path}: missing (listed in manifest.json as the {name} split)")
    expected = entry.get("sha256")
    if expected and file_sha256(path) != expected:
        raise ExportDataError(f"{path}: sha256 differs from manifest.json (file changed or truncated)")
    if entry.get("rows") == 0:
        return None
    builder = "json" if file_format == "jsonl" else "parquet"
    try:
        dataset = load_dataset(builder, data_files={name: str(path)}, split=name, cache_dir=cache_dir)
    except Exception as exc:  # datasets raises many types for unreadable files; name the file.
        raise ExportDataError(f"{path}: cannot be read as {file_format}: {exc}") from exc
    missing = [column for column in FORMAT_COLUMNS[export_format] if column not in dataset.column_names]
    if missing:
        raise ExportDataError(f"{path}: missing column(s) {', '.join(missing)}")
    if "rows" in entry and entry["rows"] != len(dataset):
        raise ExportDataError(f"{path}: {len(dataset)} rows, manifest.json says {entry['rows']}")
    for index, row in enumerate(dataset.select(range(min(len(dataset), 50)))):
        for column in MESSAGE_COLUMNS[export_format]:
            value = row[column]
            if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
                raise ExportDataError(f"{path}: row {index + 1}: {column!r} must be a list of {{role, content}} messages")
    return dataset


def load_export(directory: str | Path, *, cache_dir: str | None = None, formats: tuple[str, ...] = ("pairs",),
                kind: str = "reward and DPO") -> ExportData:
    """The manifest and the train/test splits of an export directory, as `datasets.Dataset`s."""
    root = Path(directory)
    manifest = read_manifest(root, formats=formats, kind=kind)
    splits = manifest["splits"]
    export_format = manifest["format"]
    train = _load_split(root, "train", splits["train"], manifest["file_format"], cache_dir, export_format)
    if train is None or len(train) == 0:
        raise ExportDataError(f"{root}: the train split is empty; nothing to train on")
    test = None
    if "test" in splits:
        test = _load_split(root, "test", splits["test"], manifest["file_format"], cache_dir, export_format)
    return ExportData(manifest=manifest, train=train, test=test)


def test_rows(manifest: dict[str, Any]) -> int:
    """Rows in the manifest's test split (0 when it has none)."""
    return int(((manifest.get("splits") or {}).get("test") or {}).get("rows") or 0)


def unique_prompts(dataset, export_format: str) -> list[list[dict[str, str]]]:
    """Each prompt of a split once, in order: `prompt`, or an sft row's messages without the last one."""
    seen: set[str] = set()
    prompts = []
    for row in dataset if dataset is not None else []:
        prompt = row["messages"][:-1] if export_format == "sft" else row["prompt"]
        key = json.dumps(prompt, sort_keys=True)
        if prompt and key not in seen:
            seen.add(key)
            prompts.append(prompt)
    return prompts


def write_export(directory: str | Path, *, train: list[dict], test: list[dict], project: str = "synthetic",
                 seed: int = 0, file_format: str = "jsonl", export_format: str = "pairs") -> Path:
    """Write rows in the export layout (used by tests and benchmarks to make synthetic exports)."""
    from datetime import UTC, datetime

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    split_entries = {}
    for name, rows in (("train", train), ("test", test)):
        path = root / f"{name}.{file_format}"
        if file_format == "jsonl":
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), path)
        split_entries[name] = {"file": path.name, "rows": len(rows), "sha256": file_sha256(path), "bytes": path.stat().st_size}
    total = len(train) + len(test)
    manifest = {
        "schema_version": 1, "format": export_format, "file_format": file_format, "project": project,
        "created_at": datetime.now(UTC).isoformat(), "created_by": "synthetic", "seed": seed,
        "test_fraction": round(len(test) / total, 4) if total else 0.0, "filters": {}, "policy": {},
        "splits": split_entries,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
