"""Training jobs in the platform: create from an export snapshot (or a data path), run on queue `training`,
stream metrics into TrainingMetric rows, record the report and artifacts, and start round two's generation.

The training itself is training.jobs (importable without Django); this module only records it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from annotation.dispatch import TaskName, enqueue_after_commit
from annotation.errors import ApplicationError, Conflict, NotFound
from annotation.models import ExportSnapshot, GenerationRun, JobStatus, Project, Role, TrainingJob, TrainingMetric, WebhookEvent
from annotation.services.access import project_row_get_for_user
from annotation.services.webhooks import webhook_events_emit
from training.config import KIND_FORMATS, KIND_HELP, KINDS, RL_KINDS  # plain dataclasses: no torch imported

logger = logging.getLogger(__name__)

# Set by the platform itself, never by the caller's options.
RESERVED_OPTIONS = ("data", "output_dir", "base_model", "reward_model")
# Kinds whose output is a policy (a causal LM): it can generate, and be the base of the next job.
POLICY_KINDS = ("sft", "dpo", "kto", "orpo", "rloo", "grpo")
# The export `train` writes when given neither an export nor a data path.
DEFAULT_EXPORT_FORMAT = {"sft": "sft", "kto": "unpaired"}
assert set(KINDS) == set(TrainingJob.Kind.values), "training.config.KINDS and TrainingJob.Kind name the same kinds"


def _config_class(kind: str):
    from training.config import JOB_CONFIGS

    return JOB_CONFIGS[kind]


def training_kind_help() -> str:
    """One line per kind, for the command's and the API's help."""
    return "; ".join(f"{kind}: {text}" for kind, text in KIND_HELP.items())


def training_option_names(*, kind: str) -> list[str]:
    """Options a caller may set for a job of `kind` (the fields of training.config's dataclass)."""
    return [f.name for f in dataclasses.fields(_config_class(kind)) if f.name not in RESERVED_OPTIONS]


def _coerce(name: str, type_name: str, value: Any) -> Any:
    """The option as its field's type; ValueError naming the expected type."""
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError("must be true or false")
    if type_name == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())):
            raise ValueError("must be an integer")
        return int(value)
    if type_name == "float":
        if isinstance(value, bool):
            raise ValueError("must be a number")
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ValueError("must be a number") from exc
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def training_options_validate(*, kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """Typed options for a job of `kind`; ApplicationError naming every unknown or bad one."""
    from training.config import config_errors

    if not isinstance(options, dict):
        raise ApplicationError("options must be an object.", fields={"options": ["must be an object"]})
    fields = {f.name: f for f in dataclasses.fields(_config_class(kind)) if f.name not in RESERVED_OPTIONS}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name, value in options.items():
        if name not in fields:
            errors[name] = [f"unknown option for a {kind} job; known: {', '.join(sorted(fields))}"]
            continue
        try:
            clean[name] = _coerce(name, str(fields[name].type), value)
        except ValueError as exc:
            errors[name] = [str(exc)]
    if not errors:
        probe = _config_class(kind)(data="", output_dir="", **clean)
        errors = {name: [problem] for name, problem in config_errors(probe).items()}
    if errors:
        raise ApplicationError(f"Invalid training options: {', '.join(errors)}.", fields=errors)
    return clean


def training_job_output_dir(job: TrainingJob) -> Path:
    return Path(settings.MEDIA_ROOT) / "training" / str(job.pk)


def training_job_model_dir(job: TrainingJob) -> Path:
    return training_job_output_dir(job) / "model"


def _export_directory(export: ExportSnapshot) -> Path:
    return Path(settings.MEDIA_ROOT) / export.directory


def _check_base_model(base_model: str) -> None:
    if base_model.startswith(("/", ".", "~")) and not (Path(base_model).expanduser() / "config.json").exists():
        raise ApplicationError(f"No saved model at {base_model} (no config.json).",
                               fields={"base_model": ["no saved model at this path"]})


def training_export_now(*, project: Project, export_format: str = "pairs", test_fraction: float | None = None,
                        created_by: AbstractBaseUser | None = None, timeout_seconds: float = 3600.0) -> ExportSnapshot:
    """A fresh export of the project in `export_format`, written before returning: what `train` uses when it
    is given neither an export nor a data path.

    The snapshot is run here; if a worker picked up its message first, this waits for that run
    (export_snapshot_run is idempotent and locked, so it is written once either way).
    """
    import time

    from annotation.services.export import export_snapshot_create, export_snapshot_run

    options: dict[str, Any] = {"format": export_format}
    if test_fraction is not None:
        options["test_fraction"] = test_fraction
    snapshot = export_snapshot_create(project=project, created_by=created_by, options=options)
    export_snapshot_run(snapshot_id=snapshot.pk)
    deadline = time.monotonic() + timeout_seconds
    snapshot.refresh_from_db()
    while snapshot.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.5)
        snapshot.refresh_from_db()
    if snapshot.status != JobStatus.SUCCEEDED:
        raise ApplicationError(f"The {export_format} export {snapshot.pk} did not succeed: {snapshot.error or snapshot.status}.",
                               fields={"export": [snapshot.error or snapshot.status]})
    train_rows = ((snapshot.manifest.get("splits") or {}).get("train") or {}).get("rows", 0)
    if not train_rows:
        what = "preference pairs" if export_format == "pairs" else f"{export_format} rows"
        raise ApplicationError(
            f"Project {project.slug} has no {what} to train on yet (export {snapshot.pk} has 0 training "
            "rows): rank some tasks first.",
            fields={"export": [f"no training {what}: rank some tasks first"]},
        )
    return snapshot


def training_export_pairs_now(*, project: Project, created_by: AbstractBaseUser | None = None,
                              timeout_seconds: float = 3600.0) -> ExportSnapshot:
    """A fresh `pairs` export (training_export_now with the defaults)."""
    return training_export_now(project=project, created_by=created_by, timeout_seconds=timeout_seconds)


def _prompt_split_rows(*, project: Project, test_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """The project's prompts as prompt-only rows ({"prompt": messages, "prompt_id"}), split prompt-disjoint by
    a seeded hash of each prompt's id, so the same prompt lands on the same side whatever else is added."""
    import hashlib

    from annotation.models import Prompt

    train: list[dict] = []
    test: list[dict] = []
    for prompt_id, messages in Prompt.objects.filter(project=project).order_by("id").values_list("id", "messages"):
        digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
        side = test if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else train
        side.append({"prompt": messages, "prompt_id": prompt_id})
    return train, test


def _manifest_test_rows(manifest: dict[str, Any]) -> int:
    from training.data import test_rows

    return test_rows(manifest)


@transaction.atomic
def training_job_create(
    *,
    project: Project,
    kind: str,
    created_by: AbstractBaseUser | None = None,
    export: ExportSnapshot | None = None,
    data_path: str = "",
    base_model: str = "",
    base_training_job: TrainingJob | None = None,
    options: dict[str, Any] | None = None,
    judge_training_job: TrainingJob | None = None,
    reward_job: TrainingJob | None = None,
    test_fraction: float = 0.1,
    allow_no_test: bool = False,
    allow_server_paths: bool = True,
    enqueue: bool = True,
) -> TrainingJob:
    """Record a queued job and enqueue it on queue `training` after commit.

    Args:
        project: whose data it trains on; the export and every job named must belong to it.
        kind: one of training.config.KINDS (sft, reward, dpo, kto, orpo, rloo, grpo).
        export: a succeeded snapshot of the kind's format (training.config.KIND_FORMATS); or `data_path`, an
            export directory on the server. rloo / grpo take neither: they train on the project's prompts.
        base_model: Hugging Face id or local path; "" means `base_training_job`'s policy, else the project's
            generation model, then GENERATION_MODEL, then the tiny local model.
        base_training_job: a succeeded policy job (sft, dpo, kto, orpo, rloo, grpo) of the project to start from.
        options: fields of the kind's config dataclass in training.config (learning_rate, max_steps, ...).
        judge_training_job: DPO only: a succeeded reward job of the project judging the win rate.
        reward_job: rloo / grpo: the succeeded reward job of the project whose model is the reward.
        test_fraction: rloo / grpo: share of the project's prompts held out for the before/after reward.
        allow_no_test: train even when nothing is held out (else refused: no held-out figure could be shown).
        allow_server_paths: False for API callers: the judge then comes only from `judge_training_job`,
            never from a path on the server given in the options.
        enqueue: False when the caller runs training_job_run itself (the command without a broker).

    Raises:
        ApplicationError naming the field that is wrong; nothing is written then.
    """
    from training.data import ExportDataError, read_manifest, write_export

    errors: dict[str, list[str]] = {}
    if kind not in KINDS:
        raise ApplicationError(f"Unknown kind {kind!r}; expected one of {', '.join(KINDS)}.",
                               fields={"kind": [f"must be one of {', '.join(KINDS)}"]})
    clean = training_options_validate(kind=kind, options=options or {})
    if not allow_server_paths and clean.get("judge_reward_model"):
        raise ApplicationError("Name the judge with judge_training_job, not a path on the server.",
                               fields={"judge_reward_model": ["not settable here; use judge_training_job"]})
    formats = KIND_FORMATS[kind]
    rl = kind in RL_KINDS
    prompt_rows: tuple[list[dict], list[dict]] | None = None
    manifest: dict[str, Any] | None = None
    if export is not None and data_path:
        errors["export"] = ["give an export or a data path, not both"]
    elif export is None and not data_path and not rl:
        errors["export"] = ["give an export or a data path"]
    elif export is not None:
        if export.project_id != project.pk:
            errors["export"] = ["not an export of this project"]
        elif export.status != JobStatus.SUCCEEDED:
            errors["export"] = [f"export {export.pk} is {export.status}; wait until it has succeeded"]
        elif export.format not in formats:
            errors["export"] = [f"export {export.pk} has format {export.format!r}; a {kind} job needs "
                                + " or ".join(repr(f) for f in formats)]
        else:
            try:
                manifest = read_manifest(_export_directory(export), formats=formats, kind=kind)
            except ExportDataError as exc:
                errors["export"] = [str(exc)]
    elif data_path:
        try:
            manifest = read_manifest(data_path, formats=formats, kind=kind)
        except ExportDataError as exc:
            errors["data_path"] = [str(exc)]
    else:  # rl on the project's prompts
        if not 0 <= test_fraction < 1:
            errors["test_fraction"] = ["must be >= 0 and < 1"]
        else:
            prompt_rows = _prompt_split_rows(project=project, test_fraction=test_fraction, seed=int(clean.get("seed", 0)))
            if not prompt_rows[0] and not prompt_rows[1]:
                errors["project"] = [f"project {project.slug} has no prompts: import prompts before an RL job"]
            elif not prompt_rows[0]:
                errors["test_fraction"] = ["leaves no prompts to train on"]
    if not errors and not allow_no_test:
        held_out = _manifest_test_rows(manifest) if manifest is not None else len(prompt_rows[1]) if prompt_rows else 0
        if held_out == 0:
            field = "export" if export is not None else "data_path" if data_path else "test_fraction"
            errors[field] = ["the test split is empty, so nothing is held out to evaluate on: export with a larger "
                             "test fraction (train --test-fraction), or allow_no_test to train anyway"]
    if judge_training_job is not None:
        if kind != TrainingJob.Kind.DPO:
            errors["judge_training_job"] = ["only a dpo job has a judge"]
        elif judge_training_job.project_id != project.pk:
            errors["judge_training_job"] = ["not a training job of this project"]
        elif judge_training_job.kind != TrainingJob.Kind.REWARD or judge_training_job.status != JobStatus.SUCCEEDED:
            errors["judge_training_job"] = ["must be a succeeded reward job"]
        else:
            clean["judge_reward_model"] = str(training_job_model_dir(judge_training_job))
    if rl:
        if reward_job is None:
            errors["reward_job"] = [f"a {kind} job needs --reward-job: a succeeded reward job of this project"]
        elif (reward_job.project_id != project.pk or reward_job.kind != TrainingJob.Kind.REWARD
              or reward_job.status != JobStatus.SUCCEEDED):
            errors["reward_job"] = [f"training job {reward_job.pk} is not a succeeded reward job of project {project.slug}"]
    elif reward_job is not None:
        errors["reward_job"] = ["only an rloo or grpo job takes a reward job"]
    if base_training_job is not None:
        if base_training_job.project_id != project.pk:
            errors["base_training_job"] = ["not a training job of this project"]
        elif (base_model or "").strip():
            errors["base_model"] = ["give a base model or a base training job, not both"]
        else:
            try:
                base_model = str(training_job_policy_dir(job=base_training_job))
            except Conflict as exc:
                errors["base_training_job"] = [exc.message]
    if errors:
        raise ApplicationError(f"Cannot create the training job: {', '.join(errors)}.", fields=errors)
    base_model = (base_model or "").strip() or project.gen_model or settings.GENERATION_MODEL or ""
    _check_base_model(base_model)

    job = TrainingJob.objects.create(
        project=project,
        export=export,
        data_path=str(Path(data_path).expanduser().resolve()) if data_path else "",  # the worker's cwd differs
        kind=kind,
        base_model=base_model,
        config=clean,
        reward_job=reward_job if rl else None,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    job.output_dir = str(training_job_output_dir(job).relative_to(settings.MEDIA_ROOT))
    update = ["output_dir"]
    if prompt_rows is not None:
        # The prompts as they are now, so a retried job trains on the same ones (format `prompts`).
        directory = training_job_output_dir(job) / "prompts"
        write_export(directory, train=prompt_rows[0], test=prompt_rows[1], project=project.slug,
                     seed=int(clean.get("seed", 0)), export_format="prompts")
        job.data_path = str(directory)
        update.append("data_path")
    job.save(update_fields=update)
    if enqueue:
        enqueue_after_commit(TaskName.TRAINING_RUN, args=[job.pk])
    return job


def _record_metric(job_id: int, record: dict[str, Any]) -> None:
    TrainingMetric.objects.create(job_id=job_id, step=record["step"], split=record["split"], values=record["values"])


def _artifacts(out: Path) -> list[dict[str, Any]]:
    root = Path(settings.MEDIA_ROOT)
    return [
        {"path": str(path.relative_to(root)), "bytes": path.stat().st_size}
        for path in sorted(out.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(out).parts)  # caches
    ]


def training_stale_seconds() -> int:
    """A running job whose heartbeat is older than this is taken for dead (its worker was killed)."""
    # By default the staleness of every long-running task's heartbeat (annotation.services.work), so a
    # job re-sent by the reaper finds its own heartbeat stale too and restarts at once.
    return int(getattr(settings, "TRAINING_STALE_SECONDS", 0) or os.environ.get("TRAINING_STALE_SECONDS")
               or settings.WORK_STALE_SECONDS)


def _heartbeat_seconds() -> float:
    return max(0.5, training_stale_seconds() / 6)


class _Heartbeat(threading.Thread):
    """Touches heartbeat_at every few seconds from its own connection, however long one step, an
    evaluation or a model save takes."""

    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"training-job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(_heartbeat_seconds()):
                TrainingJob.objects.filter(pk=self.job_id, status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)


def training_job_claim(*, job_id: int) -> bool:
    """Mark the job running for this caller: a queued job, or a running one whose worker died
    (stale heartbeat). A conditional update, so two deliveries never both win."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=training_stale_seconds())
    with transaction.atomic():
        claimed = TrainingJob.objects.filter(pk=job_id).filter(
            Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)
        ).update(status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, error="", steps_done=0,
                 attempts=F("attempts") + 1)
        if claimed == 1:
            TrainingMetric.objects.filter(job_id=job_id).delete()  # a restarted job draws its curves afresh
    return claimed == 1


def training_job_is_running(*, job_id: int) -> bool:
    return TrainingJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists()


def training_job_run(*, job_id: int, progress: Any = None) -> TrainingJob | None:
    """Run a job in this process: train, stream metrics into TrainingMetric, record report and artifacts.

    Idempotent: the job is claimed with a conditional update (training_job_claim), so a second
    delivery of the message, or a second worker, does nothing while the job is alive or after it
    ended; a job whose worker died (stale heartbeat) is started again from scratch. Any failure
    ends the job failed with the reason in `error`. Returns None when there was nothing to do.

    Args:
        progress: optional callable(steps_done, steps_total), e.g. the command's progress bar.
    """
    from training.callbacks import MetricsCallback
    from training.run import run_job
    from training.tiny_model import ensure_tiny_model

    if not training_job_claim(job_id=job_id):
        logger.info("training job %s: not claimable (running elsewhere or finished); nothing to do", job_id)
        return None
    job = TrainingJob.objects.select_related("export", "reward_job").get(pk=job_id)
    out = training_job_output_dir(job)

    def on_progress(done: int, total: int) -> None:
        TrainingJob.objects.filter(pk=job_id).update(steps_done=done, steps_total=total, heartbeat_at=timezone.now())
        if progress:
            progress(done, total)

    # Inside a caller's transaction (tests) another connection would wait on this row's lock: beat inline only.
    heartbeat = None if connection.in_atomic_block else _Heartbeat(job_id)
    if heartbeat is not None:
        heartbeat.start()
    try:
        base_model = job.base_model or str(ensure_tiny_model(settings.TINY_MODEL_DIR))
        data = str(_export_directory(job.export)) if job.export_id else job.data_path
        extra = {"reward_model": str(training_job_model_dir(job.reward_job))} if job.kind in RL_KINDS and job.reward_job else {}
        config = _config_class(job.kind)(data=data, output_dir=str(out), base_model=base_model, **job.config, **extra)
        callback = MetricsCallback(out / "metrics.jsonl", on_record=lambda r: _record_metric(job_id, r),
                                   on_progress=on_progress)
        TrainingJob.objects.filter(pk=job_id).update(base_model=base_model)
        report = run_job(job.kind, config, callbacks=[callback])
    except Exception as exc:  # any failure ends the job failed, with the reason, instead of a stuck "running"
        logger.exception("training job %s failed", job_id)
        message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        with transaction.atomic():
            TrainingJob.objects.filter(pk=job_id).update(
                status=JobStatus.FAILED, error=message[:5000], finished_at=timezone.now(),
                artifacts=_artifacts(out) if out.exists() else [],
            )
            webhook_events_emit(project_id=job.project_id, event=WebhookEvent.TRAINING_JOB_FAILED, object_id=job_id,
                                data={"status": JobStatus.FAILED.value, "kind": job.kind})
        return TrainingJob.objects.get(pk=job_id)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    with transaction.atomic():
        TrainingJob.objects.filter(pk=job_id).update(
            status=JobStatus.SUCCEEDED, report=_json_safe(report), artifacts=_artifacts(out), finished_at=timezone.now(),
        )
        webhook_events_emit(project_id=job.project_id, event=WebhookEvent.TRAINING_JOB_SUCCEEDED, object_id=job_id,
                            data={"status": JobStatus.SUCCEEDED.value, "kind": job.kind})
    return TrainingJob.objects.get(pk=job_id)


def _json_safe(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


# Selectors


def training_job_get_for_user(*, user: AbstractBaseUser, job_id: int) -> TrainingJob:
    """The job if the user is an engineer or admin of its project (404 for non-members, 403 for annotators)."""
    return project_row_get_for_user(user=user, queryset=TrainingJob.objects.select_related("project", "export", "created_by"),
                                    pk=job_id, min_role=Role.ENGINEER, what="Training job")


def training_jobs_of_project(*, project: Project):
    return TrainingJob.objects.filter(project=project).select_related("project", "export", "created_by").order_by("-id")


def training_job_metrics(*, job: TrainingJob, split: str | None = None, after_step: int | None = None):
    rows = TrainingMetric.objects.filter(job=job)
    if split:
        rows = rows.filter(split=split)
    if after_step is not None:
        rows = rows.filter(step__gt=after_step)
    return rows.order_by("step", "id")


def training_job_progress(*, job: TrainingJob) -> dict[str, Any]:
    total = job.steps_total or 0
    return {"steps_done": job.steps_done, "steps_total": total,
            "fraction": round(job.steps_done / total, 4) if total else (1.0 if job.status == JobStatus.SUCCEEDED else 0.0)}


def training_job_curves(*, job: TrainingJob) -> dict[str, list[tuple[int, float]]]:
    """Series for the job page: train loss, test loss, and test accuracy (reward) or reward accuracy (DPO)."""
    series: dict[str, list[tuple[int, float]]] = {"train loss": [], "test loss": [], "test accuracy": []}
    for metric in training_job_metrics(job=job):
        values = metric.values
        if metric.split == "train" and "loss" in values:
            series["train loss"].append((metric.step, values["loss"]))
        elif metric.split == "test":
            if "loss" in values:
                series["test loss"].append((metric.step, values["loss"]))
            accuracy = values.get("accuracy", values.get("rewards/accuracies"))
            if accuracy is not None:
                series["test accuracy"].append((metric.step, accuracy))
    return series


def training_job_report_lines(*, job: TrainingJob) -> list[str]:
    """The held-out figures of a finished job, one sentence each, every proportion with its count and interval
    (the `train` command prints them, the job page shows them)."""
    from training.evaluation import format_proportion

    report = job.report or {}
    test = report.get("test") or {}
    lines: list[str] = []
    samples = (report.get("train") or {}).get("samples_per_second")
    if samples is not None:
        lines.append(f"{samples:.2f} samples/s")
    for warning in report.get("warnings") or []:
        lines.append(f"WARNING: {warning}")
    if not test:
        return lines
    if job.kind == TrainingJob.Kind.REWARD:
        lines.append(f"held-out pairwise accuracy {format_proportion(test['accuracy'])}, ties {test.get('ties', 0)}; "
                     f"'longer wins' baseline {format_proportion(test['baseline_longer_wins'])}")
    elif job.kind == TrainingJob.Kind.DPO and "after" in test and "wins" in (test.get("before") or {}):
        before, after = test["before"], test["after"]
        lines.append(f"held-out implicit reward accuracy {format_proportion(after['accuracy'])}, ties {after['ties']} "
                     f"(before training: {before['wins']} wins, {before['ties']} ties of {before['n']})")
        if "win_rate_vs_base" in test:
            win = test["win_rate_vs_base"]
            lines.append(f"win rate vs base {format_proportion(win['win_rate'])}, ties {win.get('ties', 0)}, on "
                         f"{win['prompts']} held-out prompts")
    elif job.kind == TrainingJob.Kind.SFT:
        lines.append(f"held-out loss {test['before']['loss']:.4f} -> {test['after']['loss']:.4f}, perplexity "
                     f"{test['before']['perplexity']:.2f} -> {test['after']['perplexity']:.2f} "
                     f"({test['after']['tokens']} tokens of {test['examples']} examples)")
    elif job.kind == TrainingJob.Kind.KTO:
        lines.append(f"held-out label accuracy {format_proportion(test['label_accuracy'])}, ties {test['after']['ties']} "
                     f"(before training: {test['before']['ties']} ties)")
    elif job.kind == TrainingJob.Kind.ORPO:
        lines.append(f"held-out preference accuracy {format_proportion(test['preference_accuracy'])} "
                     f"(before training: {format_proportion(test['before']['accuracy'])})")
    elif job.kind in RL_KINDS:
        lines.append(f"held-out mean reward {test['mean_reward_before']:.4f} -> {test['mean_reward_after']:.4f} on "
                     f"{test['prompts']} prompts, KL to reference {test['kl_to_reference_after']:.4f}; after beats "
                     f"before on {format_proportion(test['win_rate_after_vs_before'])}, ties {test['ties']}")
    return lines


# The loop: round two samples from round one's policy


def training_job_of_project(*, project: Project, job_id: int) -> TrainingJob:
    """The project's job `job_id` (no permission check: for commands run by an operator)."""
    job = TrainingJob.objects.filter(pk=job_id, project=project).first()
    if job is None:
        raise NotFound(f"Project {project.slug} has no training job {job_id}.")
    return job


def training_job_policy_dir(*, job: TrainingJob) -> Path:
    """The saved policy of a succeeded policy job (sft, dpo, kto, orpo, rloo, grpo), usable as a generation
    model and as the base of the next job; Conflict otherwise."""
    if job.kind not in POLICY_KINDS:
        raise Conflict(f"Training job {job.pk} is a {job.kind} job; only a policy ({', '.join(POLICY_KINDS)}) "
                       "can generate responses or be a base model.")
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"Training job {job.pk} is {job.status}; it can generate once it has succeeded.")
    model_dir = training_job_model_dir(job)
    if not (model_dir / "config.json").exists():
        raise Conflict(f"Training job {job.pk} has no saved model at {model_dir}.")
    return model_dir


def training_job_start_generation(*, job: TrainingJob, created_by: AbstractBaseUser | None = None,
                                  **generation_options: Any) -> GenerationRun:
    """Start a GenerationRun in the job's project whose model is the job's trained policy.

    Raises Conflict unless the job is a succeeded policy job whose model directory exists.
    `generation_options` go to generation_run_create (n, temperature, top_p, max_new_tokens, seed, ...).
    """
    from annotation.services.generation import generation_run_create

    model_dir = training_job_policy_dir(job=job)
    return generation_run_create(project=job.project, created_by=created_by, backend="transformers",
                                 model=str(model_dir), source_training_job=job, **generation_options)
