"""Rounds: the chain policy -> generation runs -> tasks -> rankings or demonstrations -> exports -> training jobs -> next policy.

Nothing new is stored: a round is derived from the foreign keys that already say where things
came from.
- A round is one *policy*: the base model (runs without `source_training_job`, grouped by model
  name) or a training job's trained model (runs with that `source_training_job`). Rounds are
  ordered by their first generation run.
- Its tasks are the non-evaluation tasks over its runs' responses; its rankings and
  demonstrations are those tasks'.
- Its exports are the project's exports made while it was the latest round (from its first run to
  the next round's first run); its training jobs are those trained on them (`TrainingJob.export`),
  or, for jobs on a data file, created in that window.
- The next round's policy names the job that trained it, so `parent_round` is the round holding
  that job (normally the previous one).
Per round: mean response length (characters, and tokens where recorded), the mean reward of its
responses under the latest succeeded reward job (real forward passes of that model on up to
REWARD_SAMPLE responses, stored in that job's report so that pages read it without loading a
model), and the head-to-head result against the previous round: the latest evaluation pairing a
run of the previous round with a run of this one. A policy is `promoted` only when its win
rate's 95% interval lies above 0.5.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count
from django.db.models.functions import Length

from annotation.models import (
    Demonstration,
    Evaluation,
    ExportSnapshot,
    GenerationRun,
    JobStatus,
    Project,
    Ranking,
    RankingTask,
    Response,
    TrainingJob,
)
from annotation.services.evaluation import evaluation_report
from training.evaluation import wilson_interval

REWARD_SAMPLE = 64  # responses scored per round (the lowest ids: the same ones every time)
REWARD_REPORT_KEY = "rounds_mean_reward"  # in the reward job's report: sample key -> {value, n, reward_job}


def _policy_key(run: GenerationRun, default_model: str) -> tuple[str, Any]:
    if run.source_training_job_id is not None:
        return ("training_job", run.source_training_job_id)
    return ("base_model", run.model_name or default_model)


def latest_reward_job(*, project: Project) -> TrainingJob | None:
    """The project's most recently finished succeeded reward job (its model scores the rounds' responses)."""
    return (TrainingJob.objects.filter(project=project, kind="reward", status=JobStatus.SUCCEEDED)
            .order_by("-finished_at", "-id").first())


def _mean_reward(*, job: TrainingJob, run_ids: list[int], cached_only: bool = False) -> dict[str, Any] | None:
    """Mean reward under `job`'s model of up to REWARD_SAMPLE of the runs' responses (stored per job and sample).

    cached_only: never load the model (a web page must not): the stored figure, or a note.
    """
    from annotation.services.training import training_job_model_dir

    rows = list(Response.objects.filter(run_id__in=run_ids).order_by("id")
                .values_list("id", "text", "prompt__messages")[:REWARD_SAMPLE])
    if not rows:
        return None
    model_dir = training_job_model_dir(job)
    if not (model_dir / "config.json").exists():
        return {"value": None, "n": 0, "reward_job": job.pk, "note": f"reward job {job.pk} has no saved model"}
    key = f"{rows[0][0]}-{rows[-1][0]}-{len(rows)}"
    # Kept on the reward job itself (not a per-process cache), so the page shows what the command computed.
    stored = (job.report or {}).get(REWARD_REPORT_KEY, {}).get(key)
    if stored is not None:
        return stored
    if cached_only:
        return {"value": None, "n": 0, "reward_job": job.pk, "note": "not computed yet: run `rounds SLUG` once"}
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.evaluation import reward_scores

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    conversations = [[*messages, {"role": "assistant", "content": text}] for _, text, messages in rows]
    scores = reward_scores(model, tokenizer, conversations)
    result = {"value": sum(scores) / len(scores), "n": len(scores), "reward_job": job.pk}
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
        report = dict(locked.report or {})
        report[REWARD_REPORT_KEY] = {**report.get(REWARD_REPORT_KEY, {}), key: result}
        TrainingJob.objects.filter(pk=job.pk).update(report=report)
        job.report = report
    return result


def _head_to_head(*, previous_runs: list[int], runs: list[int]) -> dict[str, Any] | None:
    """This round against the previous one: the latest evaluation pairing their runs (either way round), as B over A."""
    forward = Evaluation.objects.filter(run_a_id__in=previous_runs, run_b_id__in=runs).order_by("-id").first()
    backward = Evaluation.objects.filter(run_a_id__in=runs, run_b_id__in=previous_runs).order_by("-id").first()
    chosen = max((e for e in (forward, backward) if e is not None), key=lambda e: e.pk, default=None)
    if chosen is None:
        return None
    report = evaluation_report(evaluation=chosen)
    wins, losses = (report["wins_b"], report["wins_a"]) if chosen is forward else (report["wins_a"], report["wins_b"])
    decisive = wins + losses
    low, high = wilson_interval(wins, decisive)
    lc = report["length_controlled"]
    lc_value, lc_ci = lc["value"], lc["ci95"]
    if chosen is backward and lc_value is not None:  # seen from this round's side
        lc_value, lc_ci = 1 - lc_value, [1 - lc_ci[1], 1 - lc_ci[0]]
    return {
        "evaluation": chosen.pk,
        "previous_run": chosen.run_a_id if chosen is forward else chosen.run_b_id,
        "run": chosen.run_b_id if chosen is forward else chosen.run_a_id,
        "wins": wins, "losses": losses, "ties": report["ties"], "votes": report["votes"],
        "win_rate": {"value": wins / decisive if decisive else None, "ci95": [low, high], "successes": wins, "n": decisive},
        "length_controlled": {"value": lc_value, "ci95": lc_ci},
    }


def rounds_of_project(*, project: Project, with_reward: bool = True, reward_cached_only: bool = False) -> dict[str, Any]:
    """The project's rounds, oldest first, each with its lineage and figures (see the module docstring).

    with_reward: score responses with the latest reward job's model; reward_cached_only: only
    figures already computed (for pages: loading a model is the command's job).
    """
    # Only for runs that recorded no model name: never builds or loads a model.
    default_model = project.gen_model or settings.GENERATION_MODEL or "the default generation model"
    runs = list(GenerationRun.objects.filter(project=project).order_by("created_at", "id"))
    groups: dict[tuple[str, Any], list[GenerationRun]] = {}
    for run in runs:
        groups.setdefault(_policy_key(run, default_model), []).append(run)
    starts = [group[0].created_at for group in groups.values()]
    exports = list(ExportSnapshot.objects.filter(project=project).order_by("created_at", "id"))
    jobs = list(TrainingJob.objects.filter(project=project).order_by("created_at", "id"))
    reward_job = latest_reward_job(project=project) if with_reward else None

    def window(index: int) -> tuple[datetime, datetime | None]:
        return starts[index], starts[index + 1] if index + 1 < len(starts) else None

    def inside(moment: datetime, index: int) -> bool:
        start, end = window(index)
        return moment >= start and (end is None or moment < end)

    rounds: list[dict[str, Any]] = []
    job_round: dict[int, int] = {}
    for index, ((kind, ident), group) in enumerate(groups.items()):
        run_ids = [run.pk for run in group]
        round_exports = [e for e in exports if inside(e.created_at, index)]
        export_ids = {e.pk for e in round_exports}
        round_jobs = [j for j in jobs if j.export_id in export_ids or (j.export_id is None and inside(j.created_at, index))]
        for job in round_jobs:
            job_round[job.pk] = index + 1
        # A subquery, not a list of ids: a round of 100k tasks would send 100k parameters twice.
        task_ids = (RankingTask.objects.filter(project=project, evaluation__isnull=True, responses__run_id__in=run_ids)
                    .values("id").distinct())
        lengths = Response.objects.filter(run_id__in=run_ids).aggregate(
            chars=Avg(Length("text")), tokens=Avg("token_count"), n=Count("id"))
        policy: dict[str, Any] = {"kind": kind}
        if kind == "training_job":
            policy["training_job"] = ident
            policy["model"] = group[0].model_name
        else:
            policy["model"] = ident
        rounds.append({
            "round": index + 1,
            "policy": policy,
            "started_at": starts[index].isoformat(),
            "generation_runs": [{"id": run.pk, "status": run.status, "responses": run.responses_count} for run in group],
            "tasks": task_ids.count(),
            "rankings": Ranking.objects.filter(task_id__in=task_ids).count(),
            "demonstrations": Demonstration.objects.filter(task_id__in=task_ids).count(),
            "exports": [{"id": e.pk, "format": e.format, "status": e.status} for e in round_exports],
            "training_jobs": [{"id": j.pk, "kind": j.kind, "status": j.status, "export": j.export_id} for j in round_jobs],
            "responses": lengths["n"],
            "mean_response_chars": lengths["chars"],
            "mean_response_tokens": lengths["tokens"],
            "mean_reward": _mean_reward(job=reward_job, run_ids=run_ids, cached_only=reward_cached_only)
            if reward_job is not None else None,
            "_runs": run_ids,
        })
    for index, item in enumerate(rounds):
        policy = item["policy"]
        item["parent_round"] = job_round.get(policy["training_job"]) if policy["kind"] == "training_job" else None
        if index == 0:
            item["head_to_head"], item["promoted"] = None, None
        else:
            h2h = _head_to_head(previous_runs=rounds[index - 1]["_runs"], runs=item["_runs"])
            item["head_to_head"] = h2h
            item["promoted"] = bool(h2h and h2h["win_rate"]["n"] and h2h["win_rate"]["ci95"][0] > 0.5)
    for item in rounds:
        del item["_runs"]
    return {
        "project": project.slug,
        "reward_job": reward_job.pk if reward_job is not None else None,
        "rounds": rounds,
        "evaluations": [evaluation_report(evaluation=e) for e in Evaluation.objects.filter(project=project).order_by("id")],
        "rule": "promoted: the head-to-head win rate's 95% Wilson interval (decisive votes) lies above 0.5",
    }


def rounds_by_round(rounds: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Round number -> round (for pages and tests)."""
    return defaultdict(dict, {item["round"]: item for item in rounds})
