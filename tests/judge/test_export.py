"""Exports with --source human|judge|all: a `source` column in every format, the judge's soft preference as margin."""
from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import JudgeComparison, JudgeRanking, JudgeRun, RunStatus
from annotation.services.export import export_options_from_input
from annotation.services.export.write import export_write
from annotation.services.judge import constitution_current
from tests.judge.helpers import crowd_rank, judged_project

pytestmark = pytest.mark.django_db


def _judged(project, tasks):
    """A finished judge run, written as the service writes one: the marked response preferred with p = 0.9."""
    run = JudgeRun.objects.create(project=project, constitution=constitution_current(project=project), backend="openai",
                                  model_name="m", system_prompt="s", prompt_template="t", status=RunStatus.SUCCEEDED)
    for task, ids, marked in tasks:
        a, b = ids
        prob_a = 0.9 if marked == a else 0.1
        JudgeComparison.objects.create(run=run, task=task, response_a_id=a, response_b_id=b, principle="p", p_first=prob_a,
                                       p_second=prob_a, prob_a=prob_a, orders_agree=True)
        JudgeRanking.objects.create(run=run, project=project, task=task, tiers=[[marked], [b if marked == a else a]])
    return run


def _rows(path):
    return [json.loads(line) for name in ("train.jsonl", "test.jsonl") for line in (path / name).read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["pairs", "unpaired", "rankings", "sft"])
def test_every_format_says_whose_ranking_each_row_is(tmp_path, fmt):
    project, tasks = judged_project("ex1", 3, k=2)
    crowd_rank(project, tasks, people=2, prefer_marker=False)
    _judged(project, tasks)
    counts = {}
    for source in ("human", "judge", "all"):
        export_write(project=project, out_dir=tmp_path / source, options=export_options_from_input({"format": fmt, "source": source}))
        counts[source] = [r["source"] for r in _rows(tmp_path / source)]
    assert set(counts["human"]) == {"human"} and set(counts["judge"]) == {"judge"}
    assert sorted(counts["all"]) == sorted(counts["human"] + counts["judge"]) and counts["judge"]


def test_judge_pairs_carry_the_soft_preference_as_margin(tmp_path):
    project, tasks = judged_project("ex2", 2, k=2)
    _judged(project, tasks)
    options = export_options_from_input({"format": "pairs", "source": "judge"})
    manifest = export_write(project=project, out_dir=tmp_path / "j", options=options)
    rows = _rows(tmp_path / "j")
    assert manifest["filters"]["source"] == "judge" and "source" in manifest["columns"]
    marked = {t[2] for t in tasks}
    assert {r["chosen_id"] for r in rows} == marked
    assert all(r["margin"] == pytest.approx(0.9) and r["votes_chosen"] is None and r["agreement"] is None for r in rows)


def test_an_unknown_source_is_refused_naming_it(tmp_path):
    judged_project("ex3", 1, k=2)
    with pytest.raises(CommandError) as info:
        call_command("export_preferences", "ex3", "--format", "pairs", "--out", str(tmp_path / "x"), "--source", "robots")
    assert info.value.returncode == 2 and "source" in str(info.value)
    assert not (tmp_path / "x" / "manifest.json").exists()
