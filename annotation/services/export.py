"""Preference dataset exports that TRL reads as they are: pairs, unpaired (KTO) and rankings.

One export is a directory: `train.<ext>`, `test.<ext>` and `manifest.json` (written last, so a
directory with a manifest is complete). Rows are streamed: tasks are read in prompt order with a
server-side cursor in chunks, each chunk's rankings, responses and prompts are fetched with one
query each (in a reader thread on PostgreSQL), and rows are written as they are made, so memory
stays flat however many rankings there are. docs/export.md has the details and the figures.

Formats (column order is the file's column order; JSONL and Parquet carry the same columns):
- pairs: prompt, chosen, rejected, margin, prompt_id, chosen_id, rejected_id, votes_chosen,
  votes_rejected, agreement. Pairs come from each task's consensus (Borda tiers) under a stated
  policy; responses tied in the consensus make no pair; `margin` is the share of the task's
  votes on that pair that preferred `chosen`.
- unpaired: prompt, completion, label, prompt_id, completion_id (+ task_id). The top consensus
  tiers are desirable (label true), the bottom ones undesirable; middle tiers are left out.
- rankings: every annotation as given, with pseudonymous annotator ids (HMAC of the user id with
  a random per-export salt that is never stored, so ids are stable inside one export and cannot
  be turned back into users), the consensus and agreement, and each response's provenance.

The split is prompt-disjoint and deterministic: a prompt is in the test split when
sha256("<seed>:<prompt id>") read as a fraction is below `test_fraction`.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import hmac
import json
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from annotation.dispatch import TaskName, enqueue_after_commit
from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import ExportSnapshot, GenerationRun, JobStatus, Project, Prompt, RankingTask, Role
from annotation.models import Ranking as RankingRow
from annotation.models import Response as ResponseRow
from annotation.services.access import project_row_get_for_user
from annotation.services.consensus import scores_to_tiers
from training.data import file_sha256

SCHEMA_VERSION = 1
FORMATS = ("pairs", "unpaired", "rankings")
FILE_FORMATS = ("jsonl", "parquet")
POLICIES = ("all", "best_vs_rest", "adjacent")
# Tasks per round trip (three queries per chunk). An operator knob; tests make it small.
TASK_CHUNK = int(os.environ.get("EXPORT_CHUNK_TASKS", "2000"))
PARQUET_ROW_GROUP = 20_000  # rows buffered per Parquet row group: bounds memory

Progress = Callable[[int, int], None]  # (tasks done, tasks total)


# --------------------------------------------------------------------------------------------
# Options


@dataclass
class ExportOptions:
    """What to export and how. Validated by `export_options_from_input`.

    Args:
        format: pairs | unpaired | rankings.
        file_format: jsonl | parquet.
        test_fraction: share of prompts in the test split, 0 <= f < 1.
        seed: seeds the split.
        policy: pairs from the consensus tiers: all (every better/worse pair), best_vs_rest (the
            top tier against every lower one), adjacent (each tier against the next one).
        min_agreement: keep only tasks whose agreement is at least this (tasks with a single
            ranking have no agreement and are dropped when this is set).
        min_votes: keep only tasks with at least this many (filtered) rankings.
        exclude_flagged: leave out responses that any counted annotator flagged (pairs, unpaired).
        exclude_gold: leave out gold tasks.
        annotators: count only the rankings of these usernames.
        since, until: count only rankings submitted in [since, until).
        desirable_tiers, undesirable_tiers: unpaired: how many top / bottom consensus tiers are
            labelled true / false.
    """

    format: str = "pairs"
    file_format: str = "jsonl"
    test_fraction: float = 0.1
    seed: int = 0
    policy: str = "all"
    min_agreement: float | None = None
    min_votes: int = 1
    exclude_flagged: bool = False
    exclude_gold: bool = False
    annotators: list[str] | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    desirable_tiers: int = 1
    undesirable_tiers: int = 1

    def filters(self) -> dict[str, Any]:
        return {
            "min_agreement": self.min_agreement,
            "min_votes": self.min_votes,
            "exclude_flagged": self.exclude_flagged,
            "exclude_gold": self.exclude_gold,
            "annotators": self.annotators,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    def policy_description(self) -> dict[str, Any]:
        if self.format == "pairs":
            return {
                "pairs": self.policy,
                "consensus": "borda",
                "ties": "dropped",
                "margin": "share of the pair's votes that preferred chosen",
            }
        if self.format == "unpaired":
            return {
                "consensus": "borda",
                "desirable_tiers": self.desirable_tiers,
                "undesirable_tiers": self.undesirable_tiers,
                "middle_tiers": "dropped",
            }
        return {"consensus": "borda", "annotator_ids": "hmac-sha256 with a per-export random salt, not stored"}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        data["until"] = self.until.isoformat() if self.until else None
        return data


def _as_datetime(name: str, value: Any, errors: dict[str, list[str]]) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = parse_datetime(str(value))
        except ValueError:  # well formed but impossible, e.g. minute 99
            parsed = None
        if parsed is None:
            errors[name] = [f"not an ISO 8601 date-time: {value!r}"]
            return None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


def export_options_from_input(data: dict[str, Any]) -> ExportOptions:
    """Validate raw options (API body, command line, stored snapshot options) into ExportOptions.

    Raises ApplicationError (400) naming every bad field; unknown fields are errors too, so a
    misspelt filter never silently exports everything.
    """
    errors: dict[str, list[str]] = {}
    known = set(ExportOptions.__dataclass_fields__)
    for key in data:
        if key not in known:
            errors[key] = ["unknown option"]
    opts = ExportOptions()

    def choice(name: str, allowed: tuple[str, ...]) -> None:
        if name in data and data[name] is not None:
            if data[name] not in allowed:
                errors[name] = [f"must be one of {', '.join(allowed)}; got {data[name]!r}"]
            else:
                setattr(opts, name, data[name])

    def number(name: str, kind: type, low: float | None, high: float | None, *, high_open: bool = False,
               nullable: bool = False) -> None:
        if name not in data or (data[name] is None and not nullable):
            return
        value = data[name]
        if value is None:
            setattr(opts, name, None)
            return
        try:
            if isinstance(value, bool):
                raise ValueError
            number_value = kind(value)
            if kind is int and float(value) != number_value:
                raise ValueError
        except (TypeError, ValueError):
            errors[name] = [f"must be {'an integer' if kind is int else 'a number'}; got {value!r}"]
            return
        if low is not None and number_value < low:
            errors[name] = [f"must be at least {low}; got {number_value}"]
        elif high is not None and (number_value >= high if high_open else number_value > high):
            errors[name] = [f"must be {'below' if high_open else 'at most'} {high}; got {number_value}"]
        else:
            setattr(opts, name, number_value)

    def flag(name: str) -> None:
        if name in data and data[name] is not None:
            if not isinstance(data[name], bool):
                errors[name] = [f"must be true or false; got {data[name]!r}"]
            else:
                setattr(opts, name, data[name])

    if data.get("format") is None:
        errors["format"] = [f"required: one of {', '.join(FORMATS)}"]
    choice("format", FORMATS)
    choice("file_format", FILE_FORMATS)
    choice("policy", POLICIES)
    number("test_fraction", float, 0.0, 1.0, high_open=True)
    number("seed", int, 0, 2**63 - 1)
    number("min_agreement", float, 0.0, 1.0, nullable=True)
    number("min_votes", int, 1, None)
    number("desirable_tiers", int, 1, None)
    number("undesirable_tiers", int, 1, None)
    flag("exclude_flagged")
    flag("exclude_gold")
    annotators = data.get("annotators")
    if annotators is not None:
        if not isinstance(annotators, list | tuple) or not all(isinstance(a, str) and a for a in annotators):
            errors["annotators"] = ["must be a list of usernames"]
        else:
            opts.annotators = sorted(set(annotators))
    opts.since = _as_datetime("since", data.get("since"), errors)
    opts.until = _as_datetime("until", data.get("until"), errors)
    if opts.since and opts.until and opts.since >= opts.until:
        errors["until"] = ["must be after since"]
    if errors:
        names = ", ".join(sorted(errors))
        raise ApplicationError(f"Invalid export options: {names}.", fields=errors)
    return opts


# --------------------------------------------------------------------------------------------
# Pure helpers (no database)


def split_of(*, prompt_id: int, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for a prompt: deterministic, so a prompt always lands in one split."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


Votes = dict[tuple[int, int], list[int]]  # (a, b) with a < b -> [a over b, b over a, ties]


def task_summary(rankings: list[list[list[int]]]) -> tuple[list[list[int]], Votes]:
    """The Borda consensus tiers and the pair votes of one task's rankings, in one pass.

    The same results as consensus.task_consensus(rankings).tiers and consensus.pair_votes(rankings)
    (a test checks this on random rankings), fused because the export runs it for every task:
    at a million rankings the two separate passes were a third of the export's time.
    """
    borda: dict[int, float] = {}
    votes: Votes = {}
    get = votes.get
    for tiers in rankings:
        total = sum(map(len, tiers))
        if total == len(tiers):  # no ties (the common case): a plain order, no tier bookkeeping
            order = [tier[0] for tier in tiers]
            for index, a in enumerate(order):
                borda[a] = borda.get(a, 0.0) + (total - 1 - index)
                for b in order[index + 1 :]:
                    key, slot = ((a, b), 0) if a < b else ((b, a), 1)
                    counts = get(key)
                    if counts is None:
                        counts = votes[key] = [0, 0, 0]
                    counts[slot] += 1
            continue
        above = 0
        placed = []
        for index, tier in enumerate(tiers):
            size = len(tier)
            score = total - above - size + 0.5 * (size - 1)
            for item in tier:
                borda[item] = borda.get(item, 0.0) + score
                placed.append((item, index))
            above += size
        placed.sort()
        for i, (a, tier_a) in enumerate(placed):
            for b, tier_b in placed[i + 1 :]:
                counts = get((a, b))
                if counts is None:
                    counts = votes[(a, b)] = [0, 0, 0]
                counts[0 if tier_a < tier_b else 1 if tier_b < tier_a else 2] += 1
    return scores_to_tiers(borda), votes


def votes_agreement(votes: Votes) -> float | None:
    """Mean pairwise agreement of one task, in [0, 1]; None when no pair was ranked twice.

    For every pair of responses and every pair of annotators, do both order the two responses
    the same way (better, worse or tied)? The share of such agreeing comparisons, pooled over
    response pairs. Written here because annotation/services/agreement.py works on whole
    projects (vectorised), with no per-task function to call when the export was built.
    """
    agree = total = 0
    for x, y, z in votes.values():
        n = x + y + z
        if n > 1:
            total += n * (n - 1) // 2
            agree += (x * (x - 1) + y * (y - 1) + z * (z - 1)) // 2
    return round(agree / total, 6) if total else None


def task_agreement(rankings: list[list[list[int]]]) -> float | None:
    """votes_agreement of a task's rankings; None with fewer than two."""
    return votes_agreement(task_summary(rankings)[1]) if len(rankings) > 1 else None


def consensus_pairs(tiers: list[list[int]], policy: str) -> Iterator[tuple[int, int]]:
    """(better, worse) response pairs from consensus tiers under a policy; tied responses make none."""
    if policy == "all":
        for i, upper in enumerate(tiers):
            for lower in tiers[i + 1 :]:
                for better in upper:
                    for worse in lower:
                        yield better, worse
    elif policy == "best_vs_rest":
        for lower in tiers[1:]:
            for better in tiers[0]:
                for worse in lower:
                    yield better, worse
    elif policy == "adjacent":
        for upper, lower in zip(tiers, tiers[1:], strict=False):
            for better in upper:
                for worse in lower:
                    yield better, worse
    else:  # validated earlier; a bad stored option must not export something else silently
        raise ApplicationError(f"Unknown pair policy {policy!r}.", fields={"policy": ["unknown"]})


def _restrict(tiers: list[list[int]], keep: set[int]) -> list[list[int]]:
    out = [[item for item in tier if item in keep] for tier in tiers]
    return [tier for tier in out if tier]


def _int_tiers(tiers: Any) -> list[list[int]]:
    return [[int(item) for item in tier] for tier in tiers]


# --------------------------------------------------------------------------------------------
# Writers: JSONL (pre-serialised fragments, so shared prompt/response objects are encoded once
# per task) and Parquet (explicit schema, row groups).


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_encode_str = json.encoder.encode_basestring  # a JSON string literal (C speed), UTF-8 kept as is


def _messages_json(messages: list[dict[str, str]]) -> str:
    return "[" + ",".join('{"role":' + _encode_str(m["role"]) + ',"content":' + _encode_str(m["content"]) + "}" for m in messages) + "]"


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
            return _dumps(value)
        cached = self.memo.get(id(value))
        if cached is None:
            # The object is kept in the memo with its text, so its id cannot be reused meanwhile.
            cached = self.memo[id(value)] = (value, _dumps(value))
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


def _schemas() -> dict[str, Any]:
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


# --------------------------------------------------------------------------------------------
# Reading: tasks by server-side cursor, their rankings/responses/prompts one query per chunk


@dataclass
class _TaskData:
    task_id: int
    prompt_id: int
    is_gold: bool
    prompt: list[dict[str, str]]
    responses: dict[int, tuple[str, int | None]]  # id -> (text, run id)
    rankings: list[tuple]  # (annotator_id, tiers, flags, rating, rationale, duration, created_at, display_order)


@dataclass
class ExportStats:
    tasks_seen: int = 0
    tasks_kept: int = 0
    tasks_without_rankings: int = 0
    tasks_below_min_votes: int = 0
    tasks_below_min_agreement: int = 0
    rankings_used: int = 0
    responses_excluded_flagged: int = 0
    pairs_tied_dropped: int = 0
    pairs_contradicted_dropped: int = 0
    pairs_without_votes: int = 0
    rows: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})
    prompts: dict[str, int] = field(default_factory=lambda: {"train": 0, "test": 0})

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _task_queryset(project: Project, opts: ExportOptions):
    tasks = RankingTask.objects.filter(project=project)
    if opts.exclude_gold:
        tasks = tasks.filter(is_gold=False)
    return tasks


def _chunks(iterator: Iterator, size: int) -> Iterator[list]:
    while True:
        chunk = list(islice(iterator, size))
        if not chunk:
            return
        yield chunk


def _message_list(messages: Any) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in messages or []]


def _in_chunk_sql(opts: ExportOptions, user_ids: set[int] | None) -> tuple[str, list[Any]]:
    """The rankings query of one chunk of tasks (raw SQL: this is the export's hot loop)."""
    if opts.format == "rankings":
        columns = (
            "r.annotator_id, r.tiers::text, r.flags::text, r.rating, r.rationale, r.duration_seconds, r.created_at, "
            "a.display_order::text"
        )
        join = " JOIN annotation_assignment a ON a.id = r.assignment_id"
    else:
        # pairs and unpaired need only the tiers (and flags, to exclude flagged responses): one row
        # per task with its rankings aggregated, in submission order.
        flags = "json_agg(r.flags ORDER BY r.created_at, r.id)::text" if opts.exclude_flagged else "NULL"
        columns = f"json_agg(r.tiers ORDER BY r.created_at, r.id)::text, {flags}"
        join = ""
    where, params = ["r.task_id = ANY(%s)"], []
    if user_ids is not None:
        where.append("r.annotator_id = ANY(%s)")
        params.append(sorted(user_ids))
    if opts.since:
        where.append("r.created_at >= %s")
        params.append(opts.since)
    if opts.until:
        where.append("r.created_at < %s")
        params.append(opts.until)
    # Only fixed fragments are joined here; every value travels as a parameter.
    conditions = " AND ".join(where)
    tail = "ORDER BY r.task_id, r.created_at, r.id" if opts.format == "rankings" else "GROUP BY r.task_id"
    sql = f"SELECT r.task_id, {columns} FROM annotation_ranking r{join} WHERE {conditions} {tail}"  # noqa: S608
    return sql, params


RESPONSES_SQL = (
    "SELECT tr.rankingtask_id, r.id, r.text, r.run_id FROM annotation_rankingtask_responses tr "
    "JOIN annotation_response r ON r.id = tr.response_id WHERE tr.rankingtask_id = ANY(%s) ORDER BY 1, 2"
)
PROMPTS_SQL = "SELECT id, messages::text FROM annotation_prompt WHERE id = ANY(%s)"


def _fetch_chunk_postgres(rankings_sql: str, rankings_params: list, task_ids: list[int], prompt_ids: list[int], *, full: bool):
    from django.db import connection

    loads = json.loads
    by_task: dict[int, list[tuple]] = {}
    responses: dict[int, dict[int, tuple[str, int | None]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(rankings_sql, [task_ids, *rankings_params])
        if full:
            for task_id, annotator, tiers, flags, rating, rationale, duration, created, display in cursor.fetchall():
                by_task.setdefault(task_id, []).append(
                    (annotator, loads(tiers), loads(flags) if flags != "{}" else None, rating, rationale, duration, created,
                     loads(display) if display else None)
                )
        else:  # (None, tiers, flags): all that pairs and unpaired read
            for task_id, tiers_agg, flags_agg in cursor.fetchall():
                flags = loads(flags_agg) if flags_agg else None
                by_task[task_id] = [(None, tiers, (flags[i] or None) if flags else None) for i, tiers in enumerate(loads(tiers_agg))]
        cursor.execute(RESPONSES_SQL, [task_ids])
        for task_id, response_id, text, run_id in cursor.fetchall():
            responses.setdefault(task_id, {})[response_id] = (text, run_id)
        cursor.execute(PROMPTS_SQL, [prompt_ids])
        prompts = {prompt_id: loads(messages) for prompt_id, messages in cursor.fetchall()}
    return by_task, responses, prompts


def _fetch_chunk_orm(opts: ExportOptions, user_ids: set[int] | None, task_ids: list[int], prompt_ids: list[int]):
    rankings = RankingRow.objects.filter(task_id__in=task_ids)
    if user_ids is not None:
        rankings = rankings.filter(annotator_id__in=user_ids)
    if opts.since:
        rankings = rankings.filter(created_at__gte=opts.since)
    if opts.until:
        rankings = rankings.filter(created_at__lt=opts.until)
    by_task: dict[int, list[tuple]] = {}
    fields = ["task_id", "annotator_id", "tiers", "flags", "rating", "rationale", "duration_seconds", "created_at",
              "assignment__display_order"]
    for row in rankings.order_by("task_id", "created_at", "id").values_list(*fields):
        by_task.setdefault(row[0], []).append((*row[1:3], row[3] or None, *row[4:8], row[8] if opts.format == "rankings" else None))
    through = RankingTask.responses.through
    responses: dict[int, dict[int, tuple[str, int | None]]] = {}
    for task_id, response_id, text, run_id in (
        through.objects.filter(rankingtask_id__in=task_ids)
        .order_by("rankingtask_id", "response_id")
        .values_list("rankingtask_id", "response_id", "response__text", "response__run_id")
    ):
        responses.setdefault(task_id, {})[response_id] = (text, run_id)
    prompts = dict(Prompt.objects.filter(id__in=prompt_ids).values_list("id", "messages"))
    return by_task, responses, prompts


def _iter_task_data(project: Project, opts: ExportOptions, runs: dict[int, dict[str, Any]]) -> Iterator[list[_TaskData]]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    user_ids: set[int] | None = None
    if opts.annotators is not None:
        user_ids = set(get_user_model().objects.filter(username__in=opts.annotators).values_list("id", flat=True))
    rankings_sql, rankings_params = _in_chunk_sql(opts, user_ids)
    # By prompt, so a prompt's tasks (one per generation run) are adjacent: rows of a prompt stay
    # together and prompts can be counted without remembering them.
    task_rows = _task_queryset(project, opts).order_by("prompt_id", "id").values_list("id", "prompt_id", "is_gold")
    # .iterator() uses a server-side cursor on PostgreSQL: the task list is never held in memory.
    for chunk in _chunks(task_rows.iterator(chunk_size=TASK_CHUNK), TASK_CHUNK):
        task_ids = [row[0] for row in chunk]
        prompt_ids = sorted({row[1] for row in chunk})
        if connection.vendor == "postgresql":
            by_task, responses, prompts = _fetch_chunk_postgres(
                rankings_sql, rankings_params, task_ids, prompt_ids, full=opts.format == "rankings"
            )
        else:  # SQLite (the demo): the same rows through the ORM
            by_task, responses, prompts = _fetch_chunk_orm(opts, user_ids, task_ids, prompt_ids)
        missing_runs = {run for task in responses.values() for _, run in task.values() if run is not None} - runs.keys()
        if missing_runs:
            runs.update(_runs_provenance(missing_runs))

        batch = []
        for task_id, prompt_id, is_gold in chunk:
            task_responses = responses.get(task_id, {})
            messages = _message_list(prompts.get(prompt_id))
            run_ids = {run for _, run in task_responses.values() if run is not None}
            # The model saw the run's system prompt: put it in the exported prompt too.
            if len(run_ids) == 1 and not (messages and messages[0]["role"] == "system"):
                system = runs[next(iter(run_ids))]["system_prompt"]
                if system:
                    messages = [{"role": "system", "content": system}, *messages]
            batch.append(_TaskData(task_id, prompt_id, is_gold, messages, task_responses, by_task.get(task_id, [])))
        yield batch


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _in_background(make_iterator: Callable[[], Iterator[Any]], *, depth: int = 2) -> Iterator[Any]:
    """Run the reading in a thread with its own database connection, `depth` chunks ahead.

    PostgreSQL then works on the next chunk's queries while this thread builds and writes rows
    (psycopg releases the GIL while it waits), which takes about a third off the wall time on a
    two-core machine. Inside a transaction (a test's, or a caller's) another connection would
    not see the same rows, so there the reading stays in this thread.
    """
    from django.db import connection, connections

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield from make_iterator()
        return
    chunks: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in make_iterator():
                put(item)
                if stop.is_set():
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Failure(exc))
        finally:
            connections.close_all()  # this thread's connections only

    thread = threading.Thread(target=produce, name="export-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def _runs_provenance(run_ids: set[int]) -> dict[int, dict[str, Any]]:
    out = {}
    for run in GenerationRun.objects.filter(id__in=run_ids):
        out[run.id] = {
            "run_id": run.id, "backend": run.backend, "model": run.model_name, "model_revision": run.model_revision,
            "temperature": run.temperature, "top_p": run.top_p, "max_new_tokens": run.max_new_tokens, "seed": run.seed,
            "system_prompt": run.system_prompt,
        }
    return out


# --------------------------------------------------------------------------------------------
# Row builders


def _flagged(rankings: list[tuple]) -> set[int]:
    out: set[int] = set()
    for ranking in rankings:
        for response_id, flags in (ranking[2] or {}).items():
            if flags:
                out.add(int(response_id))
    return out


PLAN_CACHE_SIZE = 200_000  # task shapes remembered; bounded, so memory stays flat


@dataclass
class _Plan:
    """What a task of one shape exports, over local labels (see _Builder._plan)."""

    consensus: list[list[int]]
    agreement: float | None
    pairs: list[tuple[int, int, int, int, float]]  # (chosen, rejected, votes chosen, votes rejected, margin)
    tied: int  # pairs dropped because the consensus ties them
    contradicted: int  # pairs dropped because their own votes do not favour the consensus order
    without_votes: int  # pairs dropped because no ranking showed both


def _make_plan(tiers_list: list, policy: str) -> _Plan:
    consensus, votes = task_summary(tiers_list)
    pairs = []
    contradicted = without_votes = 0
    for better, worse in consensus_pairs(consensus, policy):
        if better < worse:
            counts = votes.get((better, worse))
            if counts is not None:
                chosen_votes, rejected_votes, ties = counts
        else:
            counts = votes.get((worse, better))
            if counts is not None:
                rejected_votes, chosen_votes, ties = counts
        if counts is None:  # never ranked side by side (incomplete rankings): no evidence
            without_votes += 1
        elif chosen_votes <= rejected_votes:
            # Borda can order a pair against its own head-to-head votes; such a pair is noise.
            contradicted += 1
        else:
            pairs.append((better, worse, chosen_votes, rejected_votes, round(chosen_votes / (chosen_votes + rejected_votes + ties), 6)))
    tied = sum(len(t) * (len(t) - 1) // 2 for t in consensus)
    return _Plan(consensus, votes_agreement(votes), pairs, tied, contradicted, without_votes)


class _Builder:
    """Turns one task's data into rows of one format (tuples in COLUMNS order)."""

    def __init__(self, opts: ExportOptions) -> None:
        self.opts = opts
        self.salt = secrets.token_bytes(32)  # never stored: pseudonyms cannot be reversed
        self.pseudonyms: dict[int, str] = {}
        self.runs: dict[int, dict[str, Any]] = {}  # run id -> provenance, filled while reading
        self.response_details: dict[int, dict[str, Any]] = {}  # rankings only: per chunk
        self.jsonl = opts.file_format == "jsonl" and opts.format in ("pairs", "unpaired")
        self.plans: dict[tuple, _Plan] = {}

    def annotator(self, user_id: int) -> str:
        name = self.pseudonyms.get(user_id)
        if name is None:
            name = self.pseudonyms[user_id] = "a_" + hmac.new(self.salt, str(user_id).encode(), "sha256").hexdigest()[:16]
        return name

    def _plan(self, tiers_list: list[list[list[int]]], ranked: set[int]) -> tuple[list[int], _Plan]:
        """The task's plan over local labels 0..n-1 (its response ids in string order), and those ids.

        Tasks ranked alike (same shape in local labels) share one plan: with K=4 and three
        rankings there are only some thousands of shapes, so the consensus, votes, agreement
        and pairs are computed once per shape rather than once per task.
        """
        items = sorted(ranked, key=str)  # string order, as consensus.scores_to_tiers breaks ties
        local = {item: index for index, item in enumerate(items)}
        key = tuple([tuple([tuple([local[x] for x in tier]) for tier in tiers]) for tiers in tiers_list])
        plan = self.plans.get(key) if len(items) <= 10 else None  # labels 0..9 sort the same as strings
        if plan is None:
            plan = _make_plan(list(key), self.opts.policy)
            if len(items) <= 10:
                if len(self.plans) >= PLAN_CACHE_SIZE:
                    self.plans.clear()
                self.plans[key] = plan
        return items, plan

    def rows(self, task: _TaskData, stats: ExportStats) -> list:
        """The task's rows: tuples in COLUMNS order, or finished JSON lines for pairs/unpaired JSONL."""
        opts = self.opts
        if not task.rankings:
            stats.tasks_without_rankings += 1
            return []
        if len(task.rankings) < opts.min_votes:
            stats.tasks_below_min_votes += 1
            return []
        tiers_list = [r[1] for r in task.rankings]
        ranked = {item for tiers in tiers_list for tier in tiers for item in tier}
        if ranked and type(next(iter(ranked))) is not int:  # stored as strings somewhere: normalise
            tiers_list = [_int_tiers(t) for t in tiers_list]
            ranked = {int(item) for item in ranked}
        if opts.format == "rankings":
            consensus, votes = task_summary(tiers_list)
            agreement = votes_agreement(votes) if len(tiers_list) > 1 else None
        else:
            items, plan = self._plan(tiers_list, ranked)
            agreement = plan.agreement if len(tiers_list) > 1 else None
        if opts.min_agreement is not None and (agreement is None or agreement < opts.min_agreement):
            stats.tasks_below_min_agreement += 1
            return []
        stats.tasks_kept += 1
        stats.rankings_used += len(task.rankings)
        if opts.format == "rankings":
            return [self._ranking_row(task, tiers_list, consensus, agreement)]
        keep = set(task.responses)
        if opts.exclude_flagged:
            flagged = _flagged(task.rankings) & keep
            stats.responses_excluded_flagged += len(flagged)
            keep -= flagged
        if not ranked <= keep:  # flagged, or not (or no longer) among the task's responses
            tiers_list = [_restrict(t, keep) for t in tiers_list]
            ranked &= keep
            if not ranked:
                return []
            items, plan = self._plan(tiers_list, ranked)
        responses = task.responses
        if self.jsonl:
            # Finished lines: the prompt and each response are encoded once per task, not per row.
            prompt = _messages_json(task.prompt)
            messages = ['[{"role":"assistant","content":' + _encode_str(responses[rid][0]) + "}]" for rid in items]
        else:
            prompt = task.prompt
            messages = [[{"role": "assistant", "content": responses[rid][0]}] for rid in items]
        stats.pairs_tied_dropped += plan.tied
        if opts.format == "unpaired":
            return self._unpaired_rows(task, plan, items, messages, prompt)
        stats.pairs_contradicted_dropped += plan.contradicted
        stats.pairs_without_votes += plan.without_votes
        prompt_id = task.prompt_id
        if self.jsonl:
            agreement_json = "null" if agreement is None else repr(agreement)
            return [PAIRS_LINE % (prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement_json)
                    for b, w, cv, rv, margin in plan.pairs]
        return [(prompt, messages[b], messages[w], margin, prompt_id, items[b], items[w], cv, rv, agreement)
                for b, w, cv, rv, margin in plan.pairs]

    def _unpaired_rows(self, task: _TaskData, plan: _Plan, items: list[int], messages: list, prompt: Any) -> list:
        consensus = plan.consensus
        if len(consensus) < 2:
            return []  # everything tied: nothing is better or worse
        top = min(self.opts.desirable_tiers, len(consensus) - 1)
        bottom = min(self.opts.undesirable_tiers, len(consensus) - top)
        labelled = [(i, True) for tier in consensus[:top] for i in tier]
        labelled += [(i, False) for tier in consensus[len(consensus) - bottom :] for i in tier]
        if self.jsonl:
            return [UNPAIRED_LINE % (prompt, messages[i], "true" if label else "false", task.prompt_id, items[i], task.task_id)
                    for i, label in labelled]
        return [(prompt, messages[i], label, task.prompt_id, items[i], task.task_id) for i, label in labelled]

    def _ranking_row(self, task: _TaskData, tiers_list: list[list[list[int]]], consensus: list[list[int]],
                     agreement: float | None) -> tuple:
        responses = []
        for rid, (text, run_id) in task.responses.items():
            provenance = dict(self.runs.get(run_id) or {}) if run_id is not None else {}
            generation = None
            if provenance:
                generation = {**provenance, "sample_index": None, "finish_reason": None, "token_count": None}
                generation.update({k: v for k, v in self.response_details.get(rid, {}).items() if k != "model"})
            details = self.response_details.get(rid, {})
            model = details.get("model") or provenance.get("model", "")
            responses.append({"id": rid, "content": text, "model": model, "generation": generation})
        annotations = []
        for (annotator_id, _tiers, flags, rating, rationale, duration, created_at, display_order), tiers in zip(
            task.rankings, tiers_list, strict=True
        ):
            annotations.append(
                {
                    "annotator": self.annotator(annotator_id),
                    "tiers": tiers,
                    "flags": [
                        {"response_id": int(rid), "flags": [str(f) for f in (fl if isinstance(fl, list) else [fl])]}
                        for rid, fl in sorted((flags or {}).items(), key=lambda kv: int(kv[0]))
                    ],
                    "rating": rating,
                    "rationale": rationale,
                    "display_order": [int(x) for x in (display_order or [])],
                    "duration_seconds": duration,
                    "submitted_at": created_at.isoformat() if created_at else None,
                }
            )
        return (task.prompt, responses, annotations, consensus, agreement, task.prompt_id, task.task_id, task.is_gold)


# --------------------------------------------------------------------------------------------
# The export itself


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
    schema = _schemas()[options.format] if ext == "parquet" else None
    writer_class = ParquetWriter if ext == "parquet" else JsonlWriter
    columns = COLUMNS[options.format]
    writers = {name: writer_class(out / f"{name}.{ext}.partial", columns, schema) for name in ("train", "test")}
    stats = ExportStats()
    builder = _Builder(options)
    runs = builder.runs
    total = _task_queryset(project, options).count()
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
        "split": "prompt-disjoint: test if sha256('<seed>:<prompt_id>')[:8]/2**64 < test_fraction",
        "splits": splits,
        "counts": stats.summary() | {"rows": dict(stats.rows)},
    }
    tmp = out / "manifest.json.partial"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "manifest.json")
    return manifest


def _write_rows(project: Project, options: ExportOptions, runs: dict, builder: _Builder, writers: dict, stats: ExportStats,
                total: int, progress: Progress | None) -> None:
    last_prompt: int | None = None  # tasks come ordered by prompt (see _iter_task_data)
    for batch in _in_background(lambda: _iter_task_data(project, options, runs)):
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


def writer_path(writer: JsonlWriter | ParquetWriter) -> Path:
    return writer.file.path if isinstance(writer, JsonlWriter) else writer.path


def _response_details(batch: list[_TaskData]) -> dict[int, dict[str, Any]]:
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


# --------------------------------------------------------------------------------------------
# Snapshots: the stored, asynchronous form


def export_snapshot_create(*, project: Project, created_by: Any = None, options: dict[str, Any]) -> ExportSnapshot:
    """Validate the options, record a queued ExportSnapshot and enqueue its run after commit."""
    opts = export_options_from_input(options)
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
        options = export_options_from_input(snapshot.options)
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
        ExportSnapshot.objects.filter(pk=snapshot.pk).update(status=JobStatus.FAILED, error=message, finished_at=timezone.now())
        raise
    files = {info["file"]: {k: info[k] for k in ("rows", "bytes", "sha256")} for info in manifest["splits"].values()}
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=JobStatus.SUCCEEDED,
        directory=str(final.relative_to(settings.MEDIA_ROOT)),
        files=files,
        manifest=manifest,
        finished_at=timezone.now(),
    )


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


# --------------------------------------------------------------------------------------------
# Selectors for the API


def export_snapshot_get_for_user(*, user: Any, snapshot_id: int) -> ExportSnapshot:
    """The snapshot if the user is an engineer or admin of its project (404 for non-members, 403 for annotators)."""
    return project_row_get_for_user(user=user, queryset=ExportSnapshot.objects.select_related("project", "created_by"),
                                    pk=snapshot_id, min_role=Role.ENGINEER, what="Export")


def export_snapshots_of_project(*, project: Project):
    return ExportSnapshot.objects.filter(project=project).select_related("project", "created_by").order_by("-id")
