"""AI feedback under a written constitution: constitutions, judge runs, the judge's rankings.

A Constitution is versioned Markdown whose top-level list items are the principles. A JudgeRun
asks a model (sampling.judge) about every pair of each task's responses (`all`) or each pair of
neighbours in id order (`adjacent`) under one principle sampled per pair (seeded, recorded), in
both orders (position swap); the two orders' probabilities are averaged into the probability that
the pair's first response (lower id) is better. The comparisons become the judge's ranking of the
task (Bradley-Terry strengths via choix; a tie where the judge is not decided). Judge rankings are
JudgeRanking rows, never Ranking rows: they never count toward the human overlap, never appear
among the annotators and are never shown to them.

Crash safety, as generation runs (annotation.services.generation): a batch of tasks may run twice
(a worker killed mid-batch, the message redelivered). It only computes the tasks without a judge
ranking, and writes under a lock on the run row, checking again what is missing; comparisons are
unique per (run, task, pair), counters move once per batch, the run finishes exactly once.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from annotation.dispatch import DispatchError, TaskName, enqueue_many_after_commit
from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import (
    Constitution,
    JudgeComparison,
    JudgeRanking,
    JudgeRun,
    Project,
    RankingTask,
    RunStatus,
    WebhookEvent,
)
from annotation.services.validation import int_problem, string_problem
from annotation.services.webhooks import webhook_events_emit

logger = logging.getLogger(__name__)

BACKENDS = ("transformers", "openai")
PAIRS = ("all", "adjacent")
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED)
DEFAULT_BATCH_SIZE = 8
MAX_BATCH_SIZE = 1024
MAX_PRINCIPLES = 200
MAX_CONSTITUTION_CHARS = 100_000
MAX_RECORDED_FAILURES = 1000
# Bradley-Terry: the regularisation that keeps a response winning every comparison finite.
BT_ALPHA = 0.01
# Where two responses were not compared directly (pairs=adjacent), the Bradley-Terry probability
# one beats the other must reach this for the ranking to separate them.
INDIRECT_DECIDED = 0.6

_ITEM = re.compile(r"^(?:[-*+]|\d{1,9}[.)])\s+(.*)$")


# Constitutions


def constitution_parse(text: str) -> list[str]:
    """The principles of a Markdown constitution: each top-level list item (`-`, `*`, `+` or `1.`),
    its indented continuation lines joined with spaces. Nested items belong to their parent."""
    principles: list[str] = []
    current: list[str] | None = None
    in_fence = False
    for raw in text.splitlines():
        if raw.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            current = None
            continue
        if in_fence:
            continue
        match = _ITEM.match(raw)
        if match:
            current = [match.group(1).strip()]
            principles.append("")
            principles[-1] = " ".join(part for part in current if part)
            continue
        if current is not None and raw.strip() and raw[:1] in (" ", "\t"):
            current.append(raw.strip())
            principles[-1] = " ".join(part for part in current if part)
            continue
        if not raw.strip():
            continue  # a blank line inside an item keeps the item open for an indented paragraph
        current = None  # a paragraph or heading at the top level ends the list item
    return [p for p in principles if p]


@transaction.atomic
def constitution_create(*, project: Project, text: Any, created_by: AbstractBaseUser | None = None) -> Constitution:
    """A new version of the project's constitution (the latest is the one judge runs use).

    Older versions stay as they were, with the runs and labels made under them.
    Raises ApplicationError when the text is not a string or has no principle.
    """
    problem = string_problem(text, max_length=MAX_CONSTITUTION_CHARS)
    if problem:
        raise ApplicationError(f"Invalid constitution: text {problem}.", fields={"text": [problem]})
    principles = constitution_parse(text)
    if not principles:
        raise ApplicationError(
            "The constitution has no principle: write each principle as a top-level Markdown list item ('- ...' or '1. ...').",
            fields={"text": ["no principle (no top-level list item)"]},
        )
    if len(principles) > MAX_PRINCIPLES:
        raise ApplicationError(f"The constitution has {len(principles)} principles; at most {MAX_PRINCIPLES}.",
                               fields={"text": [f"at most {MAX_PRINCIPLES} principles"]})
    Project.objects.select_for_update().filter(pk=project.pk).first()  # versions numbered one at a time
    latest = Constitution.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    return Constitution.objects.create(
        project=project, version=latest + 1, text=text, principles=principles,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )


def constitution_current(*, project: Project) -> Constitution | None:
    return Constitution.objects.filter(project=project).order_by("-version").first()


# Pairs, prompts and the ranking (pure)


def task_pairs(response_ids: list[int], pairs: str) -> list[tuple[int, int]]:
    """The pairs a run asks about: (lower id, higher id)."""
    ids = sorted(response_ids)
    if pairs == "adjacent":
        return list(itertools.pairwise(ids))
    return list(itertools.combinations(ids, 2))


def principle_index(*, seed: int, task_id: int, a: int, b: int, count: int) -> int:
    """The principle sampled for a pair: seeded by the run's seed and the pair, so a rerun asks the same."""
    return random.Random(f"{seed}:{task_id}:{a}:{b}").randrange(count)


@dataclass(frozen=True)
class PairJudgement:
    a: int
    b: int
    prob_a: float
    orders_agree: bool


def _pick(p_a_preferred: float) -> str:
    return "a" if p_a_preferred > 0.5 else "b" if p_a_preferred < 0.5 else ""


def combine_orders(p_first: float, p_second: float) -> tuple[float, bool]:
    """(prob_a, orders_agree) from P(a better) asked with a first and with a second."""
    pick = _pick(p_first)
    return (p_first + p_second) / 2, bool(pick) and pick == _pick(p_second)


def judge_ranking_build(*, response_ids: list[int], judgements: list[PairJudgement],
                        confidence: float) -> tuple[list[list[int]], dict[int, float], bool]:
    """(tiers, strengths, confident) of a task from its pair judgements.

    Strengths: Bradley-Terry on the soft preferences (each pair adds prob_a of a win to a and the
    rest to b). Neighbours in strength order share a tier unless the judge decided between them:
    compared directly with both orders agreeing on the stronger one (else, not compared directly,
    a Bradley-Terry probability of at least INDIRECT_DECIDED). Confident: every neighbouring
    pair decided with probability >= `confidence`.
    """
    import choix
    import numpy as np

    ids = sorted(response_ids)
    index = {rid: i for i, rid in enumerate(ids)}
    if len(ids) < 2:
        return [ids], {rid: 0.0 for rid in ids}, False
    wins = np.zeros((len(ids), len(ids)))
    direct: dict[tuple[int, int], PairJudgement] = {}
    for j in judgements:
        wins[index[j.a], index[j.b]] += j.prob_a
        wins[index[j.b], index[j.a]] += 1 - j.prob_a
        direct[(j.a, j.b)] = j
    strengths_array = choix.ilsr_pairwise_dense(wins, alpha=BT_ALPHA) if judgements else np.zeros(len(ids))
    strengths = {rid: round(float(strengths_array[index[rid]]), 6) for rid in ids}
    order = sorted(ids, key=lambda rid: (-strengths[rid], rid))
    tiers: list[list[int]] = [[order[0]]]
    confident = bool(judgements)
    for upper, lower in itertools.pairwise(order):
        found = direct.get((min(upper, lower), max(upper, lower)))
        if found is not None:
            p_upper = found.prob_a if found.a == upper else 1 - found.prob_a
            decided = found.orders_agree and p_upper > 0.5
        else:
            p_upper = 1 / (1 + math.exp(strengths[lower] - strengths[upper]))
            decided = p_upper >= INDIRECT_DECIDED
        if decided:
            tiers.append([lower])
        else:
            tiers[-1].append(lower)
        confident = confident and decided and p_upper >= confidence
    return tiers, strengths, confident


# Creating a run


@dataclass(frozen=True, kw_only=True)
class JudgeOptions:
    """What a caller chooses for a judge run: the API's body and `judge`'s options (one rule, `problems()`)."""

    backend: str = "transformers"
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""
    pairs: str = "all"
    limit: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = 0

    def problems(self) -> dict[str, list[str]]:
        found = {
            "backend": "" if self.backend in BACKENDS else f"must be one of {', '.join(BACKENDS)}",
            "model": string_problem(self.model, max_length=500) or ("" if self.model.strip() else "required: the judge model"),
            "base_url": string_problem(self.base_url, max_length=2000),
            "api_key_env": string_problem(self.api_key_env, max_length=200)
            or ("" if not self.api_key_env or self.api_key_env in os.environ
                else f"the environment variable {self.api_key_env} is not set"),
            "pairs": "" if self.pairs in PAIRS else f"must be one of {', '.join(PAIRS)}",
            "limit": "" if self.limit is None else int_problem(self.limit, low=1, high=10**9),
            "batch_size": int_problem(self.batch_size, low=1, high=MAX_BATCH_SIZE),
            "seed": int_problem(self.seed, low=-(2**31), high=2**31 - 1),
        }
        return {name: [message] for name, message in found.items() if message}


def _openai_options(params: dict[str, Any]) -> dict[str, Any]:
    key_env = params.get("api_key_env") or ""
    return {
        "base_url": params.get("base_url") or settings.OPENAI_BASE_URL,
        "api_key": os.environ.get(key_env, "") if key_env else settings.OPENAI_API_KEY,
        "concurrency": settings.OPENAI_CONCURRENCY,
        "timeout": settings.OPENAI_TIMEOUT_SECONDS,
        "max_retries": settings.OPENAI_MAX_RETRIES,
        "backoff": settings.OPENAI_BACKOFF_SECONDS,
    }


def _task_responses(task_ids: list[int]) -> dict[int, list[int]]:
    through = RankingTask.responses.through
    out: dict[int, list[int]] = {tid: [] for tid in task_ids}
    for tid, rid in through.objects.filter(rankingtask_id__in=task_ids).values_list("rankingtask_id", "response_id"):
        out[tid].append(rid)
    return out


def _check_model(*, chosen: JudgeOptions, probe: list) -> str:
    """The model's revision, after checking the judge can answer: raises ApplicationError naming the cause."""
    from sampling import ModelLoadError
    from sampling.judge import get_judge

    model = chosen.model.strip()
    if chosen.backend == "transformers":
        path = Path(model)
        if (path.is_absolute() or model.startswith(".")) and not (path / "config.json").exists():
            raise ApplicationError(f"Unknown judge model: no model at {model}.", fields={"model": ["no model at this path"]})
        from sampling.transformers_backend import model_fingerprint

        revision = model_fingerprint(model)
        try:
            judge = get_judge(backend="transformers", model=model, revision=revision)
        except ModelLoadError as exc:
            raise ApplicationError(f"Unknown judge model '{model}': {exc}", fields={"model": [str(exc)]}) from exc
    else:
        revision = ""
        judge = get_judge(backend="openai", model=model,
                          openai={**_openai_options({"base_url": chosen.base_url, "api_key_env": chosen.api_key_env}), "max_retries": 1})
    # One real question before anything is written: a server that cannot answer a letter is bad input.
    answer = judge.judge(probe)[0]
    if answer.failed:
        raise ApplicationError(f"The judge model '{model}' could not answer a comparison: {answer.error}",
                               fields={"model": [answer.error]})
    return revision


def judge_run_create(*, project: Project, created_by: AbstractBaseUser | None = None, enqueue: bool = True,
                     evaluation: Any = None, **options: Any) -> JudgeRun:
    """Create a judge run over the project's tasks under its latest constitution; batches go to queue `generation`.

    Args:
        **options: the fields of JudgeOptions: backend (transformers | openai), model (a local path
            or hub id; openai: the server's model name), base_url and api_key_env (openai: the server
            and the environment variable holding its key), pairs (all | adjacent), limit (the first
            N tasks), batch_size (tasks per Celery task), seed (the principle sampling).
        enqueue: False when the caller runs the batches itself (`run.batches`).
        evaluation: an Evaluation of this project: judge only its tasks (recorded as
            `params["evaluation"]`; annotation.services.evaluation reports on it).

    Raises:
        ApplicationError (400) naming the cause: a bad option, no constitution, an evaluation of
        another project, no task with two responses, an unknown model, a judge that does not answer a letter. Nothing is written then.
    """
    chosen = JudgeOptions(**options)
    errors = chosen.problems()
    if errors:
        raise ApplicationError(f"Invalid judge settings: {', '.join(errors)}.", fields=errors)
    constitution = constitution_current(project=project)
    if constitution is None:
        raise ApplicationError(
            f"Project '{project.slug}' has no constitution; add one first (`constitution {project.slug} --file FILE`).",
            fields={"constitution": ["the project has no constitution"]},
        )
    if evaluation is not None and evaluation.project_id != project.pk:
        raise ApplicationError(f"Evaluation {evaluation.pk} is not an evaluation of project {project.slug}.",
                               fields={"evaluation": [f"not an evaluation of project {project.slug}"]})
    selected = RankingTask.objects.filter(project=project)
    if evaluation is not None:
        selected = selected.filter(evaluation=evaluation)
    tasks = list(selected.order_by("id").values_list("id", flat=True))
    if chosen.limit is not None:
        tasks = tasks[: chosen.limit]
    responses = _task_responses(tasks)
    tasks = [tid for tid in tasks if len(responses[tid]) >= 2]
    if not tasks:
        raise ApplicationError(f"Project '{project.slug}' has no ranking tasks to judge; import or generate responses first.",
                               fields={"tasks": ["the project has no tasks"]})
    system_prompt, template = _prompt_parts(project)
    probe = _queries(task_id=tasks[0], pairs_of_task=task_pairs(responses[tasks[0]], chosen.pairs)[:1],
                     principles=constitution.principles, seed=chosen.seed, system_prompt=system_prompt, template=template,
                     orders=("first",))
    revision = _check_model(chosen=chosen, probe=probe)
    params = {}
    if chosen.backend == "openai":
        params = {"base_url": chosen.base_url or settings.OPENAI_BASE_URL, "api_key_env": chosen.api_key_env}
    if evaluation is not None:
        params["evaluation"] = evaluation.pk
    batches = [tasks[i : i + chosen.batch_size] for i in range(0, len(tasks), chosen.batch_size)]
    with transaction.atomic():
        run = JudgeRun.objects.create(
            project=project, constitution=constitution, backend=chosen.backend, model_name=chosen.model.strip(),
            model_revision=revision, pairs=chosen.pairs, task_limit=chosen.limit, seed=chosen.seed,
            batch_size=chosen.batch_size, system_prompt=system_prompt, prompt_template=template, params=params,
            tasks_total=len(tasks), comparisons_total=sum(len(task_pairs(responses[t], chosen.pairs)) for t in tasks),
            batches_total=len(batches),
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        )
        if enqueue:
            def fail(exc: DispatchError) -> None:
                judge_run_fail(run_id=run.pk, error=f"could not enqueue the run's batches: {exc}")

            enqueue_many_after_commit(TaskName.JUDGE_BATCH, args_list=[[run.pk, batch] for batch in batches], on_error=fail)
    run.batches = batches  # type: ignore[attr-defined]
    return run


def _prompt_parts(project: Project) -> tuple[str, str]:
    from sampling.judge import DEFAULT_SYSTEM_PROMPT, DEFAULT_TEMPLATE

    return DEFAULT_SYSTEM_PROMPT, project.judge_prompt_template or DEFAULT_TEMPLATE


def _queries(*, task_id: int, pairs_of_task: list[tuple[int, int]], principles: list[str], seed: int,
             system_prompt: str, template: str, orders: tuple[str, ...] = ("first", "second"),
             texts: dict[int, str] | None = None, conversation: list | None = None) -> list:
    from annotation.models import Response
    from sampling.judge import JudgeQuery, judge_messages

    if texts is None or conversation is None:
        task = RankingTask.objects.select_related("prompt").get(pk=task_id)
        conversation = task.prompt.messages
        texts = dict(Response.objects.filter(id__in={r for pair in pairs_of_task for r in pair}).values_list("id", "text"))
    queries = []
    for a, b in pairs_of_task:
        principle = principles[principle_index(seed=seed, task_id=task_id, a=a, b=b, count=len(principles))]
        for order in orders:
            first, second = (a, b) if order == "first" else (b, a)
            messages = judge_messages(conversation=conversation, principle=principle, response_a=texts[first],
                                      response_b=texts[second], template=template, system_prompt=system_prompt)
            queries.append(JudgeQuery(key=(task_id, a, b, order), messages=messages))
    return queries


# Cancelling and failing


def judge_run_cancel(*, run: JudgeRun) -> JudgeRun:
    """Stop the run: batches not started do nothing; one in flight still writes what it judged. Conflict if finished."""
    with transaction.atomic():
        updated = JudgeRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
        if updated:
            _emit_finished(run.project_id, run.pk, RunStatus.CANCELLED)
    run.refresh_from_db()
    if not updated:
        raise Conflict(f"Judge run {run.pk} has already finished ({run.status}).", extra={"status": run.status})
    return run


def judge_run_fail(*, run_id: int, error: str) -> bool:
    with transaction.atomic():
        updated = JudgeRun.objects.filter(pk=run_id, status__in=ACTIVE).update(
            status=RunStatus.FAILED, error=error[:5000], finished_at=timezone.now()
        )
        if updated:
            _emit_finished(JudgeRun.objects.values_list("project_id", flat=True).get(pk=run_id), run_id, RunStatus.FAILED)
    return bool(updated)


def _emit_finished(project_id: int, run_id: int, status: str) -> None:
    """judge_run.finished, in the transaction that gave the run its final status."""
    webhook_events_emit(project_id=project_id, event=WebhookEvent.JUDGE_RUN_FINISHED, object_id=run_id, data={"status": str(status)})


# Running one batch


@dataclass
class JudgeBatchOutcome:
    skipped: str = ""
    comparisons_written: int = 0
    tasks_ranked: int = 0
    retry: bool = False  # transient failures: the task retries the batch later
    errors: list[str] = field(default_factory=list)


def _missing_tasks(run: JudgeRun, task_ids: list[int]) -> list[int]:
    have = set(JudgeRanking.objects.filter(run=run, task_id__in=task_ids).values_list("task_id", flat=True))
    failed = (run.summary or {}).get("failed_tasks", {})
    return [tid for tid in task_ids if tid not in have and str(tid) not in failed]


def judge_batch_run(*, run_id: int, task_ids: list[int], final_attempt: bool = True) -> JudgeBatchOutcome:
    """Judge and write the missing tasks of one batch. Idempotent.

    Raises ModelLoadError (the caller fails the run). Transient failures (rate limits, 5xx, an
    unreachable server) come back as `retry` unless `final_attempt`, when they are recorded as
    failed comparisons.
    """
    from annotation.models import Response
    from sampling.judge import get_judge

    run = JudgeRun.objects.select_related("constitution").filter(pk=run_id).first()
    if run is None:
        return JudgeBatchOutcome(skipped="no run")
    if run.status in FINISHED:
        return JudgeBatchOutcome(skipped="finished")
    missing = _missing_tasks(run, task_ids)
    if not missing:
        return JudgeBatchOutcome(skipped="nothing missing")
    JudgeRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING, started_at=timezone.now())

    responses = _task_responses(missing)
    tasks = {t.pk: t for t in RankingTask.objects.select_related("prompt").filter(pk__in=missing)}
    texts = dict(Response.objects.filter(id__in={r for rs in responses.values() for r in rs}).values_list("id", "text"))
    queries = []
    for tid in missing:
        queries += _queries(task_id=tid, pairs_of_task=task_pairs(responses[tid], run.pairs), principles=run.constitution.principles,
                            seed=run.seed, system_prompt=run.system_prompt, template=run.prompt_template, texts=texts,
                            conversation=tasks[tid].prompt.messages)
    judge = get_judge(backend=run.backend, model=run.model_name, revision=run.model_revision,
                      openai=_openai_options(run.params or {}) if run.backend == "openai" else None)
    started = time.perf_counter()
    answers = judge.judge(queries)
    seconds = time.perf_counter() - started
    if not final_attempt and any(a.failed and a.transient for a in answers):
        return JudgeBatchOutcome(retry=True, errors=[a.error for a in answers if a.failed and a.transient][:3])
    return judge_batch_write(run_id=run_id, task_ids=task_ids, queries=queries, answers=answers, seconds=seconds)


@transaction.atomic
def judge_batch_write(*, run_id: int, task_ids: list[int], queries: list, answers: list, seconds: float) -> JudgeBatchOutcome:
    """Write a batch's comparisons and rankings once, under a lock on the run; finish the run after its last batch."""
    run = JudgeRun.objects.select_for_update().select_related("project", "constitution").get(pk=run_id)
    outcome = JudgeBatchOutcome()
    missing = set(_missing_tasks(run, task_ids))
    if not missing:
        outcome.skipped = "nothing missing"
        return outcome
    principles = run.constitution.principles
    by_key = {a.key: a for a in answers}
    rows: list[JudgeComparison] = []
    seen_pairs: set[tuple[int, int, int]] = set()
    for query in queries:
        tid, a, b, _ = query.key
        if tid not in missing or (tid, a, b) in seen_pairs:
            continue
        seen_pairs.add((tid, a, b))
        first, second = by_key.get((tid, a, b, "first")), by_key.get((tid, a, b, "second"))
        index = principle_index(seed=run.seed, task_id=tid, a=a, b=b, count=len(principles))
        row = JudgeComparison(run=run, task_id=tid, response_a_id=a, response_b_id=b, principle=principles[index], principle_index=index)
        if first is None or second is None or first.failed or second.failed:
            bad = next((x for x in (first, second) if x is None or x.failed), None)
            row.failed = True
            # Neither letter: what the judge said instead; an HTTP failure: its error.
            row.failed_text = (bad.text or bad.error)[:5000] if bad is not None else "the judge returned no answer"
        else:
            row.p_first, row.p_second = first.p_a, 1 - second.p_a
            row.prob_a, row.orders_agree = combine_orders(row.p_first, row.p_second)
            row.hard_label = first.hard or second.hard
        rows.append(row)
    JudgeComparison.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)

    responses = _task_responses(list(missing))
    rankings, failed_tasks = [], {}
    done = JudgeComparison.objects.filter(run=run, task_id__in=missing, failed=False)
    per_task: dict[int, list[PairJudgement]] = {tid: [] for tid in missing}
    for tid, a, b, prob, agree in done.values_list("task_id", "response_a_id", "response_b_id", "prob_a", "orders_agree"):
        per_task[tid].append(PairJudgement(a=a, b=b, prob_a=prob, orders_agree=bool(agree)))
    for tid in missing:
        if not per_task[tid]:
            first_failure = JudgeComparison.objects.filter(run=run, task_id=tid, failed=True).values_list("failed_text", flat=True).first()
            failed_tasks[str(tid)] = first_failure or "no comparison"
            continue
        tiers, strengths, confident = judge_ranking_build(response_ids=responses[tid], judgements=per_task[tid],
                                                          confidence=run.project.judge_confidence)
        rankings.append(JudgeRanking(run=run, project_id=run.project_id, task_id=tid, tiers=tiers,
                                     strengths={str(k): v for k, v in strengths.items()}, confident=confident))
    JudgeRanking.objects.bulk_create(rankings, ignore_conflicts=True)
    written_ok = sum(1 for r in rows if not r.failed)
    summary = dict(run.summary or {})
    if failed_tasks:
        recorded = dict(summary.get("failed_tasks", {}))
        for key, reason in failed_tasks.items():
            if len(recorded) < MAX_RECORDED_FAILURES:
                recorded[key] = reason
        summary["failed_tasks"] = recorded
        summary.setdefault("first_error", next(iter(failed_tasks.values())))
    failed_rows = [r for r in rows if r.failed]
    if failed_rows:
        summary.setdefault("first_failed_comparison", failed_rows[0].failed_text[:1000])
    JudgeRun.objects.filter(pk=run.pk).update(
        tasks_done=F("tasks_done") + len(rankings),
        tasks_failed=F("tasks_failed") + len(failed_tasks),
        comparisons_done=F("comparisons_done") + written_ok,
        comparisons_failed=F("comparisons_failed") + len(failed_rows),
        judge_seconds=F("judge_seconds") + seconds,
        batches_done=F("batches_done") + 1,
        summary=summary,
    )
    run.refresh_from_db()
    if run.batches_done >= run.batches_total:
        _finish(run)
    outcome.comparisons_written = len(rows)
    outcome.tasks_ranked = len(rankings)
    return outcome


def judge_batch_give_up(*, run_id: int, task_ids: list[int], reason: str) -> JudgeBatchOutcome:
    """Record the batch's missing tasks as failed (retries exhausted), so the run can finish."""
    with transaction.atomic():
        run = JudgeRun.objects.select_for_update().get(pk=run_id)
        missing = _missing_tasks(run, task_ids)
        if not missing or run.status in FINISHED:
            return JudgeBatchOutcome(skipped="nothing missing")
        summary = dict(run.summary or {})
        recorded = dict(summary.get("failed_tasks", {}))
        for tid in missing:
            recorded.setdefault(str(tid), reason[:1000])
        summary["failed_tasks"] = recorded
        summary.setdefault("first_error", reason[:1000])
        JudgeRun.objects.filter(pk=run.pk).update(tasks_failed=F("tasks_failed") + len(missing), batches_done=F("batches_done") + 1,
                                                  summary=summary)
        run.refresh_from_db()
        if run.batches_done >= run.batches_total:
            _finish(run)
    return JudgeBatchOutcome()


def _finish(run: JudgeRun) -> None:
    """Final status, set once (the caller holds the run's row lock)."""
    if run.status not in ACTIVE:
        return
    if run.tasks_failed == 0 and run.comparisons_failed == 0:
        status, error = RunStatus.SUCCEEDED, ""
    else:
        status = RunStatus.FAILED if run.tasks_done == 0 else RunStatus.PARTIAL
        first = (run.summary or {}).get("first_error") or (run.summary or {}).get("first_failed_comparison", "")
        error = (f"{run.tasks_failed} of {run.tasks_total} tasks and {run.comparisons_failed} of {run.comparisons_total} "
                 f"comparisons failed; first error: {first}")
    if JudgeRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(status=status, error=error, finished_at=timezone.now()):
        from annotation.services.judge_routing import judge_routing_apply

        routed = judge_routing_apply(run=run)
        if routed:
            JudgeRun.objects.filter(pk=run.pk).update(summary={**(run.summary or {}), "routed_tasks": routed})
        _emit_finished(run.project_id, run.pk, status)


# Reading


def judge_run_get(*, project: Project, run_id: int) -> JudgeRun:
    run = JudgeRun.objects.select_related("constitution").filter(project=project, pk=run_id).first()
    if run is None:
        raise NotFound("Judge run not found.")
    return run


def judge_run_progress(*, run: JudgeRun) -> dict[str, Any]:
    """Progress figures for the API, the command and the dashboard."""
    finished = run.tasks_done + run.tasks_failed
    elapsed = None
    if run.started_at:
        elapsed = ((run.finished_at or timezone.now()) - run.started_at).total_seconds()
    return {
        "tasks_total": run.tasks_total,
        "tasks_done": run.tasks_done,
        "tasks_failed": run.tasks_failed,
        "percent": round(100 * finished / run.tasks_total, 1) if run.tasks_total else 100.0,
        "comparisons_total": run.comparisons_total,
        "comparisons_done": run.comparisons_done,
        "comparisons_failed": run.comparisons_failed,
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "comparisons_per_second": round(run.comparisons_done / run.judge_seconds, 2) if run.judge_seconds else None,
        "elapsed_seconds": round(elapsed, 2) if elapsed is not None else None,
    }
