"""Simulated crowds for the agreement tests: bulk ORM rows, consistent with the ranking service.

Users and projects come from tests/factories.py (the one set of factories).

Ranking.tiers hold Response pks; Assignment.display_order lists Response pks in the shown order.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Prompt, RankingTask, Response
from annotation.models import Ranking as RankingRow
from annotation.services.ranking_stats import ranking_vectors
from annotation.services.tasks import response_text_hash
from tests.factories import add_members, make_project, make_user

PASSWORD = "agreement-pw-1"  # noqa: S105


@dataclass
class Built:
    project: object
    admin: object
    tasks: list = field(default_factory=list)  # RankingTask rows
    responses: list = field(default_factory=list)  # per task: list of response pks (slot order)
    users: dict = field(default_factory=dict)  # username -> user


def build_project(*, name: str, n_tasks: int, k: int = 4, overlap: int = 3, admin: str | None = None) -> Built:
    admin_user = make_user(admin or f"{name}-admin", password=PASSWORD)
    project = make_project(name, admin=admin_user, responses_per_prompt=k, overlap=overlap, allow_ties=True)
    built = Built(project=project, admin=admin_user)
    add_tasks(built, n_tasks=n_tasks, k=k, overlap=overlap)
    return built


def add_tasks(built: Built, *, n_tasks: int, k: int = 4, overlap: int = 3) -> None:
    """Append n_tasks prompts, each with k responses and its RankingTask."""
    project, name, start = built.project, built.project.slug, len(built.tasks)
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(project=project, messages=[{"role": "user", "content": f"{name} q{i}"}], content_hash=f"{name}-{i}")
            for i in range(start, start + n_tasks)
        ]
    )
    responses = Response.objects.bulk_create(
        [
            Response(prompt=p, sample_index=j, text=f"{name} answer {i}.{j}", text_hash=response_text_hash(f"{name} answer {i}.{j}"))
            for i, p in enumerate(prompts, start)
            for j in range(k)
        ]
    )
    tasks = RankingTask.objects.bulk_create([RankingTask(project=project, prompt=p, overlap=overlap) for p in prompts])
    through = RankingTask.responses.through
    by_task = [[r.pk for r in responses[i * k : (i + 1) * k]] for i in range(n_tasks)]
    through.objects.bulk_create(
        [through(rankingtask_id=t.pk, response_id=rid) for t, ids in zip(tasks, by_task, strict=True) for rid in ids]
    )
    built.tasks.extend(tasks)
    built.responses.extend(by_task)


def add_member(built: Built, username: str, role: str = "annotator"):
    user = make_user(username, password=PASSWORD)
    add_members(built.project, {user: role})
    built.users[username] = user
    return user


def add_rankings(built: Built, rows: list[tuple]) -> None:
    """rows: (task index, user, tiers of response pks, display order of response pks, seconds); with the vectors the
    ranking service writes (annotation.services.ranking_stats), so agreement loads them as it loads submitted ones."""
    now = timezone.now()
    assignments = Assignment.objects.bulk_create(
        [
            Assignment(
                task=built.tasks[t], project=built.project, annotator=user, status=AssignmentStatus.SUBMITTED,
                display_order=list(display), opaque_ids={}, lease_expires_at=now + dt.timedelta(minutes=15), finished_at=now,
            )
            for t, user, _tiers, display, _seconds in rows
        ]
    )
    RankingRow.objects.bulk_create(
        [
            RankingRow(
                assignment=a, project=built.project, task=built.tasks[t], annotator=user, tiers=tiers, duration_seconds=seconds,
                **dict(zip(("rank_vector", "display_vector"), ranking_vectors(tiers=tiers, display_order=display), strict=True)),
            )
            for a, (t, user, tiers, display, seconds) in zip(assignments, rows, strict=True)
        ]
    )


def add_skip(built: Built, task_index: int, user) -> None:
    now = timezone.now()
    Assignment.objects.create(
        task=built.tasks[task_index], project=built.project, annotator=user, status=AssignmentStatus.SKIPPED,
        display_order=list(built.responses[task_index]), lease_expires_at=now, finished_at=now, skip_reason="unsure",
    )


def scores_to_tiers(ids: list[int], scores: np.ndarray) -> list[list[int]]:
    order = np.argsort(-scores, kind="stable")
    return [[ids[i]] for i in order]


def pair_accuracy(tiers: list[list[int]], truth: dict[int, float]) -> float:
    """Share of response pairs ordered as the hidden truth (a tie counts one half)."""
    rank = {rid: i for i, tier in enumerate(tiers) for rid in tier}
    total = 0.0
    pairs = list(combinations(truth, 2))
    for a, b in pairs:
        if rank[a] == rank[b]:
            total += 0.5
        elif (rank[a] < rank[b]) == (truth[a] > truth[b]):
            total += 1
    return total / len(pairs)


@dataclass
class Crowd:
    built: Built
    truth: list[dict[int, float]]  # per task: response pk -> hidden score
    rankings: dict[int, list[tuple[str, list[list[int]]]]]  # task index -> [(username, tiers)]
    spammer: str
    honest: list[str]


def simulate_crowd(
    *, name: str = "crowd", n_tasks: int = 120, k: int = 4, noise=(0.8, 0.9, 1.0, 1.1, 1.2), per_task: int = 5,
    seed: int = 0, first_position_boost: float = 0.0, gold_every: int = 0,
) -> Crowd:
    """Thurstone crowd: annotator i ranks by truth + N(0, noise_i); the last annotator ranks at random.

    Each task is ranked by `per_task` distinct annotators in a random display order.
    `first_position_boost` adds that much to the score of whatever is shown first (position bias).
    Every `gold_every`-th task gets the truth as its gold ranking.
    """
    rng = np.random.default_rng(seed)
    built = build_project(name=name, n_tasks=n_tasks, k=k, overlap=per_task)
    names = [f"{name}-honest{i}" for i in range(len(noise))] + [f"{name}-spammer"]
    users = [add_member(built, n) for n in names]
    truth_scores = rng.normal(size=(n_tasks, k))
    truth, rows, rankings = [], [], {}
    for t in range(n_tasks):
        ids = built.responses[t]
        truth.append(dict(zip(ids, truth_scores[t].tolist(), strict=True)))
        for a in rng.choice(len(users), per_task, replace=False):
            display = rng.permutation(k)
            if a == len(users) - 1:
                scores = rng.normal(size=k)
            else:
                scores = truth_scores[t] + rng.normal(size=k) * noise[a]
            scores[display[0]] += first_position_boost
            tiers = scores_to_tiers(ids, scores)
            rows.append((t, users[a], tiers, [ids[i] for i in display], float(rng.gamma(4.0, 5.0))))
            rankings.setdefault(t, []).append((names[a], tiers))
        if gold_every and t % gold_every == 0:
            RankingTask.objects.filter(pk=built.tasks[t].pk).update(is_gold=True, gold_ranking=scores_to_tiers(ids, truth_scores[t]))
    add_rankings(built, rows)
    # Counters as the ranking service keeps them: every task got its per_task (= overlap) rankings.
    RankingTask.objects.filter(project=built.project).update(submitted_count=per_task, active_count=per_task, is_complete=True)
    return Crowd(built=built, truth=truth, rankings=rankings, spammer=names[-1], honest=names[:-1])
