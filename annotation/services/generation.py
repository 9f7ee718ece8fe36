"""Generation runs: create, plan batches, run one batch, write its responses, finish, cancel.

A run records everything needed to reproduce it (backend, model and the revision or sha256 of
local weights, n, temperature, top_p, max_new_tokens, seed, system prompt, batch size). Its
prompts are split into batches, each a Celery task on queue `generation`, enqueued on commit.

Crash safety: a batch may run twice (a worker killed mid-batch, the message redelivered). It
only computes what is missing, and its writes happen under a lock on the run row, checking again
what is missing; so responses are written once (the unique (prompt, run, sample_index) also
guards), counters move once per batch, and the run finishes exactly once, never left 'running'.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from annotation.dispatch import DispatchError, TaskName, enqueue_many_after_commit
from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import GenerationRun, Project, Prompt, Response, RunStatus, TrainingJob, WebhookEvent
from annotation.services.tasks import response_text_hash, tasks_create_for_prompts
from annotation.services.validation import int32_problem, int_problem, is_number, number_problem, string_problem
from annotation.services.webhooks import webhook_events_emit

logger = logging.getLogger(__name__)

BACKENDS = ("transformers", "openai")
ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED)
MAX_N = 64
MAX_NEW_TOKENS = 32768
# Prompts per task and per generate call: the one cap, whoever starts the run (API, command, a training job).
MAX_BATCH_SIZE = 1024
DEFAULT_BATCH_SIZE = 8
MAX_TEMPERATURE = 5.0
MAX_MODEL_CHARS = 500
# Failure reasons kept in run.summary["failed_prompts"]; beyond this only the count grows.
MAX_RECORDED_FAILURES = 1000


# Creating a run


def sampling_problems(*, temperature: Any, top_p: Any, max_new_tokens: Any, seed: Any) -> dict[str, str]:
    """What is wrong with these sampling settings, name -> message: the rule for a run's settings
    and for a project's defaults (gen_temperature, ...), which become a run's settings."""
    problems = {
        "temperature": number_problem(temperature, low=0, high=MAX_TEMPERATURE),
        "top_p": "" if is_number(top_p) and 0 < top_p <= 1 else "must be a number with 0 < top_p <= 1",
        "max_new_tokens": int_problem(max_new_tokens, low=1, high=MAX_NEW_TOKENS),
        "seed": int32_problem(seed),
    }
    return {name: message for name, message in problems.items() if message}


@dataclass(frozen=True, kw_only=True)
class GenerationOptions:
    """What a caller chooses for a generation run: the API's body, `generate`'s options, round two's.

    None takes the project's default (n: responses_per_prompt; the others its gen_* settings, model
    then GENERATION_MODEL then the tiny local model). The rules are `problems()`, checked by
    generation_run_create once the defaults are filled in: the API's serializer checks JSON types
    only and the command argparse types only, so both get the same answers.

    Example:
        >>> GenerationOptions(n=0, seed=7).with_defaults(project).problems()
        {'n': ['must be an integer from 1 to 64']}
    """

    backend: str = "transformers"
    model: str = ""
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    system_prompt: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    # Further backend options recorded with the run (openai: base_url; transformers: min_new_tokens).
    params: dict[str, Any] = field(default_factory=dict)

    def with_defaults(self, project: Project) -> GenerationOptions:
        """These options with each None replaced by the project's default."""
        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return replace(
            self,
            n=pick(self.n, project.responses_per_prompt),
            temperature=pick(self.temperature, project.gen_temperature),
            top_p=pick(self.top_p, project.gen_top_p),
            max_new_tokens=pick(self.max_new_tokens, project.gen_max_new_tokens),
            seed=pick(self.seed, project.gen_seed),
            system_prompt=pick(self.system_prompt, project.gen_system_prompt),
            params=dict(self.params) if isinstance(self.params, dict) else ({} if self.params is None else self.params),
        )

    def problems(self) -> dict[str, list[str]]:
        """Every problem with these options, field name -> messages (empty when valid)."""
        found = {
            "backend": "" if self.backend in BACKENDS else f"must be one of {', '.join(BACKENDS)}",
            "model": string_problem(self.model, max_length=MAX_MODEL_CHARS),
            "n": int_problem(self.n, low=1, high=MAX_N),
            "system_prompt": string_problem(self.system_prompt),
            "batch_size": int_problem(self.batch_size, low=1, high=MAX_BATCH_SIZE),
            "params": "" if isinstance(self.params, dict) else "must be an object",
            **sampling_problems(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed),
        }
        return {name: [message] for name, message in found.items() if message}


def generation_default_model() -> str:
    """GENERATION_MODEL, or the tiny model the project builds locally (built on first use)."""
    if settings.GENERATION_MODEL:
        return settings.GENERATION_MODEL
    from training.tiny_model import ensure_tiny_model

    return str(ensure_tiny_model(settings.TINY_MODEL_DIR))


def _model_revision(*, backend: str, model: str) -> str:
    if backend != "transformers":
        return ""  # the server decides; its model name is what we can record
    from sampling.transformers_backend import model_fingerprint

    return model_fingerprint(model)


def _prompt_length(messages: Any) -> int:
    if isinstance(messages, list):
        return sum(len(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    return len(str(messages))


def generation_plan_batches(*, run: GenerationRun, prompt_ids: Iterable[int] | None = None) -> list[list[int]]:
    """The run's prompts lacking responses from it, sorted by length, cut into batches of run.batch_size."""
    prompts = Prompt.objects.filter(project_id=run.project_id)
    if prompt_ids is not None:
        prompts = prompts.filter(id__in=list(prompt_ids))
    complete = Response.objects.filter(run=run).values("prompt_id").annotate(c=Count("id")).filter(c__gte=run.n)
    have = set(complete.values_list("prompt_id", flat=True))
    rows = [(pid, _prompt_length(messages)) for pid, messages in prompts.values_list("id", "messages") if pid not in have]
    # Similar lengths together: less padding in each generate call.
    rows.sort(key=lambda row: (row[1], row[0]))
    ids = [pid for pid, _ in rows]
    return [ids[i : i + run.batch_size] for i in range(0, len(ids), run.batch_size)]


def _enqueue_batches(run_id: int, batches: list[list[int]]) -> None:
    """One generation task per batch after the commit; a refusing broker fails the run visibly."""

    def fail(exc: DispatchError) -> None:
        # Never run the work inline instead: batches already sent will find the run failed and skip.
        generation_run_fail(run_id=run_id, error=f"could not enqueue the run's batches: {exc}")

    enqueue_many_after_commit(TaskName.GENERATION_BATCH, args_list=[[run_id, batch] for batch in batches], on_error=fail)


@transaction.atomic
def generation_run_create(
    *,
    project: Project,
    created_by: AbstractBaseUser | None = None,
    source_training_job: TrainingJob | None = None,
    prompt_ids: Iterable[int] | None = None,
    enqueue: bool = True,
    **options: Any,
) -> GenerationRun:
    """Create a run over the project's prompts and enqueue its batches on queue `generation` on commit.

    Args:
        project: whose prompts get responses.
        **options: the fields of GenerationOptions (backend, model, n, temperature, top_p,
            max_new_tokens, seed, system_prompt, batch_size, params); omitted or None: the
            project's defaults. backend "transformers" (a worker loads the model) or "openai" (an
            OpenAI-compatible server); model: a Hugging Face id or local path, or the server's
            model name; "" means the project's gen_model, then GENERATION_MODEL, then the tiny
            local model.
        prompt_ids: only these prompts of the project (default: all of them).
        enqueue: False when the caller runs the batches itself (the command without a broker);
            the planned batches are then on `run.batches`.

    Raises:
        ApplicationError naming each invalid field; or when the project has no prompts.
        TypeError for a keyword that is not an option.
    """
    chosen = GenerationOptions(**options).with_defaults(project)
    errors = chosen.problems()
    if errors:
        raise ApplicationError(f"Invalid generation settings: {', '.join(errors)}.", fields=errors)
    if source_training_job is not None and source_training_job.project_id != project.pk:
        raise ApplicationError("The training job belongs to another project.", fields={"source_training_job": ["not in this project"]})
    backend, model, params = chosen.backend, chosen.model, chosen.params

    model = model.strip() or project.gen_model or ""
    if not model:
        if backend == "openai":
            raise ApplicationError("The openai backend needs a model name.", fields={"model": ["required for the openai backend"]})
        model = generation_default_model()
    if backend == "openai":
        params.setdefault("base_url", settings.OPENAI_BASE_URL)
    elif Path(model).is_absolute() and not Path(model).exists():
        raise ApplicationError(f"No model at {model}.", fields={"model": ["no such local path"]})
    if prompt_ids is not None:
        prompt_ids = list(prompt_ids)
    if not Prompt.objects.filter(project=project, **({"id__in": prompt_ids} if prompt_ids is not None else {})).exists():
        raise ApplicationError(
            f"Project '{project.slug}' has no prompts to generate for; import prompts first.",
            fields={"prompts": ["the project has no prompts"]},
        )

    run = GenerationRun.objects.create(
        project=project,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        backend=backend,
        model_name=model,
        model_revision=_model_revision(backend=backend, model=model),
        source_training_job=source_training_job,
        n=chosen.n,
        temperature=float(chosen.temperature),
        top_p=float(chosen.top_p),
        max_new_tokens=chosen.max_new_tokens,
        seed=chosen.seed,
        system_prompt=chosen.system_prompt,
        batch_size=chosen.batch_size,
        params=params,
        status=RunStatus.QUEUED,
    )
    batches = generation_plan_batches(run=run, prompt_ids=prompt_ids)
    run.prompts_total = sum(len(b) for b in batches)
    run.batches_total = len(batches)
    run.save(update_fields=["prompts_total", "batches_total"])
    if enqueue:
        _enqueue_batches(run.pk, batches)
    run.batches = batches  # type: ignore[attr-defined]  (for callers that run the batches themselves)
    return run


# Cancelling and failing


def generation_run_cancel(*, run: GenerationRun) -> GenerationRun:
    """Stop the run: batches not yet started do nothing; one in flight still writes what it made.

    Raises Conflict when the run has already finished.
    """
    with transaction.atomic():
        updated = GenerationRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(
            status=RunStatus.CANCELLED, finished_at=timezone.now()
        )
        if updated:
            _emit_finished(run.project_id, run.pk, RunStatus.CANCELLED)
    run.refresh_from_db()
    if not updated:
        raise Conflict(f"Run {run.pk} has already finished ({run.status}).", extra={"status": run.status})
    return run


def generation_run_fail(*, run_id: int, error: str) -> bool:
    """End an active run as failed with a readable reason (e.g. the model cannot load)."""
    with transaction.atomic():
        updated = GenerationRun.objects.filter(pk=run_id, status__in=ACTIVE).update(
            status=RunStatus.FAILED, error=error[:5000], finished_at=timezone.now()
        )
        if updated:
            _emit_finished(GenerationRun.objects.values_list("project_id", flat=True).get(pk=run_id), run_id, RunStatus.FAILED)
    if updated:
        logger.warning("generation run %s failed: %s", run_id, error)
    return bool(updated)


# Running one batch


@dataclass
class BatchOutcome:
    skipped: str = ""  # why nothing was done: "finished", "nothing missing", "no run"
    written: int = 0
    prompts_completed: int = 0
    prompts_failed: int = 0
    retry_prompt_ids: list[int] = field(default_factory=list)  # transient failures left to retry


def _sampling_params(run: GenerationRun):
    from sampling import SamplingParams

    return SamplingParams(
        n=run.n,
        temperature=run.temperature,
        top_p=run.top_p,
        max_new_tokens=run.max_new_tokens,
        seed=run.seed,
        system_prompt=run.system_prompt,
        batch_size=run.batch_size,
        extra=dict(run.params or {}),
    )


def _openai_options(run: GenerationRun) -> dict[str, Any] | None:
    """The OpenAI backend's connection settings: the run's base_url, the rest from config/settings.py."""
    if run.backend != "openai":
        return None
    return {
        "base_url": (run.params or {}).get("base_url") or settings.OPENAI_BASE_URL,
        "api_key": settings.OPENAI_API_KEY,
        "concurrency": settings.OPENAI_CONCURRENCY,
        "timeout": settings.OPENAI_TIMEOUT_SECONDS,
        "max_retries": settings.OPENAI_MAX_RETRIES,
        "backoff": settings.OPENAI_BACKOFF_SECONDS,
    }


def _missing(*, run: GenerationRun, prompt_ids: list[int]) -> list[int]:
    """Prompts of the batch with fewer than n responses of the run and no recorded failure."""
    counts = dict(
        Response.objects.filter(run=run, prompt_id__in=prompt_ids).values("prompt_id").annotate(c=Count("id")).values_list("prompt_id", "c")
    )
    failed = (run.summary or {}).get("failed_prompts", {})
    return [pid for pid in prompt_ids if counts.get(pid, 0) < run.n and str(pid) not in failed]


def generation_batch_run(*, run_id: int, prompt_ids: list[int], final_attempt: bool = True) -> BatchOutcome:
    """Generate and write the missing responses of one batch. Idempotent.

    Raises ModelLoadError (the caller fails the run) and TransientBackendError / database errors
    (the caller retries). Transient per-prompt failures are written as failures only when
    `final_attempt`; otherwise they come back in `retry_prompt_ids`.
    """
    from sampling import PromptInput, get_backend

    run = GenerationRun.objects.filter(pk=run_id).first()
    if run is None:
        return BatchOutcome(skipped="no run")
    if run.status in FINISHED:
        return BatchOutcome(skipped="finished")
    missing = _missing(run=run, prompt_ids=prompt_ids)
    if not missing:
        return BatchOutcome(skipped="nothing missing")
    GenerationRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING, started_at=timezone.now())

    backend = get_backend(backend=run.backend, model=run.model_name, revision=run.model_revision, openai=_openai_options(run))
    rows = Prompt.objects.filter(id__in=missing).values_list("id", "messages")
    prompts = [PromptInput(prompt_id=pid, messages=messages) for pid, messages in rows]
    started = time.perf_counter()
    results = backend.generate(prompts, _sampling_params(run))
    elapsed = time.perf_counter() - started
    return generation_batch_write(run_id=run_id, prompt_ids=prompt_ids, results=results, seconds=elapsed, final_attempt=final_attempt)


@transaction.atomic
def generation_batch_write(*, run_id: int, prompt_ids: list[int], results: list, seconds: float, final_attempt: bool) -> BatchOutcome:
    """Write a batch's results once: under a lock on the run, only what is still missing.

    Creates the RankingTask of each completed prompt, moves the counters, and finishes the run when
    this was its last batch.
    """
    run = GenerationRun.objects.select_for_update().get(pk=run_id)
    outcome = BatchOutcome()
    missing = set(_missing(run=run, prompt_ids=prompt_ids))
    if not missing:
        outcome.skipped = "nothing missing"
        return outcome
    before = dict(
        Response.objects.filter(run=run, prompt_id__in=missing).values("prompt_id").annotate(c=Count("id")).values_list("prompt_id", "c")
    )

    rows: list[Response] = []
    tokens = 0
    failures: dict[str, str] = {}
    for result in results:
        if result.prompt_id not in missing:
            continue
        if result.error:
            if result.transient and not final_attempt:
                outcome.retry_prompt_ids.append(result.prompt_id)
            else:
                failures[str(result.prompt_id)] = result.error[:1000]
            continue
        if len(result.samples) < run.n:
            failures[str(result.prompt_id)] = f"the backend returned {len(result.samples)} of {run.n} samples"
            continue
        tokens += result.tokens
        for index, sample in enumerate(result.samples[: run.n]):
            if index < before.get(result.prompt_id, 0):
                continue  # already written by an earlier delivery (the unique constraint would drop it anyway)
            # PostgreSQL text cannot hold NUL, which byte-level tokenizers can produce.
            text = sample.text.replace("\x00", "\ufffd")
            rows.append(
                Response(
                    prompt_id=result.prompt_id,
                    run=run,
                    sample_index=index,
                    text=text,
                    text_hash=response_text_hash(text),
                    finish_reason=sample.finish_reason,
                    token_count=sample.token_count,
                    model_name=run.model_name,
                    prompt_truncated=result.prompt_truncated,
                )
            )
    answered = {result.prompt_id for result in results}
    for pid in missing - answered:
        failures[str(pid)] = "the backend returned no result for this prompt"
    Response.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)

    after = dict(
        Response.objects.filter(run=run, prompt_id__in=missing).values("prompt_id").annotate(c=Count("id")).values_list("prompt_id", "c")
    )
    completed = [pid for pid in missing if after.get(pid, 0) >= run.n]
    written = sum(after.values()) - sum(before.values())
    failures = {key: value for key, value in failures.items() if int(key) not in completed}
    task_result = tasks_create_for_prompts(project=run.project, prompt_ids=completed, run=run)

    still_missing = missing - set(completed) - {int(key) for key in failures}
    summary = dict(run.summary or {})
    if failures:
        recorded = dict(summary.get("failed_prompts", {}))
        for key, reason in failures.items():
            if len(recorded) < MAX_RECORDED_FAILURES:
                recorded[key] = reason
        summary["failed_prompts"] = recorded
        summary.setdefault("first_error", next(iter(failures.values())))
    GenerationRun.objects.filter(pk=run.pk).update(
        prompts_done=F("prompts_done") + len(completed),
        prompts_failed=F("prompts_failed") + len(failures),
        responses_count=F("responses_count") + written,
        tokens_count=F("tokens_count") + tokens,
        generation_seconds=F("generation_seconds") + seconds,
        tasks_created=F("tasks_created") + task_result.created,
        prompts_without_task=F("prompts_without_task") + task_result.without_task,
        duplicates_merged=F("duplicates_merged") + task_result.duplicates_merged,
        batches_done=F("batches_done") + (0 if still_missing else 1),
        summary=summary,
    )
    run.refresh_from_db()
    if run.batches_done >= run.batches_total:
        _finish(run)
    outcome.written = written
    outcome.prompts_completed = len(completed)
    outcome.prompts_failed = len(failures)
    return outcome


def generation_batch_give_up(*, run_id: int, prompt_ids: list[int], reason: str) -> BatchOutcome:
    """Record the batch's missing prompts as failed (retries exhausted), so the run can finish."""
    from sampling import PromptResult

    results = [PromptResult(prompt_id=pid, error=reason) for pid in prompt_ids]
    return generation_batch_write(run_id=run_id, prompt_ids=prompt_ids, results=results, seconds=0.0, final_attempt=True)


def _finish(run: GenerationRun) -> None:
    """Final status, set once (the caller holds the run's row lock)."""
    if run.status not in ACTIVE:
        return
    if run.prompts_failed == 0:
        status, error = RunStatus.SUCCEEDED, ""
    else:
        status = RunStatus.FAILED if run.prompts_done == 0 else RunStatus.PARTIAL
        first = (run.summary or {}).get("first_error", "")
        error = f"{run.prompts_failed} of {run.prompts_total} prompts failed; first error: {first}"
    if GenerationRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(status=status, error=error, finished_at=timezone.now()):
        _emit_finished(run.project_id, run.pk, status)


def _emit_finished(project_id: int, run_id: int, status: str) -> None:
    """generation_run.finished, in the transaction that gave the run its final status."""
    webhook_events_emit(project_id=project_id, event=WebhookEvent.GENERATION_RUN_FINISHED, object_id=run_id, data={"status": str(status)})


# Reading


def generation_run_get(*, project: Project, run_id: int) -> GenerationRun:
    """The project's run (a run of another project is not found)."""
    run = GenerationRun.objects.filter(project=project, pk=run_id).first()
    if run is None:
        raise NotFound("Generation run not found.")
    return run


def generation_run_progress(*, run: GenerationRun) -> dict[str, Any]:
    """Progress figures for the API, the command and the dashboard."""
    finished = run.prompts_done + run.prompts_failed
    elapsed = None
    if run.started_at:
        elapsed = ((run.finished_at or timezone.now()) - run.started_at).total_seconds()
    return {
        "prompts_total": run.prompts_total,
        "prompts_done": run.prompts_done,
        "prompts_failed": run.prompts_failed,
        "percent": round(100 * finished / run.prompts_total, 1) if run.prompts_total else 100.0,
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "responses": run.responses_count,
        "tokens": run.tokens_count,
        # Wall clock since the first batch started; per-worker speed is tokens / generation_seconds.
        "tokens_per_second": round(run.tokens_count / elapsed, 2) if elapsed else None,
        "worker_tokens_per_second": round(run.tokens_count / run.generation_seconds, 2) if run.generation_seconds else None,
        "elapsed_seconds": round(elapsed, 2) if elapsed is not None else None,
    }


def generation_run_summary(*, run: GenerationRun) -> dict[str, Any]:
    failed = (run.summary or {}).get("failed_prompts", {})
    return {
        "tasks_created": run.tasks_created,
        "prompts_without_task": run.prompts_without_task,
        "duplicates_merged": run.duplicates_merged,
        "truncated_prompts": Response.objects.filter(run=run, prompt_truncated=True).values("prompt_id").distinct().count(),
        "failed_prompts": failed,
    }
