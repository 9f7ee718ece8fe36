"""The JSONL lines built from fragments are byte for byte what json.dumps writes for the same row's objects."""
from __future__ import annotations

import json

import pytest

from annotation.services.export import export_options_from_input
from annotation.services.export.reader import task_data_iter
from annotation.services.export.rows import ExportStats, RowBuilder
from annotation.services.export.writers import COLUMNS
from annotation.services.ranking_filter import ranking_filter_resolve

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def object_line(fmt: str, row: tuple) -> str:
    return "{" + ",".join(f'"{column}":{dumps(value)}' for column, value in zip(COLUMNS[fmt], row, strict=True)) + "}\n"


@pytest.mark.parametrize("fmt", ["pairs", "unpaired", "rankings", "sft"])
@pytest.mark.parametrize("exclude_flagged", [False, True])
def test_fragment_lines_equal_json_dumps_of_the_object_rows(tricky, fmt, exclude_flagged):
    base = {"format": fmt, "exclude_flagged": exclude_flagged}
    as_lines = RowBuilder(export_options_from_input({**base, "file_format": "jsonl"}))
    as_objects = RowBuilder(export_options_from_input({**base, "file_format": "parquet"}))
    as_objects.salt = as_lines.salt  # the same pseudonyms in both
    opts = as_lines.opts
    resolved = ranking_filter_resolve(project=tricky["project"], ranking_filter=opts.ranking_filter)
    tasks = [task for batch in task_data_iter(tricky["project"], opts, resolved, as_lines.runs) for task in batch]
    as_objects.runs = as_lines.runs
    lines = []
    for task in tasks:
        got = as_lines.rows(task, ExportStats())
        expected = [object_line(fmt, row) for row in as_objects.rows(task, ExportStats())]
        assert got == expected
        lines += got
    assert lines  # something was compared
    if fmt == "rankings":
        row = json.loads(lines[0])
        assert {a["rating"] for a in row["annotations"]} == {None, 4}
        assert None in {a["duration_seconds"] for a in row["annotations"]}
        assert any(a["flags"] for a in row["annotations"])
        assert row["responses"][0]["generation"]["system_prompt"] == 'Be "brief"\n\tand kind ✓.'
