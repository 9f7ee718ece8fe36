"""Judge runs on the tiny model (real forward passes): command, API, crash safety, bad input."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotation.models import (
    JudgeComparison,
    JudgeRanking,
    JudgeRun,
    Ranking,
    RankingTask,
    Role,
    RunStatus,
    Webhook,
    WebhookDelivery,
)
from annotation.services.judge import judge_batch_run, judge_run_create
from tests.export_factories import make_project, make_user
from tests.factories import api_client
from tests.judge.helpers import judged_project

pytestmark = pytest.mark.django_db


def test_the_judge_command_asks_every_pair_in_both_orders_and_stores_its_own_ranking(tiny_model_path, capsys):
    project, tasks = judged_project("j1", 3)
    Webhook.objects.create(project=project, url="https://hooks.example.com/x", events=["judge_run.finished"], secret="s")
    before = list(RankingTask.objects.order_by("id").values_list("submitted_count", "active_count", "is_complete"))
    call_command("judge", "j1", "--backend", "transformers", "--model", str(tiny_model_path), "--batch-size", "2")
    out = capsys.readouterr().out
    run = JudgeRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert f"judge run {run.pk} succeeded: 3 tasks ranked, 0 failed, 9 comparisons" in out
    assert run.batches_total == 2 and run.model_revision.startswith("sha256:") and run.constitution.version == 1
    comparisons = list(JudgeComparison.objects.filter(run=run))
    assert len(comparisons) == 9  # 3 pairs per task of 3 responses
    for c in comparisons:
        assert 0 < c.p_first < 1 and 0 < c.p_second < 1 and c.prob_a == pytest.approx((c.p_first + c.p_second) / 2)
        assert c.response_a_id < c.response_b_id and c.principle in run.constitution.principles and not c.failed
    rankings = JudgeRanking.objects.filter(run=run)
    assert rankings.count() == 3
    for r in rankings:
        ids = sorted(rid for tier in r.tiers for rid in tier)
        assert ids == sorted(next(t[1] for t in tasks if t[0].pk == r.task_id))
    # Never a human ranking: no Ranking rows, the overlap counters untouched.
    assert not Ranking.objects.exists()
    assert list(RankingTask.objects.order_by("id").values_list("submitted_count", "active_count", "is_complete")) == before
    assert WebhookDelivery.objects.filter(event="judge_run.finished", object_id=run.pk).count() == 1


def test_a_redelivered_batch_writes_nothing_twice(tiny_model_path):
    project, tasks = judged_project("j2", 2)
    run = judge_run_create(project=project, backend="transformers", model=str(tiny_model_path), enqueue=False)
    batch = run.batches[0]
    first = judge_batch_run(run_id=run.pk, task_ids=batch)
    JudgeRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # as if the message came back before the end
    second = judge_batch_run(run_id=run.pk, task_ids=batch)
    run.refresh_from_db()
    assert first.comparisons_written == 6 and second.skipped == "nothing missing"
    assert JudgeComparison.objects.filter(run=run).count() == 6 and run.comparisons_done == 6 and run.batches_done == 1


@pytest.mark.parametrize(
    ("setup", "args", "named"),
    [
        ("no constitution", [], "has no constitution"),
        ("no tasks", [], "has no ranking tasks"),
        ("", ["--model", "/nonexistent/model"], "no model at /nonexistent/model"),
        ("", ["--pairs", "some"], "pairs: must be one of all, adjacent"),
        ("", ["--model", ""], "model: required"),
    ],
)
def test_bad_input_exits_2_naming_the_cause_and_writes_nothing(tiny_model_path, setup, args, named):
    if setup == "no tasks":
        from annotation.services.judge import constitution_create

        constitution_create(project=make_project("bad"), text="- Be kind.")
    else:
        judged_project("bad", 1, constitution=setup != "no constitution")
    command = ["judge", "bad", "--backend", "transformers", "--model", str(tiny_model_path), *args]
    with pytest.raises(CommandError) as info:
        call_command(*command)
    assert info.value.returncode == 2 and named in str(info.value)
    assert not JudgeRun.objects.exists() and not JudgeComparison.objects.exists()


def test_the_api_starts_shows_and_cancels_judge_runs_for_engineers_only(tiny_model_path, django_capture_on_commit_callbacks):
    project, _ = judged_project("j3", 2)
    engineer, annotator, stranger = make_user("e"), make_user("a"), make_user("s")
    from annotation.models import Membership

    Membership.objects.create(user=engineer, project=project, role=Role.ENGINEER)
    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    url = f"/api/v1/projects/{project.pk}/judge-runs/"
    bad = api_client(engineer).post(url, {"model": "/nonexistent"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["fields"] == {"model": ["no model at this path"]}
    with django_capture_on_commit_callbacks(execute=False):  # left queued: cancelled before any batch runs
        queued = api_client(engineer).post(url, {"model": str(tiny_model_path)}, format="json").json()
    cancelled = api_client(engineer).post(f"{url}{queued['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    with django_capture_on_commit_callbacks(execute=True):  # the batches run in-process (eager) after the commit
        created = api_client(engineer).post(url, {"model": str(tiny_model_path), "pairs": "adjacent"}, format="json")
    assert created.status_code == 201, created.json()
    run_id = created.json()["id"]
    detail = api_client(engineer).get(f"{url}{run_id}/").json()
    assert detail["status"] == "succeeded" and detail["pairs"] == "adjacent" and detail["constitution_version"] == 1
    assert detail["progress"]["comparisons_done"] == 4 and detail["progress"]["percent"] == 100.0
    conflict = api_client(engineer).post(f"{url}{run_id}/cancel/")
    assert conflict.status_code == 409
    assert api_client(annotator).get(url).status_code == 403
    assert api_client(stranger).get(f"{url}{run_id}/").status_code == 404
    assert [r["id"] for r in api_client(engineer).get(url).json()["results"]] == [run_id, queued["id"]]
