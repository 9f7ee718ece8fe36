"""Judge test helpers: projects with tasks whose responses do or do not carry a marker, and a simulated crowd."""
from __future__ import annotations

from annotation.models import Project, Role
from annotation.services.judge import constitution_create
from tests.export_factories import make_project, make_task, make_user, rank
from tests.judge.finetune import CONSTITUTION, MARKED_TEXT, MARKER, PLAIN_TEXTS

__all__ = ["CONSTITUTION", "MARKER", "crowd_rank", "judged_project"]


def judged_project(slug: str, n_tasks: int, *, k: int = 3, constitution: bool = True) -> tuple[Project, list]:
    """A project with `n_tasks` tasks of k responses; in each, exactly one response carries MARKER.

    Returns (project, [(task, response ids, id of the marked response)]).
    """
    project = make_project(slug, k=k)
    tasks = []
    for i in range(n_tasks):
        marked = i % k
        texts = [MARKED_TEXT if j == marked else PLAIN_TEXTS[(i + j) % len(PLAIN_TEXTS)] for j in range(k)]
        task, ids = make_task(project, f"question {i}?", texts)
        tasks.append((task, ids, ids[marked]))
    if constitution:
        constitution_create(project=project, text=CONSTITUTION)
    return project, tasks


def crowd_rank(project: Project, tasks: list, *, people: int = 3, prefer_marker: bool = True, noise_every: int = 0) -> list:
    """People who put the marked response first (or last), the others in id order; every `noise_every`-th
    ranking of the last person is reversed, so people disagree a little."""
    users = [make_user(f"{project.slug}-p{n}") for n in range(people)]
    from annotation.models import Membership

    for user in users:
        Membership.objects.create(user=user, project=project, role=Role.ANNOTATOR)
    for t, (task, ids, marked) in enumerate(tasks):
        others = [rid for rid in ids if rid != marked]
        order = [marked, *others] if prefer_marker else [*others, marked]
        for n, user in enumerate(users):
            this = list(order)
            if noise_every and n == people - 1 and t % noise_every == 0:
                this = list(reversed(this))
            rank(task, user, [[rid] for rid in this])
    return users
