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


# The JSONL lines of the two high-volume formats, in COLUMNS order (a test checks they agree).
PAIRS_LINE = (
    '{"prompt":%s,"chosen":%s,"rejected":%s,"margin":%r,"prompt_id":%d,"chosen_id":%d,"rejected_id":%d,'
    '"votes_chosen":%d,"votes_rejected":%d,"agreement":%s}\n'
)
UNPAIRED_LINE = '{"prompt":%s,"completion":%s,"label":%s,"prompt_id":%d,"completion_id":%d,"task_id":%d}\n'


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


def parquet_schemas() -> dict[str, Any]:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    messages = pa.list_(message)
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
    return {
        "pairs": pa.schema(
            [
                ("prompt", messages), ("chosen", messages), ("rejected", messages), ("margin", pa.float64()),
                ("prompt_id", pa.int64()), ("chosen_id", pa.int64()), ("rejected_id", pa.int64()),
                ("votes_chosen", pa.int64()), ("votes_rejected", pa.int64()), ("agreement", pa.float64()),
            ]
        ),
        "unpaired": pa.schema(
            [
                ("prompt", messages), ("completion", messages), ("label", pa.bool_()), ("prompt_id", pa.int64()),
                ("completion_id", pa.int64()), ("task_id", pa.int64()),
            ]
        ),
        "rankings": pa.schema(
            [
                ("prompt", messages), ("responses", pa.list_(response)), ("annotations", pa.list_(annotation)),
                ("consensus", tiers), ("agreement", pa.float64()), ("prompt_id", pa.int64()), ("task_id", pa.int64()),
                ("is_gold", pa.bool_()),
            ]
        ),
    }


COLUMNS = {
    "pairs": ["prompt", "chosen", "rejected", "margin", "prompt_id", "chosen_id", "rejected_id", "votes_chosen",
              "votes_rejected", "agreement"],
    "unpaired": ["prompt", "completion", "label", "prompt_id", "completion_id", "task_id"],
    "rankings": ["prompt", "responses", "annotations", "consensus", "agreement", "prompt_id", "task_id", "is_gold"],
}




def writer_path(writer: JsonlWriter | ParquetWriter) -> Path:
    return writer.file.path if isinstance(writer, JsonlWriter) else writer.path


def writer_for(file_format: str, data_format: str, path: Path) -> JsonlWriter | ParquetWriter:
    """A writer of `data_format` rows into `path` as `file_format` (jsonl | parquet)."""
    if file_format == "parquet":
        return ParquetWriter(path, COLUMNS[data_format], parquet_schemas()[data_format])
    return JsonlWriter(path, COLUMNS[data_format])
