"""Prompt import from JSONL or CSV: validate everything, then insert in bulk, all or nothing.

Line formats (docs/importing.md), one JSON object a line:
    {"prompt": "text"}  or  {"messages": [{"role": "user", "content": "..."}]}
    optional "id", "metadata" (object) and "responses": ["...", ...] or [{"content": "...", "model": "..."}]
CSV: a header row with `prompt` (or `messages`, a JSON list), optional `id`, `metadata` (JSON object),
`responses` (JSON list) and/or any number of `response`, `response_1`, `response_2`, ... columns.

The file is read twice and never held in memory: pass one validates every line and collects every
bad line with its number and reason; only a clean file reaches pass two, which inserts prompts and
their ready-made responses in chunks inside one transaction. Prompts are identified by a hash of
their messages, unique per project, so importing the same prompts again adds nothing.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.errors import ApplicationError
from annotation.limits import JSONTooDeep, json_loads_bounded
from annotation.models import Project, Prompt, RankingTask, Response, TaskType
from annotation.services.prerender import prerender_after_commit
from annotation.services.priority_schedule import priority_score_new_tasks
from annotation.services.read_ahead import read_ahead
from annotation.services.response_search import bulk_load_settle_after_commit, response_vectors_defer
from annotation.services.tasks import TaskCreationResult, distinct_responses, response_text_hash, tasks_create_for_prompts
from annotation.sql import importing as sql
from annotation.sql import postgres_statements

ROLES = ("system", "user", "assistant")
FORMATS = ("jsonl", "csv")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
CHUNK = 2000


def import_limits() -> dict[str, int]:
    """Limits on what one import may contain; each is a setting (IMPORT_MAX_*, config/settings.py)."""
    return {
        "max_file_bytes": settings.IMPORT_MAX_FILE_BYTES,
        "max_line_bytes": settings.IMPORT_MAX_LINE_BYTES,
        "max_messages": settings.IMPORT_MAX_MESSAGES,
        "max_responses": settings.IMPORT_MAX_RESPONSES,
        "max_id_chars": 200,
    }


@dataclass
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


# What a rejection lists: the first bad lines and a count per reason, never every line (a file of
# millions of bad lines must not answer with hundreds of megabytes).
MAX_REPORTED_LINES = 100
MAX_REPORTED_REASONS = 20
_VARIABLE = re.compile(r'"(?:[^"\\]|\\.)*"|\d+')


def reason_kind(reason: str) -> str:
    """A reason without its particulars (numbers, quoted values), to count bad lines by reason."""
    return _VARIABLE.sub(lambda m: '"…"' if m.group().startswith('"') else "N", reason)[:200]


class ImportRejected(ApplicationError):
    """The file had bad lines; nothing was imported.

    `errors`: the first MAX_REPORTED_LINES bad lines; `total`: how many there were; `reasons`:
    the count of bad lines per reason kind (reason_kind), the most frequent first.
    """

    def __init__(self, errors: list[LineError], *, total: int | None = None, reasons: dict[str, int] | None = None) -> None:
        self.errors = errors[:MAX_REPORTED_LINES]
        self.total = len(errors) if total is None else total
        if reasons is None:
            reasons = {}
            for e in errors:
                reasons[reason_kind(e.reason)] = reasons.get(reason_kind(e.reason), 0) + 1
        self.reasons = dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
        self.truncated = self.total > len(self.errors)
        noun = "line" if self.total == 1 else "lines"
        listed = [str(e) for e in self.errors]
        if self.truncated:
            listed.append(f"... and {self.total - len(self.errors)} more bad lines (the first {len(self.errors)} are listed)")
        super().__init__(
            f"{self.total} bad {noun}; nothing was imported.",
            code="invalid_file",
            fields={"file": listed},
            extra={
                "line_errors": [asdict(e) for e in self.errors],
                "bad_lines": self.total,
                "truncated": self.truncated,
                "reasons": [{"reason": reason, "count": count} for reason, count in self.reasons.items()],
            },
        )

    def summary_lines(self) -> list[str]:
        """The count by reason, one line each (for the command)."""
        return [f"{count} x {reason}" for reason, count in self.reasons.items()]


class _ErrorCollector:
    """Keeps the first MAX_REPORTED_LINES bad lines and a bounded count per reason kind."""

    def __init__(self) -> None:
        self.first: list[LineError] = []
        self.total = 0
        self.reasons: dict[str, int] = {}

    def add(self, line: int, reason: str) -> None:
        self.total += 1
        if len(self.first) < MAX_REPORTED_LINES:
            self.first.append(LineError(line, reason))
        kind = reason_kind(reason)
        if kind not in self.reasons and len(self.reasons) >= MAX_REPORTED_REASONS:
            kind = "other reasons"
        self.reasons[kind] = self.reasons.get(kind, 0) + 1

    def rejection(self) -> ImportRejected:
        return ImportRejected(self.first, total=self.total, reasons=self.reasons)


@dataclass
class ImportResult:
    records: int = 0  # non-blank lines (CSV: data rows)
    prompts_created: int = 0
    prompts_existing: int = 0  # already in the project before this import
    duplicates_in_file: int = 0  # the same prompt again further down the file
    responses_created: int = 0
    responses_ignored: int = 0  # on prompts that already had ready-made responses
    tasks_created: int = 0
    prompts_without_task: int = 0  # fewer than two distinct responses
    responses_merged: int = 0  # identical responses of one prompt merged into one

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParsedLine:
    line: int
    messages: list[dict[str, str]]
    content_hash: str
    external_id: str
    metadata: dict[str, Any]
    responses: list[tuple[str, str]]  # (text, model name)


def prompt_content_hash(messages: list[dict[str, str]]) -> str:
    """The prompt's identity within a project: sha256 of its canonical messages."""
    canonical = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def detect_format(*, filename: str, file_format: str | None = None) -> str:
    """`file_format` if given, else from the file name's extension."""
    if file_format:
        if file_format not in FORMATS:
            raise ApplicationError(
                f"Unknown file format '{file_format}' (expected jsonl or csv).", fields={"file_format": ["must be jsonl or csv"]}
            )
        return file_format
    ext = os.path.splitext(filename or "")[1].lower()
    if ext not in EXTENSIONS:
        raise ApplicationError(
            f"Cannot tell the format of '{filename}': name it .jsonl or .csv, or give the format.",
            fields={"file_format": ["needed: the file name does not end in .jsonl or .csv"]},
        )
    return EXTENSIONS[ext]


# ---------------------------------------------------------------------------------------------
# Validation of one record (shared by JSONL and CSV)


def _messages_of(record: dict[str, Any], limits: dict[str, int]) -> list[dict[str, str]]:
    has_prompt, has_messages = "prompt" in record, "messages" in record
    if has_prompt and has_messages:
        raise ValueError("give either 'prompt' or 'messages', not both")
    if has_prompt:
        text = record["prompt"]
        if not isinstance(text, str):
            raise ValueError("'prompt' must be a string")
        if not text.strip():
            raise ValueError("'prompt' is empty")
        return [{"role": "user", "content": text.strip()}]
    if not has_messages:
        raise ValueError("missing 'prompt' (or 'messages')")
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise ValueError("'messages' must be a non-empty list of {role, content}")
    if len(raw) > limits["max_messages"]:
        raise ValueError(f"too many messages: {len(raw)} (limit {limits['max_messages']})")
    messages = []
    for n, message in enumerate(raw, start=1):
        if not isinstance(message, dict):
            raise ValueError(f"message {n} must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"message {n}: unknown role {json.dumps(role)} (expected system, user or assistant)")
        if not isinstance(content, str) or not content.strip():
            raise ValueError(f"message {n}: 'content' must be a non-empty string")
        messages.append({"role": role, "content": content.strip()})
    if messages[-1]["role"] != "user":
        raise ValueError("the last message must have role 'user' (it is what the responses answer)")
    return messages


def _responses_of(raw: Any, limits: dict[str, int]) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("'responses' must be a list")
    if len(raw) > limits["max_responses"]:
        raise ValueError(f"too many responses: {len(raw)} (limit {limits['max_responses']})")
    out = []
    for n, item in enumerate(raw, start=1):
        model = ""
        if isinstance(item, dict):
            text, model = item.get("content"), item.get("model") or ""
            if not isinstance(model, str) or len(model) > 500:
                raise ValueError(f"response {n}: 'model' must be a string of at most 500 characters")
        else:
            text = item
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"response {n} must be a non-empty string (or an object with a non-empty 'content')")
        out.append((text, model))
    return out


def _parse_record(record: Any, line: int, limits: dict[str, int]) -> ParsedLine:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    messages = _messages_of(record, limits)
    external_id = record.get("id", "")
    if external_id is None:
        external_id = ""
    if isinstance(external_id, bool) or not isinstance(external_id, str | int):
        raise ValueError("'id' must be a string or an integer")
    external_id = str(external_id)
    if len(external_id) > limits["max_id_chars"]:
        raise ValueError(f"'id' is longer than {limits['max_id_chars']} characters")
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    return ParsedLine(
        line=line,
        messages=messages,
        content_hash=prompt_content_hash(messages),
        external_id=external_id,
        metadata=metadata,
        responses=_responses_of(record.get("responses"), limits),
    )


# ---------------------------------------------------------------------------------------------
# Reading: each reader yields (line number, ParsedLine or error reason, bytes read so far)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _jsonl_records(fileobj: IO[bytes], limits: dict[str, int]) -> Iterator[tuple[int, ParsedLine | str, int]]:
    max_line = limits["max_line_bytes"]
    number, position = 0, 0
    while True:
        raw = fileobj.readline(max_line + 1)
        if not raw:
            return
        number += 1
        position += len(raw)
        if len(raw) > max_line and not raw.endswith(b"\n"):
            # Skip the rest of the over-long line without holding it.
            while True:
                rest = fileobj.readline(1024 * 1024)
                position += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, f"line longer than {max_line} bytes", position
            continue
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield number, f"not UTF-8 ({exc.reason} at byte {exc.start})", position
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        try:
            record = json_loads_bounded(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg} (column {exc.colno})", position
            continue
        except ValueError as exc:
            yield number, f"invalid JSON: {exc}", position
            continue
        if "\\u0000" in text:
            # PostgreSQL text and jsonb cannot store NUL characters.
            yield number, "contains a NUL character (\\u0000)", position
            continue
        try:
            yield number, _parse_record(record, number, limits), position
        except ValueError as exc:
            yield number, str(exc), position


def _csv_record(row: dict[str | None, Any], columns: list[str]) -> dict[str, Any]:
    """A CSV row turned into the JSONL record shape (JSON-valued columns decoded)."""
    if row.get(None):
        raise ValueError(f"more cells than header columns ({len(columns)})")
    if any("\x00" in (value or "") or "\\u0000" in (value or "") for key, value in row.items() if key is not None):
        raise ValueError("contains a NUL character, which PostgreSQL cannot store")
    record: dict[str, Any] = {}
    if "prompt" in columns and (row.get("prompt") or "") != "":
        record["prompt"] = row["prompt"]
    if "messages" in columns and (row.get("messages") or "").strip():
        try:
            record["messages"] = json_loads_bounded(row["messages"])
        except (json.JSONDecodeError, JSONTooDeep) as exc:
            raise ValueError(f"'messages' is not valid JSON: {exc.msg}") from exc
    if "prompt" in columns and "messages" not in record and "prompt" not in record:
        record["prompt"] = row.get("prompt") or ""
    if (row.get("id") or "").strip():
        record["id"] = row["id"].strip()
    if (row.get("metadata") or "").strip():
        try:
            record["metadata"] = json_loads_bounded(row["metadata"])
        except (json.JSONDecodeError, JSONTooDeep) as exc:
            raise ValueError(f"'metadata' is not valid JSON: {exc.msg}") from exc
    responses: list[Any] = []
    if (row.get("responses") or "").strip():
        try:
            listed = json_loads_bounded(row["responses"])
        except (json.JSONDecodeError, JSONTooDeep) as exc:
            raise ValueError(f"'responses' is not valid JSON: {exc.msg}") from exc
        responses.extend(listed if isinstance(listed, list) else [listed])
    for column in columns:
        if column == "response" or column.startswith("response_"):
            value = row.get(column) or ""
            if value.strip():
                responses.append(value)
    if responses:
        record["responses"] = responses
    return record


class _CountingReader(io.RawIOBase):
    """Counts bytes read, so the CSV reader can report progress in bytes like the JSONL one."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.fileobj.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def _csv_records(fileobj: IO[bytes], limits: dict[str, int]) -> Iterator[tuple[int, ParsedLine | str, int]]:
    counter = _CountingReader(fileobj)
    text = io.TextIOWrapper(io.BufferedReader(counter), encoding="utf-8-sig", newline="")
    csv.field_size_limit(limits["max_line_bytes"])
    # strict: a quoted field still open at the end of the file is an error ("unexpected end of
    # data"), not a prompt that silently swallowed every row after it.
    reader = csv.DictReader(text, strict=True)
    try:
        columns = [c.strip() for c in (reader.fieldnames or [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        yield 1, f"unreadable header: {exc}", counter.count
        return
    reader.fieldnames = columns
    if "prompt" not in columns and "messages" not in columns:
        yield 1, "the header has no 'prompt' (or 'messages') column", counter.count
        return
    while True:
        start = reader.line_num + 1  # the physical line this record starts on
        try:
            row = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            # The decoder cannot resynchronise after bad bytes: report and stop reading.
            yield start, f"not UTF-8 ({exc.reason}); the rest of the file was not read", counter.count
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                yield start, (f"unterminated quote: the quoted field that starts on line {start} is never closed "
                              "(every row after it would be read into it)"), counter.count
            else:
                yield start, f"bad CSV: {exc}", counter.count
            return
        if not any((value or "").strip() for key, value in row.items() if key is not None):
            continue
        try:
            yield start, _parse_record(_csv_record(row, columns), start, limits), counter.count
        except ValueError as exc:
            yield start, str(exc), counter.count


def _records(fileobj: IO[bytes], file_format: str, limits: dict[str, int]):
    fileobj.seek(0)
    return _jsonl_records(fileobj, limits) if file_format == "jsonl" else _csv_records(fileobj, limits)


_BATCH = 500  # records handed over from the reading thread at a time


def _batched(records: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for record in records:
        batch.append(record)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _read_ahead(records: Iterator[Any], *, batches: int = 4) -> Iterator[list[Any]]:
    """`records` in lists of up to _BATCH, read and parsed by a thread while the caller writes.

    Pass two alternates parsing (client CPU) with COPY and its index and constraint work (server
    CPU); reading ahead in a thread (services/read_ahead.py) lets the two overlap. At most
    `batches` lists wait at a time, so memory stays flat. Exceptions from the reader are raised
    here; leaving the loop early stops the thread.
    """
    return read_ahead(lambda: _batched(records), depth=batches, name="import-read-ahead")


def _file_size(fileobj: IO[bytes]) -> int:
    fileobj.seek(0, os.SEEK_END)
    size = fileobj.tell()
    fileobj.seek(0)
    return size


# ---------------------------------------------------------------------------------------------
# The service


def prompts_import(
    *,
    project: Project,
    fileobj: IO[bytes],
    file_format: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> ImportResult:
    """Import every prompt of a JSONL or CSV file into `project`, or nothing at all.

    Args:
        project: where the prompts go.
        fileobj: a seekable binary file (it is read twice, never whole).
        file_format: "jsonl" or "csv" (see detect_format).
        progress: called as progress(phase, bytes_done, bytes_total), phase "validate" or "import".

    Returns the counts (created, already there, responses, tasks). Prompts that carry two or more
    distinct ready-made responses get their ranking task at once.

    Raises:
        ApplicationError for a file over the size limit or an unknown format;
        ImportRejected (400) when any line is bad: the first MAX_REPORTED_LINES bad lines with their
        numbers, the total and a count by reason. Nothing is written then.
    """
    if file_format not in FORMATS:
        raise ApplicationError(f"Unknown file format '{file_format}'.", fields={"file_format": ["must be jsonl or csv"]})
    limits = import_limits()
    size = _file_size(fileobj)
    if size > limits["max_file_bytes"]:
        raise ApplicationError(
            f"The file is {size} bytes; the limit is {limits['max_file_bytes']} bytes.",
            fields={"file": [f"larger than {limits['max_file_bytes']} bytes"]},
        )
    if size == 0:
        raise ApplicationError("The file is empty.", fields={"file": ["empty"]})

    # Pass one: validate every line, keeping nothing but the first bad lines and counts by reason.
    errors = _ErrorCollector()
    records = 0
    for number, parsed, position in _records(fileobj, file_format, limits):
        if isinstance(parsed, str):
            errors.add(number, parsed)
        else:
            records += 1
        if progress and number % 1000 == 0:
            progress("validate", position, size)
    if progress:
        progress("validate", size, size)
    if errors.total:
        raise errors.rejection()
    if records == 0:
        raise ApplicationError("The file has no prompts.", fields={"file": ["no prompts in it"]})

    result = _insert_all(project=project, fileobj=fileobj, file_format=file_format, limits=limits, size=size, progress=progress)
    result.records = records
    return result


@transaction.atomic
def _insert_all(
    *, project: Project, fileobj: IO[bytes], file_format: str, limits: dict[str, int], size: int, progress: Callable | None
) -> ImportResult:
    # One import per project at a time: a concurrent import of the same prompts waits here and
    # then finds them all present, instead of failing on the unique constraint.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    result = ImportResult()
    # Into an empty project nothing can already exist (repeats within the file are caught by `seen`).
    was_empty = not Prompt.objects.filter(project=project).exists()
    seen: set[bytes] = set()  # 32-byte digests: about 8 MB per 100k prompts
    copying = postgres_statements() and project.task_type == TaskType.RANKING
    if copying:
        # Check the foreign keys of each COPY as it ends rather than all at the commit: the same
        # checks (a violation still rolls everything back), but done while the reading thread
        # parses the next lines instead of after the last one, and no queue of deferred checks grows.
        sql.constraints_immediate(True)
        # The responses' full-text vectors are most of the database's work here: the fill computes
        # them after the commit, and the search reads them from the text until then.
        response_vectors_defer()
    chunk: list[ParsedLine] = []
    first_task_id: int | None = None  # the smallest task id created (ids are reserved in increasing order)
    with contextlib.closing(_read_ahead(_records(fileobj, file_format, limits))) as batches:
        for number, parsed, position in (record for batch in batches for record in batch):
            if isinstance(parsed, str):  # the file changed between the passes
                raise ImportRejected([LineError(number, parsed)])
            digest = bytes.fromhex(parsed.content_hash)
            if digest in seen:
                result.duplicates_in_file += 1
                continue
            seen.add(digest)
            chunk.append(parsed)
            if len(chunk) >= CHUNK:
                created_from = _insert_chunk(project=project, chunk=chunk, result=result, was_empty=was_empty)
                first_task_id = first_task_id or created_from
                chunk = []
                if progress:
                    progress("import", position, size)
    if chunk:
        created_from = _insert_chunk(project=project, chunk=chunk, result=result, was_empty=was_empty)
        first_task_id = first_task_id or created_from
    if copying:
        sql.constraints_immediate(False)
        if result.prompts_created or result.responses_created:  # the vectors it deferred, fresh statistics
            bulk_load_settle_after_commit(rows=result.prompts_created + result.responses_created)
        if result.tasks_created:  # the COPY path bypasses tasks_create_for_prompts, so it schedules these itself
            priority_score_new_tasks(project_id=project.pk)  # uncertainty priority: score the new tasks, once
            prerender_after_commit(project_id=project.pk, first_task_id=first_task_id)  # their Markdown, once
    if project.task_type == TaskType.DEMONSTRATION:
        # Every prompt is a demonstration task, with or without a draft (idempotent: existing ones stay).
        tasks = tasks_create_for_prompts(project=project, prompt_ids=Prompt.objects.filter(project=project).values_list("id", flat=True))
        result.tasks_created += tasks.created
    if progress:
        progress("import", size, size)
    return result


def _insert_chunk(*, project: Project, chunk: list[ParsedLine], result: ImportResult, was_empty: bool) -> int | None:
    """Insert the chunk's new prompts, their responses, and the ranking tasks they make possible;
    returns the smallest id of the tasks it created."""
    existing: dict[str, int] = {}
    if not was_empty:
        hashes = [p.content_hash for p in chunk]
        existing = dict(Prompt.objects.filter(project=project, content_hash__in=hashes).values_list("content_hash", "id"))
    new = [p for p in chunk if p.content_hash not in existing]
    with_responses = [p for p in chunk if p.responses]
    ids = dict(existing)
    ids.update(_insert_prompts(project=project, prompts=new, want_ids=bool(with_responses)))
    result.prompts_created += len(new)
    result.prompts_existing += len(existing)

    # A prompt's ready-made responses are set once: those of a prompt that already has some are ignored.
    already = set(
        Response.objects.filter(prompt_id__in=[existing[p.content_hash] for p in with_responses if p.content_hash in existing], run=None)
        .values_list("prompt_id", flat=True)
        .distinct()
    )
    rows: list[tuple[int, int, str, str]] = []
    touched: list[int] = []
    for p in with_responses:
        prompt_id = ids[p.content_hash]
        if prompt_id in already:
            result.responses_ignored += len(p.responses)
            continue
        touched.append(prompt_id)
        rows.extend((prompt_id, index, text, model) for index, (text, model) in enumerate(p.responses))
    result.responses_created += len(rows)
    if postgres_statements() and project.task_type == TaskType.RANKING:
        tasks = _copy_responses_and_tasks(project=project, rows=rows)  # scored once, after the last chunk (_insert_all)
    else:  # the portable twin: bulk_create, then the tasks built from the rows read back
        _insert_responses(rows)
        tasks = tasks_create_for_prompts(project=project, prompt_ids=touched, run=None) if touched else TaskCreationResult()
    result.tasks_created += tasks.created
    result.prompts_without_task += tasks.without_task
    result.responses_merged += tasks.duplicates_merged
    return tasks.first_created_id


def _copy_responses_and_tasks(*, project: Project, rows: list[tuple[int, int, str, str]]) -> TaskCreationResult:
    """PostgreSQL: COPY the responses, their prompts' new tasks and the task-response links, nothing read back.

    The prompts are new or had no imported responses (the caller skips the others), so none has a
    task over imported responses yet: every task is built here, by the rule tasks_create_for_prompts
    applies (distinct_responses). Ids come from the sequences first (reserve_ids), so the rows can
    be linked in memory; the caller holds the project lock, so no other import touches these prompts.
    """
    result = TaskCreationResult()
    if not rows:
        return result
    now = timezone.now()
    response_ids = sql.reserve_ids(model=Response, count=len(rows))
    hashed = [(rid, prompt_id, index, text, response_text_hash(text), model)
              for rid, (prompt_id, index, text, model) in zip(response_ids, rows, strict=True)]
    sql.copy_responses_with_ids(rows=hashed, now=now)
    plans: list[tuple[int, list[int]]] = []  # (prompt id, the response ids its task ranks)
    start = 0
    while start < len(hashed):  # rows come grouped by prompt, in sample order
        end = start
        while end < len(hashed) and hashed[end][1] == hashed[start][1]:
            end += 1
        kept, merged = distinct_responses((row[0], row[4], row[3]) for row in hashed[start:end])
        result.duplicates_merged += merged
        if len(kept) < 2:
            result.without_task += 1
        else:
            plans.append((hashed[start][1], kept))
        start = end
    task_ids = sql.reserve_ids(model=RankingTask, count=len(plans))
    sql.copy_tasks(rows=((task_id, prompt_id) for task_id, (prompt_id, _) in zip(task_ids, plans, strict=True)),
                   project_id=project.pk, overlap=project.overlap, target_overlap=project.min_overlap, now=now)
    sql.copy_task_responses(rows=((task_id, rid) for task_id, (_, kept) in zip(task_ids, plans, strict=True) for rid in kept))
    result.created = len(plans)
    result.first_created_id = task_ids[0] if task_ids else None
    return result


def _insert_prompts(*, project: Project, prompts: list[ParsedLine], want_ids: bool) -> dict[str, int]:
    """Insert prompts (none of them present: the caller holds the project lock); content hash -> id if want_ids."""
    if not prompts:
        return {}
    hashes = [p.content_hash for p in prompts]
    if postgres_statements():
        sql.copy_prompts(project_id=project.pk, prompts=prompts, now=timezone.now())
    else:
        created = Prompt.objects.bulk_create(
            [
                Prompt(project=project, external_id=p.external_id, messages=p.messages, metadata=p.metadata, content_hash=p.content_hash)
                for p in prompts
            ]
        )
        if created and created[0].pk is not None:
            return {row.content_hash: row.pk for row in created}
    if not want_ids:
        return {}
    return dict(Prompt.objects.filter(project=project, content_hash__in=hashes).values_list("content_hash", "id"))


def _insert_responses(rows: list[tuple[int, int, str, str]]) -> None:
    """Insert imported responses (run NULL): (prompt id, sample index, text, model name)."""
    if not rows:
        return
    if postgres_statements():
        hashed = ((prompt_id, index, text, response_text_hash(text), model) for prompt_id, index, text, model in rows)
        sql.copy_responses(rows=hashed, now=timezone.now())
        return
    Response.objects.bulk_create(
        [
            Response(prompt_id=prompt_id, run=None, sample_index=index, text=text, text_hash=response_text_hash(text), model_name=model)
            for prompt_id, index, text, model in rows
        ],
        batch_size=CHUNK,
    )
