"""Serving order: today's (priority, then oldest) or uncertainty first, scored by a reward model.

Uncertainty first serves the tasks whose responses the project's reward model separates least:
each task's score is the smallest reward margin between adjacent responses (the responses sorted by
reward). A Celery task on the `generation` queue (GPU hosts) scores the open tasks in batches, with
progress on the project (priority_status, priority_done / priority_total), and stores the margin and
a priority derived from it on each task; the claim already orders by priority (assignment.py).

Unscored tasks keep priority 0 and so today's order among themselves, after the scored ones: a task
keeps today's order until it is scored. Tasks created later (an import, a generation run) are
scored by a run of their own, enqueued by tasks_create_for_prompts. Choosing another model (or uncertainty again) rescored every
open task; a run whose model is no longer the project's stops at its next batch. Back to "fifo"
clears the scores.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from annotation.dispatch import DispatchError, TaskName, enqueue_after_commit
from annotation.errors import ApplicationError
from annotation.models import JobStatus, Project, RankingTask, Response, TrainingJob
from annotation.services.priority_schedule import tasks_to_score
from annotation.services.validation import is_int

PRIORITY_MODES = ("fifo", "uncertainty")
PRIORITY_SCALE = 1_000_000  # priority = round(SCALE / (1 + margin)): 1e6 at margin 0, positive, decreasing
SCORE_BATCH = 32


def uncertainty_priority(margin: float) -> int:
    """The task priority for a reward margin: the smaller the margin, the higher; always >= 1."""
    return max(1, round(PRIORITY_SCALE / (1.0 + max(0.0, margin))))


def smallest_adjacent_margin(rewards: list[float]) -> float:
    """The smallest gap between adjacent rewards once sorted (0 for fewer than two)."""
    ordered = sorted(rewards)
    return min((b - a for a, b in zip(ordered, ordered[1:], strict=False)), default=0.0)


def _priority_model_checked(*, project: Project, priority_model: Any) -> TrainingJob:
    field = {"priority_model": []}
    if not is_int(priority_model):
        field["priority_model"].append("must be the id of a succeeded reward training job of this project")
        raise ApplicationError("Uncertainty priority needs a reward model.", fields=field)
    job = TrainingJob.objects.filter(pk=priority_model, project=project).first()
    if job is None:
        problem = f"project {project.slug} has no training job {priority_model}"
    elif job.kind != TrainingJob.Kind.REWARD:
        problem = f"training job {job.pk} is a {job.kind} job, not a reward model"
    elif job.status != JobStatus.SUCCEEDED:
        problem = f"training job {job.pk} is {job.status}; it must have succeeded"
    else:
        from annotation.services.training import training_job_model_dir

        if (training_job_model_dir(job) / "config.json").exists():
            return job
        problem = f"training job {job.pk} has no saved model"
    raise ApplicationError(f"Invalid priority model: {problem}.", fields={"priority_model": [problem]})


@transaction.atomic
def project_priority_set(*, project: Project, priority: Any, priority_model: Any = None) -> Project:
    """Set the project's serving order. "uncertainty" needs `priority_model`: the id of a succeeded
    reward job of the project; its scoring is enqueued after the commit. "fifo" clears the scores.

    Raises ApplicationError naming `priority` or `priority_model`; nothing is changed then.
    """
    if priority not in PRIORITY_MODES:
        raise ApplicationError(f"Unknown priority {priority!r}.", fields={"priority": [f"must be one of {', '.join(PRIORITY_MODES)}"]})
    # NO KEY UPDATE: it orders this with a scoring batch, without blocking the claims' inserts.
    project = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    if priority == "fifo":
        if priority_model is not None:
            raise ApplicationError("A priority model is only for uncertainty priority.",
                                   fields={"priority_model": ["only with priority uncertainty"]})
        project.priority_mode, project.priority_model = "fifo", None
        project.priority_status, project.priority_done, project.priority_total, project.priority_error = "", 0, 0, ""
        project.save(update_fields=["priority_mode", "priority_model", "priority_status", "priority_done", "priority_total",
                                    "priority_error"])
        RankingTask.objects.filter(project=project).exclude(priority_margin=None).update(priority=0, priority_margin=None)
        return project
    job = _priority_model_checked(project=project, priority_model=priority_model)
    project.priority_mode, project.priority_model = "uncertainty", job
    project.priority_status, project.priority_done, project.priority_error = "queued", 0, ""
    project.priority_total = tasks_to_score(project_id=project.pk).count()
    project.save(update_fields=["priority_mode", "priority_model", "priority_status", "priority_done", "priority_total",
                                "priority_error"])
    project_id, job_id = project.pk, job.pk

    def refused(exc: DispatchError) -> None:
        Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_status="failed", priority_error=str(exc))

    enqueue_after_commit(TaskName.PRIORITY_SCORE, kwargs={"project_id": project_id, "job_id": job_id}, on_error=refused)
    return project


def _still_current(project_id: int, job_id: int, *, lock: bool = False) -> bool:
    rows = Project.objects.filter(pk=project_id, priority_mode="uncertainty", priority_model_id=job_id)
    # lock: the project row, as project_priority_set takes it, so a batch's writes and a change of
    # model are ordered (a batch of the old model never lands after the new model was chosen).
    # NO KEY UPDATE: claims and submissions, whose inserts take KEY SHARE on the project, go on.
    if lock:
        rows = rows.select_for_update(no_key=True)
    return bool(list(rows.values_list("pk", flat=True)))


def priority_scores_compute(*, project_id: int, job_id: int, only_unscored: bool = False, batch: int = SCORE_BATCH,
                            progress: Callable[[int, int], None] | None = None) -> int:
    """Score the project's open tasks (`only_unscored`: those without a score) with reward job
    `job_id`'s model; returns the tasks scored.

    Stops (returning what it scored) when the project's priority model is no longer `job_id`.
    Any error marks the scoring failed with its message and is raised again.
    """
    if not _still_current(project_id, job_id):
        return 0
    Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_status="running")
    try:
        return _score(project_id=project_id, job_id=job_id, only_unscored=only_unscored, batch=batch, progress=progress)
    except Exception as exc:
        Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_status="failed", priority_error=str(exc)[:2000])
        raise


def _score(*, project_id: int, job_id: int, only_unscored: bool, batch: int,
           progress: Callable[[int, int], None] | None) -> int:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from annotation.services.training import training_job_model_dir
    from training.evaluation import reward_scores

    model_dir = training_job_model_dir(TrainingJob.objects.get(pk=job_id))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    task_ids = list(tasks_to_score(project_id=project_id, only_unscored=only_unscored).order_by("id").values_list("id", flat=True))
    total, done = len(task_ids), 0
    Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_total=total, priority_done=0)
    for start in range(0, total, batch):
        if not _still_current(project_id, job_id):
            return done
        ids = task_ids[start:start + batch]
        through = RankingTask.responses.through.objects.filter(rankingtask_id__in=ids)
        members = list(through.values_list("rankingtask_id", "response_id"))
        responses = {r.pk: r for r in Response.objects.filter(pk__in={rid for _, rid in members}).select_related("prompt")}
        conversations = [responses[rid].prompt.messages + [{"role": "assistant", "content": responses[rid].text}]
                         for _, rid in members]
        rewards = reward_scores(model, tokenizer, conversations)
        by_task: dict[int, list[float]] = {}
        for (task_id, _), reward in zip(members, rewards, strict=True):
            by_task.setdefault(task_id, []).append(reward)
        with transaction.atomic():
            if not _still_current(project_id, job_id, lock=True):
                return done
            for task_id, values in sorted(by_task.items()):  # task rows locked in id order, as everywhere
                margin = smallest_adjacent_margin(values)
                RankingTask.objects.filter(pk=task_id).update(priority_margin=margin, priority=uncertainty_priority(margin))
            done += len(ids)
            Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_done=done)
        if progress is not None:
            progress(done, total)
    Project.objects.filter(pk=project_id, priority_model_id=job_id).update(priority_status="succeeded")
    return done


def project_priority_progress(*, project: Project) -> dict[str, Any]:
    """The serving order and its scoring's progress, as the API and the dashboard show it."""
    return {
        "priority": project.priority_mode,
        "priority_model": project.priority_model_id,
        "status": project.priority_status,
        "done": project.priority_done,
        "total": project.priority_total,
        "error": project.priority_error,
    }
