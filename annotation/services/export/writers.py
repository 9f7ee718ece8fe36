"""Writers: JSONL and Parquet files that hash themselves while written, and each format's columns.

JSONL rows are either finished lines (pairs and unpaired build them with the line templates
below, so a task's shared prompt and responses are encoded once) or tuples in COLUMNS order,
encoded here. Parquet rows are tuples in COLUMNS order, buffered into row groups under an
explicit Arrow schema. JSONL and Parquet carry the same columns in the same order (tested).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from training.data import file_sha256

PARQUET_ROW_GROUP = 20_000  # rows buffered per Parquet row group: bounds memory


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


encode_str = json.encoder.encode_basestring  # a JSON string literal (C speed), UTF-8 kept as is


def messages_json(messages: list[dict[str, str]]) -> str:
    return "[" + ",".join('{"role":' + encode_str(m["role"]) + ',"content":' + encode_str(m["content"]) + "}" for m in messages) + "]"


class _HashingFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = open(path, "wb")  # noqa: SIM115  (closed in close())
        self.sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.bytes += len(data)
        self.handle.write(data)

    def close(self) -> None:
        self.handle.close()


class JsonlWriter:
    def __init__(self, path: Path, columns: list[str], schema: Any = None) -> None:
        self.file = _HashingFile(path)
        self.prefixes = ['{"' + columns[0] + '":'] + [',"' + c + '":' for c in columns[1:]]
        self.rows = 0
        self.lines: list[str] = []
        self.memo: dict[int, tuple[Any, str]] = {}

    def _encode(self, value: Any) -> str:
        kind = type(value)
        if kind is int:
            return str(value)
        if kind is float:
            return repr(value)
        if value is None:
            return "null"
        if kind is bool:
            return "true" if value else "false"
        if kind is str:
            return dumps(value)
        cached = self.memo.get(id(value))
        if cached is None:
            # The object is kept in the memo with its text, so its id cannot be reused meanwhile.
            cached = self.memo[id(value)] = (value, dumps(value))
        return cached[1]

    def write_rows(self, rows: list) -> None:
        if rows and type(rows[0]) is str:  # finished lines
            self.lines.extend(rows)
            self.rows += len(rows)
        else:
            for row in rows:
                self.write(row)

    def write(self, row: tuple) -> None:
        encode = self._encode
        self.lines.append("".join([p + encode(v) for p, v in zip(self.prefixes, row, strict=True)]) + "}\n")
        self.rows += 1

    def flush(self) -> None:
        if self.lines:
            self.file.write("".join(self.lines).encode("utf-8"))
            self.lines = []
        self.memo.clear()

    def close(self) -> dict[str, Any]:
        self.flush()
        self.file.close()
        return {"rows": self.rows, "sha256": self.file.sha.hexdigest(), "bytes": self.file.bytes}


class ParquetWriter:
    def __init__(self, path: Path, columns: list[str], schema: Any) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.columns = columns
        self.schema = schema
        self.writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        self.buffer: list[list[Any]] = [[] for _ in columns]
        self.rows = 0

    def write(self, row: tuple) -> None:
        for column, value in zip(self.buffer, row, strict=True):
            column.append(value)
        self.rows += 1
        if len(self.buffer[0]) >= PARQUET_ROW_GROUP:
            self._write_group()

    def write_rows(self, rows: list) -> None:
        for row in rows:
            self.write(row)

    def _write_group(self) -> None:
        import pyarrow as pa

        if self.buffer[0]:
            arrays = [pa.array(values, type=self.schema.field(name).type) for name, values in zip(self.columns, self.buffer, strict=True)]
            self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            self.buffer = [[] for _ in self.columns]

    def flush(self) -> None:  # row groups are written when full, not per task chunk
        pass

    def close(self) -> dict[str, Any]:
        self._write_group()
        self.writer.close()
        return {"rows": self.rows, "sha256": file_sha256(self.path), "bytes": self.path.stat().st_size}


def _arrow_types() -> dict[str, Any]:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    tiers = pa.list_(pa.list_(pa.int64()))
    generation = pa.struct(
        [
            ("run_id", pa.int64()), ("backend", pa.string()), ("model", pa.string()), ("model_revision", pa.string()),
            ("temperature", pa.float64()), ("top_p", pa.float64()), ("max_new_tokens", pa.int64()), ("seed", pa.int64()),
            ("system_prompt", pa.string()), ("sample_index", pa.int64()), ("finish_reason", pa.string()),
            ("token_count", pa.int64()),
        ]
    )
    response = pa.struct([("id", pa.int64()), ("content", pa.string()), ("model", pa.string()), ("generation", generation)])
    flag = pa.struct([("response_id", pa.int64()), ("flags", pa.list_(pa.string()))])
    annotation = pa.struct(
        [
            ("annotator", pa.string()), ("tiers", tiers), ("flags", pa.list_(flag)), ("rating", pa.int64()),
            ("rationale", pa.string()), ("display_order", pa.list_(pa.int64())), ("duration_seconds", pa.float64()),
            ("submitted_at", pa.string()),
        ]
    )
    return {"messages": pa.list_(message), "tiers": tiers, "responses": pa.list_(response), "annotations": pa.list_(annotation),
            "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}


# Each format's columns, in file order, with their types (the keys of _arrow_types). One list per
# format: COLUMNS, the Parquet schemas and the JSONL line templates are derived from it, so a new
# column is one entry here and one value in the row builders' tuples.
FORMAT_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "pairs": [("prompt", "messages"), ("chosen", "messages"), ("rejected", "messages"), ("margin", "float"),
              ("prompt_id", "int"), ("chosen_id", "int"), ("rejected_id", "int"), ("votes_chosen", "int"),
              ("votes_rejected", "int"), ("agreement", "float")],
    "unpaired": [("prompt", "messages"), ("completion", "messages"), ("label", "bool"), ("prompt_id", "int"),
                 ("completion_id", "int"), ("task_id", "int")],
    "rankings": [("prompt", "messages"), ("responses", "responses"), ("annotations", "annotations"), ("consensus", "tiers"),
                 ("agreement", "float"), ("prompt_id", "int"), ("task_id", "int"), ("is_gold", "bool")],
    "sft": [("messages", "messages"), ("prompt_id", "int"), ("response_id", "int"), ("task_id", "int"), ("origin", "str"),
            ("votes", "int"), ("agreement", "float"), ("demonstration_id", "int")],
}
# Every format ends with who ranked: "human" (annotators' rankings) or "judge" (a judge run's, docs/judge.md).
for _columns in FORMAT_COLUMNS.values():
    _columns.append(("source", "str"))
COLUMNS = {name: [column for column, _ in columns] for name, columns in FORMAT_COLUMNS.items()}


def parquet_schemas() -> dict[str, Any]:
    import pyarrow as pa

    types = _arrow_types()
    return {name: pa.schema([(column, types[kind]) for column, kind in columns]) for name, columns in FORMAT_COLUMNS.items()}


def _line_template(data_format: str) -> str:
    """The format's JSONL line with a %s per column: a finished line from pre-encoded values."""
    return "{" + ",".join(f'"{column}":%s' for column in COLUMNS[data_format]) + "}\n"


# Finished JSONL lines (values pre-encoded as JSON text; ints may be passed as they are).
LINES = {name: _line_template(name) for name in COLUMNS}


def writer_path(writer: JsonlWriter | ParquetWriter) -> Path:
    return writer.file.path if isinstance(writer, JsonlWriter) else writer.path


def writer_for(file_format: str, data_format: str, path: Path) -> JsonlWriter | ParquetWriter:
    """A writer of `data_format` rows into `path` as `file_format` (jsonl | parquet)."""
    if file_format == "parquet":
        return ParquetWriter(path, COLUMNS[data_format], parquet_schemas()[data_format])
    return JsonlWriter(path, COLUMNS[data_format])
