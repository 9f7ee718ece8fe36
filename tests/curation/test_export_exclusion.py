"""Excluded tasks (bulk or one by one) are left out of every export, and the manifest counts them."""
from __future__ import annotations

import json

import pytest

from annotation.services.export import export_options_from_input, export_write
from annotation.services.task_browse import task_filters_parse, task_set_excluded, tasks_bulk_apply
from tests.curation.helpers import build

pytestmark = pytest.mark.django_db


def prompt_ids(directory) -> set[int]:
    rows = [json.loads(line) for name in ("train", "test") for line in (directory / f"{name}.jsonl").read_text().splitlines()]
    return {row["prompt_id"] for row in rows}


@pytest.mark.parametrize("fmt", ["rankings", "pairs"])
def test_excluded_tasks_are_not_exported_and_the_manifest_counts_them(tmp_path, fmt):
    cur = build()
    options = export_options_from_input({"format": fmt, "test_fraction": 0.0})
    before = export_write(project=cur.project, out_dir=tmp_path / "before", options=options)
    assert before["excluded_tasks"] == 0
    assert cur.tasks["split"].prompt_id in prompt_ids(tmp_path / "before")
    filters = task_filters_parse(params={"flagged": "true"}, project=cur.project)
    assert tasks_bulk_apply(project=cur.project, filters=filters, action="exclude") == 1
    task_set_excluded(task=cur.tasks["single"], excluded=True)
    after = export_write(project=cur.project, out_dir=tmp_path / "after", options=options)
    assert after["excluded_tasks"] == 2
    exported = prompt_ids(tmp_path / "after")
    assert cur.tasks["split"].prompt_id not in exported and cur.tasks["single"].prompt_id not in exported
    assert exported == prompt_ids(tmp_path / "before") - {cur.tasks["split"].prompt_id, cur.tasks["single"].prompt_id}
    tasks_bulk_apply(project=cur.project, filters=task_filters_parse(params={}, project=cur.project), action="include")
    again = export_write(project=cur.project, out_dir=tmp_path / "again", options=options)
    assert again["excluded_tasks"] == 0 and prompt_ids(tmp_path / "again") == prompt_ids(tmp_path / "before")
