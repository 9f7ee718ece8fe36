"""Head-to-head evaluation of two generation runs: blinded pairwise tasks and the report on them.

`evaluation_create` makes one ranking task per prompt that both runs answered, holding one
response of each run (sample 0 of each; a run against itself pairs its samples 0 and 1). The
tasks go through the ordinary engine (overlap, leases, per-assignment shuffled order and opaque
ids), so annotators never know which run wrote which.

`evaluation_report` counts every ranking of those tasks as one vote: B's response above A's is a
win of B, below a loss, the same tier a tie. Figures:
- `win_rate`: wins / (wins + losses), the decisive votes, with the 95% Wilson interval on those
  whole counts; ties are counted and shown beside it, and `win_rate_ties_half` is
  (wins + ties / 2) / votes as a point figure (a tie is half a win, not a Bernoulli outcome, so no
  interval is put on a fractional count).
- `length_controlled`: LMArena's style control for length. A logistic regression of the outcome
  (1 win, 0 loss, 1/2 tie) on the normalised length difference (len B - len A) / (len B + len A),
  fitted by Newton's method (two parameters: plain maths, no statistics library); the
  length-controlled win rate is the model's win probability at equal length, sigmoid(intercept),
  with the 95% interval from the intercept's standard error (the inverse Hessian).
A policy counts as better (rounds' "promoted") only when the interval of `win_rate` lies above 0.5.

`evaluation_judge_start` has the judge (annotation.services.judge) rank the same tasks; the report's
`judge` section reads the latest judge run that ranked any of them: one vote per task, B's win
rate over A by the judge (a tie where its two orders disagree or it is not confident), and its
agreement with the people's majority on the tasks both ranked.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.errors import ApplicationError, NotFound
from annotation.models import (
    Evaluation,
    EvaluationItem,
    GenerationRun,
    JudgeRanking,
    JudgeRun,
    Project,
    Ranking,
    RankingTask,
    Response,
    TaskType,
)
from annotation.services.prerender import prerender_after_commit
from annotation.services.validation import is_int
from training.evaluation import wilson_interval

Z95 = 1.959963984540054
RIDGE = 1e-3  # a whisker of L2 so a separable outcome (every vote one way) still has a finite fit


def _runs_problem(project: Project, runs: Any) -> tuple[list[int], dict[str, list[str]]]:
    if not isinstance(runs, (list, tuple)) or len(runs) != 2 or not all(is_int(r) and r > 0 for r in runs):
        return [], {"runs": ["must be two generation run ids, A and B (e.g. 3,7)"]}
    ids = [int(r) for r in runs]
    mine = set(GenerationRun.objects.filter(project=project, id__in=ids).values_list("id", flat=True))
    missing = [run_id for run_id in ids if run_id not in mine]
    if missing:
        return ids, {"runs": [f"run {run_id} is not a generation run of project {project.slug}" for run_id in dict.fromkeys(missing)]}
    return ids, {}


def evaluation_runs_parse(*, text: str) -> list[int] | str:
    """`A,B` as the command takes it: two ids, or the text unchanged (evaluation_create names it)."""
    parts = [part.strip() for part in str(text).split(",")]
    if len(parts) == 2 and all(part.isdigit() for part in parts):
        return [int(part) for part in parts]
    return text


@transaction.atomic
def evaluation_create(*, project: Project, runs: Any, created_by: AbstractBaseUser | None = None) -> Evaluation:
    """The head-to-head evaluation of runs [A, B] of `project`: its blinded pairwise tasks (idempotent).

    Asking again for the same (A, B) returns the evaluation already made. Raises ApplicationError
    naming `runs` when either is not a run of this project, or no prompt has a response of both;
    nothing is written then.
    """
    ids, errors = _runs_problem(project, runs)
    if errors:
        raise ApplicationError(f"Invalid evaluation: {errors['runs'][0]}.", fields=errors)
    run_a, run_b = ids
    # One evaluation per (A, B) at a time: the project row lock orders concurrent requests.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    existing = Evaluation.objects.filter(project=project, run_a_id=run_a, run_b_id=run_b).first()
    if existing is not None:
        return existing
    samples: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for response_id, prompt_id, run_id in (
        Response.objects.filter(run_id__in={run_a, run_b}).order_by("prompt_id", "sample_index", "id")
        .values_list("id", "prompt_id", "run_id")
    ):
        samples[prompt_id][run_id].append(response_id)
    pairs: list[tuple[int, int, int]] = []
    skipped = 0
    for prompt_id, by_run in samples.items():
        if run_a == run_b:
            own = by_run.get(run_a, [])
            if len(own) < 2:
                skipped += 1
                continue
            pairs.append((prompt_id, own[0], own[1]))
        elif by_run.get(run_a) and by_run.get(run_b):
            pairs.append((prompt_id, by_run[run_a][0], by_run[run_b][0]))
        else:
            skipped += 1
    if not pairs:
        why = "two responses of the run" if run_a == run_b else "a response of both runs"
        raise ApplicationError(f"Invalid evaluation: no prompt has {why}.", fields={"runs": [f"no prompt has {why}"]})
    evaluation = Evaluation.objects.create(project=project, run_a_id=run_a, run_b_id=run_b, created_by=created_by,
                                           tasks_created=len(pairs), prompts_skipped=skipped)
    tasks = RankingTask.objects.bulk_create(
        [RankingTask(project=project, prompt_id=prompt_id, overlap=project.overlap, task_type=TaskType.RANKING,
                     evaluation=evaluation) for prompt_id, _, _ in pairs]
    )
    through = RankingTask.responses.through
    through.objects.bulk_create(
        [through(rankingtask_id=task.id, response_id=response_id)
         for task, (_, a, b) in zip(tasks, pairs, strict=True) for response_id in (a, b)]
    )
    EvaluationItem.objects.bulk_create(
        [EvaluationItem(evaluation=evaluation, task=task, response_a_id=a, response_b_id=b)
         for task, (_, a, b) in zip(tasks, pairs, strict=True)]
    )
    prerender_after_commit(project_id=project.pk, first_task_id=min((task.id for task in tasks if task.id is not None), default=None))
    return evaluation


def evaluation_get(*, project: Project, evaluation_id: Any) -> Evaluation:
    """The project's evaluation (another project's is NotFound)."""
    found = Evaluation.objects.filter(project=project, pk=evaluation_id).first() if is_int(evaluation_id) else None
    if found is None:
        raise NotFound("Evaluation not found.")
    return found


def evaluation_find(*, project: Project, runs: Any) -> Evaluation:
    """The evaluation of runs [A, B] of `project` (ApplicationError naming `runs` when there is none)."""
    ids, errors = _runs_problem(project, runs)
    if errors:
        raise ApplicationError(f"Invalid evaluation: {errors['runs'][0]}.", fields=errors)
    found = Evaluation.objects.filter(project=project, run_a_id=ids[0], run_b_id=ids[1]).first()
    if found is None:
        raise ApplicationError(f"No evaluation of runs {ids[0]},{ids[1]} yet: create it with `evaluate` first.",
                               fields={"runs": ["not evaluated yet"]})
    return found


def _outcome(tiers: list[list[int]], a: int, b: int) -> float | None:
    """1 when b is ranked above a, 0 below, 0.5 in the same tier; None when either is missing."""
    where = {response_id: position for position, tier in enumerate(tiers) for response_id in tier}
    if a not in where or b not in where:
        return None
    return 1.0 if where[b] < where[a] else 0.0 if where[b] > where[a] else 0.5


def evaluation_outcomes(*, evaluation: Evaluation) -> list[tuple[float, int, int]]:
    """(outcome for B, length of A's response, length of B's), one per ranking of the evaluation's tasks."""
    items = {item.task_id: item for item in EvaluationItem.objects.filter(evaluation=evaluation)
             .select_related("response_a", "response_b")}
    out = []
    for task_id, tiers in Ranking.objects.filter(task_id__in=items).order_by("id").values_list("task_id", "tiers"):
        item = items[task_id]
        outcome = _outcome(tiers, item.response_a_id, item.response_b_id)
        if outcome is not None:
            out.append((outcome, len(item.response_a.text), len(item.response_b.text)))
    return out


def length_controlled_win_rate(outcomes: list[tuple[float, int, int]]) -> dict[str, Any]:
    """sigmoid(intercept) of the logistic regression of the outcome on the normalised length difference, with its 95% interval."""
    n = len(outcomes)
    if n == 0:
        return {"value": None, "ci95": [0.0, 1.0], "length_coefficient": None, "n": 0}
    xs = [(b - a) / (a + b) if a + b else 0.0 for _, a, b in outcomes]
    ys = [y for y, _, _ in outcomes]
    b0 = b1 = 0.0
    h00 = h01 = h11 = 0.0
    for _ in range(100):
        g0, g1 = -RIDGE * b0, -RIDGE * b1
        h00, h01, h11 = RIDGE, 0.0, RIDGE
        for x, y in zip(xs, ys, strict=True):
            p = 1.0 / (1.0 + math.exp(-(b0 + b1 * x)))
            w = p * (1.0 - p)
            g0 += y - p
            g1 += (y - p) * x
            h00 += w
            h01 += w * x
            h11 += w * x * x
        det = h00 * h11 - h01 * h01
        if det <= 0:
            break
        step0 = (h11 * g0 - h01 * g1) / det
        step1 = (h00 * g1 - h01 * g0) / det
        b0, b1 = b0 + step0, b1 + step1
        if abs(step0) < 1e-10 and abs(step1) < 1e-10:
            break
    det = h00 * h11 - h01 * h01
    se0 = math.sqrt(h11 / det) if det > 0 else float("inf")

    def sigmoid(v: float) -> float:
        return 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0

    return {"value": sigmoid(b0), "ci95": [sigmoid(b0 - Z95 * se0), sigmoid(b0 + Z95 * se0)], "length_coefficient": b1, "n": n}


def evaluation_report(*, evaluation: Evaluation) -> dict[str, Any]:
    """Win rate of run B over run A (ties counted), its 95% interval on whole counts, and the length-controlled win rate."""
    outcomes = evaluation_outcomes(evaluation=evaluation)
    wins = sum(1 for y, _, _ in outcomes if y == 1.0)
    losses = sum(1 for y, _, _ in outcomes if y == 0.0)
    ties = len(outcomes) - wins - losses
    decisive = wins + losses
    low, high = wilson_interval(wins, decisive)
    lengths_a = [a for _, a, _ in outcomes]
    lengths_b = [b for _, _, b in outcomes]
    votes = len(outcomes)
    tasks_voted = RankingTask.objects.filter(evaluation=evaluation, submitted_count__gt=0).count()
    return {
        "evaluation": evaluation.pk,
        "run_a": evaluation.run_a_id,
        "run_b": evaluation.run_b_id,
        "tasks": evaluation.tasks_created,
        "tasks_with_votes": tasks_voted,
        "votes": votes,
        "wins_b": wins,
        "wins_a": losses,
        "ties": ties,
        "win_rate": {"value": wins / decisive if decisive else None, "ci95": [low, high], "successes": wins, "n": decisive,
                     "rule": "wins of B / decisive votes (ties left out of the interval, counted in `ties`), Wilson 95%"},
        "win_rate_ties_half": (wins + ties / 2) / votes if votes else None,
        "length_controlled": length_controlled_win_rate(outcomes)
        | {"rule": "logistic regression of the outcome (1 win, 1/2 tie, 0 loss) on (len B - len A) / (len B + len A); "
                   "sigmoid(intercept): B's win rate at equal length"},
        "mean_length_a": sum(lengths_a) / votes if votes else None,
        "mean_length_b": sum(lengths_b) / votes if votes else None,
        "b_better": decisive > 0 and low > 0.5,
        "judge": evaluation_judge_report(evaluation=evaluation),
    }


def evaluation_judge_start(*, project: Project, runs: Any, created_by: AbstractBaseUser | None = None,
                           enqueue: bool = True, **options: Any) -> tuple[Evaluation, JudgeRun]:
    """The evaluation of runs [A, B] (made if new) and a judge run over its tasks only.

    Args:
        **options: judge_run_create's (backend, model, base_url, api_key_env, pairs, batch_size, seed).

    Raises ApplicationError naming the cause (bad runs, a bad judge setting, no constitution, a
    model that cannot answer); nothing is written then, not even a new evaluation.
    """
    from annotation.services.judge import judge_run_create

    # One transaction: any refusal of the judge run (a bad setting, no constitution, a model that
    # cannot answer) rolls a new evaluation back. The project row stays locked during the probe.
    with transaction.atomic():
        evaluation = evaluation_create(project=project, runs=runs, created_by=created_by)
        run = judge_run_create(project=project, created_by=created_by, enqueue=enqueue, evaluation=evaluation, **options)
    return evaluation, run


def evaluation_judge_run(*, project: Project, evaluation: Evaluation, created_by: AbstractBaseUser | None = None,
                         **options: Any) -> JudgeRun:
    """A judge run over an existing evaluation's tasks (the API's `evaluations/{id}/judge-runs`)."""
    from annotation.services.judge import judge_run_create

    return judge_run_create(project=project, created_by=created_by, evaluation=evaluation, **options)


def _majority(outcomes: list[float]) -> float:
    """The people's outcome of one task: 1 when more put B above A, 0 when more put A above, else 0.5."""
    up = sum(1 for y in outcomes if y == 1.0)
    down = sum(1 for y in outcomes if y == 0.0)
    return 1.0 if up > down else 0.0 if down > up else 0.5


def evaluation_judge_report(*, evaluation: Evaluation) -> dict[str, Any] | None:
    """The judge's verdict on the evaluation's tasks, and its agreement with the people (None before any judge ranking)."""
    from annotation.services.judge_agreement import share

    items = {item.task_id: item for item in EvaluationItem.objects.filter(evaluation=evaluation)}
    run = (JudgeRun.objects.filter(project_id=evaluation.project_id, rankings__task_id__in=list(items))
           .select_related("constitution").order_by("-id").first())
    if run is None:
        return None
    judged: dict[int, float] = {}
    rows = JudgeRanking.objects.filter(run=run, task_id__in=list(items)).values_list("task_id", "tiers", "confident")
    for task_id, tiers, confident in rows:
        item = items[task_id]
        outcome = _outcome(tiers, item.response_a_id, item.response_b_id)
        if outcome is not None:
            # Not confident (orders disagreeing, or below the project's judge_confidence): a tie, counted.
            judged[task_id] = outcome if confident else 0.5
    wins = sum(1 for y in judged.values() if y == 1.0)
    losses = sum(1 for y in judged.values() if y == 0.0)
    decisive = wins + losses
    low, high = wilson_interval(wins, decisive)
    people: dict[int, list[float]] = defaultdict(list)
    for task_id, tiers in Ranking.objects.filter(task_id__in=list(judged)).values_list("task_id", "tiers"):
        item = items[task_id]
        outcome = _outcome(tiers, item.response_a_id, item.response_b_id)
        if outcome is not None:
            people[task_id].append(outcome)
    both = [(judged[tid], _majority(votes)) for tid, votes in people.items() if votes]
    strict = [(j, h) for j, h in both if j != 0.5 and h != 0.5]
    return {
        "run": {"id": run.pk, "status": run.status, "backend": run.backend, "model_name": run.model_name,
                "model_revision": run.model_revision, "constitution_version": run.constitution.version,
                "evaluation_only": (run.params or {}).get("evaluation") == evaluation.pk},
        "tasks_judged": len(judged),
        "wins_b": wins,
        "wins_a": losses,
        "ties": len(judged) - decisive,
        "win_rate": {"value": wins / decisive if decisive else None, "ci95": [low, high], "successes": wins, "n": decisive,
                     "rule": "one judge vote per task: wins of B / decisive votes; a tie where the two orders disagree "
                             "or the judge is not confident (counted in `ties`), Wilson 95%"},
        "tasks_with_both": len(both),
        "agreement": share(sum(j == h for j, h in strict), len(strict))
        | {"rule": "tasks where the judge and the people's majority both name a winner: the share naming the same one"},
        "agreement_with_ties": share(sum(j == h for j, h in both), len(both))
        | {"rule": "every task with both: the share where judge and majority agree (B, A or tie)"},
    }


def evaluations_of_project(*, project: Project):
    return Evaluation.objects.filter(project=project).order_by("-id")
