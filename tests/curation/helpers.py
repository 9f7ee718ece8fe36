"""Hand-built curation data: tasks with known rankings, flags, runs and agreements."""
from __future__ import annotations

from dataclasses import dataclass

from annotation.models import Project, RankingTask, Role
from annotation.services.task_agreement import task_agreement_refresh
from tests.export_factories import make_project, make_run, make_task, make_user, rank


@dataclass
class Curated:
    project: Project
    admin: object
    engineer: object
    annotator: object
    raters: list
    tasks: dict[str, RankingTask]
    run_id: int


def build(slug: str = "cur") -> Curated:
    """Five tasks: 'agree' (3 identical rankings), 'split' (2 against 1, one flag), 'fight' (full
    disagreement), 'single' (one ranking), 'fresh' (none, gold, from a generation run)."""
    admin, engineer, annotator = make_user(f"{slug}-admin"), make_user(f"{slug}-eng"), make_user(f"{slug}-ann")
    raters = [make_user(f"{slug}-r{i}") for i in range(3)]
    members = {admin: Role.ADMIN, engineer: Role.ENGINEER, annotator: Role.ANNOTATOR} | {r: Role.ANNOTATOR for r in raters}
    project = make_project(slug, members=members)
    run = make_run(project)
    tasks = {}
    task, (a, b, c) = make_task(project, "How do I sort a list in Python?\nWith an example.",
                                ["Use sorted(xs).", "Call xs.sort() in place.", "Lists cannot be sorted."])
    for r in raters:
        rank(task, r, [[a], [b], [c]], rationale="sorted is clearest")
    tasks["agree"] = task
    task, (a, b, c) = make_task(project, "What is the capital of France?", ["Paris.", "Lyon.", "Marseille, obviously."])
    rank(task, raters[0], [[a], [b], [c]])
    rank(task, raters[1], [[a], [b], [c]])
    rank(task, raters[2], [[c], [b], [a]], flags={c: ["factual_error"]}, rationale="third one is wrong")
    tasks["split"] = task
    task, (a, b, c) = make_task(project, "Write a haiku about databases.", ["Rows fall like snow.", "Indexes bloom.", "Vacuum hums."])
    rank(task, raters[0], [[a], [b], [c]])
    rank(task, raters[1], [[c], [b], [a]])
    tasks["fight"] = task
    task, (a, b, c) = make_task(project, "Explain recursion to a child.", ["A thing inside itself.", "Mirrors.", "Turtles."])
    rank(task, raters[0], [[b], [a], [c]])
    tasks["single"] = task
    task, _ = make_task(project, "Translate 'bonjour' into English.", ["Hello.", "Goodbye.", "Thanks."], run=run, is_gold=True)
    tasks["fresh"] = task
    for task in tasks.values():
        task_agreement_refresh(task_id=task.pk)
    RankingTask.objects.filter(pk=tasks["agree"].pk).update(is_complete=True, priority=5)
    RankingTask.objects.filter(pk=tasks["split"].pk).update(is_complete=True, priority=1)
    RankingTask.objects.filter(pk=tasks["single"].pk).update(active_count=1, priority=-3)
    for key, task in tasks.items():
        tasks[key] = RankingTask.objects.get(pk=task.pk)
    return Curated(project, admin, engineer, annotator, raters, tasks, run.pk)
