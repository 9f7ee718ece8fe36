"""An export with no rows (or no test rows) is written, and says so loudly: manifest, snapshot, command stderr."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from annotation.services.export import export_options_from_input, export_write, split_of
from tests.factories import engineer_project, make_task

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("export_preferences", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_an_export_of_a_project_without_rankings_warns_on_stderr_and_in_the_manifest(tmp_path):
    project, _, _ = engineer_project("unranked")
    make_task(project, "Anyone?", ["Yes.", "No."])
    out = tmp_path / "empty"
    printed, warned = run("unranked", "--format", "pairs", "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["warnings"] == ["The export is empty (0 rows): it has 1 tasks and none has a ranking yet. Its files are empty."]
    assert warned.strip() == "WARNING: " + manifest["warnings"][0]
    assert "train: train.jsonl 0 rows" in printed
    assert (out / "train.jsonl").read_bytes() == b"" == (out / "test.jsonl").read_bytes()


def test_filters_that_match_no_ranking_are_named_in_the_warning(tricky, tmp_path):
    manifest = export_write(project=tricky["project"], out_dir=tmp_path / "x",
                            options=export_options_from_input({"format": "rankings", "until": "2001-01-01"}))
    assert manifest["warnings"] == ["The export is empty (0 rows): it has 2 tasks and none has a ranking that matches the "
                                    "filters (since, until, annotators). Its files are empty."]
    manifest = export_write(project=tricky["project"], out_dir=tmp_path / "y",
                            options=export_options_from_input({"format": "pairs", "min_votes": 5}))
    assert manifest["warnings"][0].startswith("The export is empty (0 rows): 0 of 2 tasks kept (0 without rankings, 2 below "
                                              "min_votes, 0 below min_agreement)")


def test_a_test_split_left_empty_is_a_warning_and_a_full_export_has_none(tricky, tmp_path):
    prompts = [tricky["t1"].prompt_id, tricky["t2"].prompt_id]
    seed = next(s for s in range(1000) if all(split_of(prompt_id=p, seed=s, test_fraction=0.5) == "train" for p in prompts))
    empty_test = export_write(project=tricky["project"], out_dir=tmp_path / "a",
                              options=export_options_from_input({"format": "rankings", "test_fraction": 0.5, "seed": seed}))
    assert empty_test["splits"]["test"]["rows"] == 0
    assert empty_test["warnings"] == ["The test split is empty: test_fraction 0.5 of 2 prompts put none in it (more prompts, "
                                      "a larger fraction or another seed)."]
    assert export_write(project=tricky["project"], out_dir=tmp_path / "b",
                        options=export_options_from_input({"format": "rankings", "test_fraction": 0.0}))["warnings"] == []


def test_the_api_snapshot_carries_the_warnings(django_capture_on_commit_callbacks):
    project, engineer, _ = engineer_project("api-empty")
    client = APIClient()
    client.force_authenticate(engineer)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(f"/api/v1/projects/{project.slug}/exports/", {"format": "sft"}, format="json")
    assert created.status_code == 202 and created.json()["warnings"] == []  # not run yet
    status = client.get(f"/api/v1/exports/{created.json()['id']}/").json()
    assert status["status"] == "succeeded"
    assert status["warnings"] == ["The export is empty (0 rows): the project has no ranking tasks. Its files are empty."]
    assert status["warnings"] == status["manifest"]["warnings"]
