"""Uncertainty-first serving: a reward model trained in the test on the tiny model scores the open
tasks on a real Celery worker; tasks are then served smallest reward margin first."""
from __future__ import annotations

import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Assignment, JobStatus, Project, RankingTask, Response, TrainingJob
from annotation.services.dashboard import dashboard_overlap
from annotation.services.priority import smallest_adjacent_margin, uncertainty_priority
from annotation.services.training import training_job_create, training_job_model_dir, training_job_run
from tests.ranking_helpers import import_tasks, make_member, make_project
from tests.training.helpers import FAST, make_export

pytestmark = [pytest.mark.needs_postgres]


def _train(project, **options) -> TrainingJob:
    job = training_job_create(project=project, kind="reward", export=make_export(project), options={**FAST, **options}, enqueue=False)
    training_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def _margins(job: TrainingJob, project: Project) -> dict[int, float]:
    """Each open task's smallest adjacent reward margin, computed here from the saved model."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluation import reward_scores

    model_dir = training_job_model_dir(job)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    out = {}
    for task in RankingTask.objects.filter(project=project, is_complete=False, is_gold=False):
        responses = list(Response.objects.filter(tasks=task).select_related("prompt"))
        rewards = reward_scores(model, tokenizer, [r.prompt.messages + [{"role": "assistant", "content": r.text}] for r in responses])
        out[task.pk] = smallest_adjacent_margin(rewards)
    return out


def _wait_scored(project: Project, job: TrainingJob, timeout: float = 240.0) -> Project:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        project.refresh_from_db()
        if project.priority_model_id == job.pk and project.priority_status in ("succeeded", "failed"):
            return project
        time.sleep(0.5)
    raise AssertionError(f"scoring still {project.priority_status} after {timeout}s")


def test_the_margin_and_its_priority():
    assert smallest_adjacent_margin([0.5, -1.0, 0.7, 3.0]) == pytest.approx(0.2)
    assert smallest_adjacent_margin([1.0]) == 0.0
    assert uncertainty_priority(0.0) > uncertainty_priority(0.01) > uncertainty_priority(5.0) >= 1


@pytest.mark.slow
@pytest.mark.needs_redis
def test_tasks_the_reward_model_separates_least_are_served_first_and_rescored_when_the_model_changes(celery_worker, tiny_model_path):
    project, admin = make_project(name="Uncertain", tasks=8, k=3, overlap=1)
    first = _train(project)
    answer = admin.client().put(f"/api/v1/projects/{project.pk}/priority/", {"priority": "uncertainty", "priority_model": first.pk},
                                format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "queued" and answer.json()["total"] == 8
    project = _wait_scored(project, first)
    assert (project.priority_status, project.priority_done, project.priority_total) == ("succeeded", 8, 8), project.priority_error
    expected = _margins(first, project)
    stored = dict(RankingTask.objects.filter(project=project).values_list("id", "priority_margin"))
    assert stored == pytest.approx(expected, abs=1e-4)
    shown = dashboard_overlap(project=project)
    assert (shown["priority"], shown["priority_model"], shown["priority_done"], shown["priority_total"]) == ("uncertainty", first.pk, 8, 8)

    # A task imported later is scored by a run of its own, with the same model.
    import_tasks(project, 1, k=3, start=100)
    late = RankingTask.objects.filter(project=project).order_by("-id").first()
    deadline = time.monotonic() + 240
    while RankingTask.objects.get(pk=late.pk).priority_margin is None and time.monotonic() < deadline:
        time.sleep(0.5)
    project = _wait_scored(project, first)
    expected = _margins(first, project)
    assert RankingTask.objects.get(pk=late.pk).priority_margin == pytest.approx(expected[late.pk], abs=1e-4)
    assert (project.priority_done, project.priority_total) == (1, 1)

    person = make_member(project, "uncertain-ann")
    served = []
    for _ in range(9):
        task = person.client().get(f"/api/v1/projects/{project.pk}/next-task").json()
        served.append(Assignment.objects.get(pk=task["id"]).task_id)
        person.client().post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": [[r["id"]] for r in task["responses"]]},
                             format="json")
    assert served == sorted(expected, key=lambda t: (-uncertainty_priority(expected[t]), t))

    # A new priority model rescored the open tasks with its own margins.
    import_tasks(project, 4, k=3, start=200)
    second = _train(project, max_steps=4, learning_rate=1e-2)
    progress = admin.client().put(f"/api/v1/projects/{project.pk}/priority/", {"priority": "uncertainty", "priority_model": second.pk},
                                  format="json").json()
    assert progress["priority_model"] == second.pk and progress["total"] == 4
    project = _wait_scored(project, second)
    assert project.priority_status == "succeeded"
    rescored = dict(RankingTask.objects.filter(project=project, is_complete=False).values_list("id", "priority_margin"))
    assert rescored == pytest.approx(_margins(second, project), abs=1e-4)
    # Back to fifo: the scores are cleared.
    assert admin.client().put(f"/api/v1/projects/{project.pk}/priority/", {"priority": "fifo"}, format="json").status_code == 200
    assert not RankingTask.objects.filter(project=project).exclude(priority_margin=None).exists()
    assert not RankingTask.objects.filter(project=project).exclude(priority=0).exists()


@pytest.mark.django_db
def test_scored_tasks_come_first_smallest_margin_first_and_unscored_ones_keep_todays_order():
    project, _ = make_project(name="Mixed", tasks=6, k=3, overlap=1)
    tasks = list(RankingTask.objects.filter(project=project).order_by("id"))
    # What a scoring leaves half done: two tasks scored, four not yet.
    for task, margin in ((tasks[4], 0.9), (tasks[2], 0.1)):
        RankingTask.objects.filter(pk=task.pk).update(priority_margin=margin, priority=uncertainty_priority(margin))
    person = make_member(project, "mixed-ann")
    served = []
    for _ in range(6):
        got = person.client().get(f"/api/v1/projects/{project.pk}/next-task").json()
        served.append(Assignment.objects.get(pk=got["id"]).task_id)
        person.client().post(f"/api/v1/assignments/{got['id']}/submit", {"ranking": [[r["id"]] for r in got["responses"]]},
                             format="json")
    assert served == [tasks[2].pk, tasks[4].pk, tasks[0].pk, tasks[1].pk, tasks[3].pk, tasks[5].pk]


@pytest.mark.django_db
def test_a_priority_model_that_is_not_a_succeeded_reward_job_of_the_project_is_refused_by_name():
    project, admin = make_project(name="Refused", tasks=2, k=3)
    other, _ = make_project(name="Other", tasks=1, k=3)
    foreign = TrainingJob.objects.create(project=other, kind="reward", status=JobStatus.SUCCEEDED)
    dpo = TrainingJob.objects.create(project=project, kind="dpo", status=JobStatus.SUCCEEDED)
    running = TrainingJob.objects.create(project=project, kind="reward", status=JobStatus.RUNNING)
    url = f"/api/v1/projects/{project.pk}/priority/"
    for body, message in (
        ({"priority": "uncertainty", "priority_model": foreign.pk}, f"has no training job {foreign.pk}"),
        ({"priority": "uncertainty", "priority_model": dpo.pk}, "is a dpo job"),
        ({"priority": "uncertainty", "priority_model": running.pk}, "is running"),
        ({"priority": "uncertainty"}, "must be the id of a succeeded reward training job"),
    ):
        answer = admin.client().put(url, body, format="json")
        assert answer.status_code == 400, answer.content
        [problem] = answer.json()["error"]["fields"]["priority_model"]
        assert message in problem
        with pytest.raises(CommandError) as failure:
            args = ["--priority-model", str(body["priority_model"])] if "priority_model" in body else []
            call_command("set_priority", project.slug, "--priority", "uncertainty", *args)
        assert failure.value.returncode == 2 and message in str(failure.value)
    answer = admin.client().put(url, {"priority": "random"}, format="json")
    assert answer.status_code == 400 and "priority" in answer.json()["error"]["fields"]
    project.refresh_from_db()
    assert (project.priority_mode, project.priority_model_id, project.priority_status) == ("fifo", None, "")
    assert admin.client().get(url).json() == {"priority": "fifo", "priority_model": None, "status": "", "done": 0, "total": 0,
                                              "error": ""}
    annotator = make_member(project, "not-admin")
    assert annotator.client().put(url, {"priority": "fifo"}, format="json").status_code == 403
    assert annotator.client().get(url).status_code == 403
