"""`train SLUG --kind sft|reward|dpo|kto|orpo|rloo|grpo [--export ID | --data PATH] [--base-model M | --base-training-job ID]
[--reward-job ID] [--test-fraction F] [--allow-no-test] [--max-steps N] [--option NAME=VALUE ...] [--wait]`.

With neither --export nor --data it first writes a fresh export of the project in the kind's format (sft: sft,
kto: unpaired, others: pairs) with --test-fraction held out; rloo / grpo train on the project's prompts against
the reward model of --reward-job. A job with nothing held out is refused (exit 2) unless --allow-no-test.

Queues a training job on queue `training` (or, with no broker, runs it here). `--wait` shows a
progress bar until the job ends and exits 1 if it failed; when no worker consumes the `training` queue it
says so after a few seconds. Bad options exit 2 naming the problem.
"""
from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.dispatch import queue_has_consumer
from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.models import ExportSnapshot, JobStatus, Project, TrainingJob
from annotation.services.projects import project_get_by_slug
from annotation.services.training import (
    DEFAULT_EXPORT_FORMAT,
    KINDS,
    RL_KINDS,
    training_export_now,
    training_job_create,
    training_job_report_lines,
    training_job_run,
    training_kind_help,
)
from config.celery import app
from workers.queues import Queue

NO_WORKER_AFTER_SECONDS = 5.0


class Command(BaseCommand):
    help = "Train a policy (sft, dpo, kto, orpo, rloo, grpo) or a reward model on the project's data (TRL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--kind", required=True, choices=list(KINDS), help=training_kind_help())
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--export", type=int,
                            help="Id of a succeeded export snapshot of the project in the kind's format "
                                 "(default: a fresh export; rloo/grpo: the project's prompts).")
        source.add_argument("--data", help="An export directory (manifest.json plus splits) on this machine.")
        base = parser.add_mutually_exclusive_group()
        base.add_argument("--base-model", default="", help="Hugging Face id or path (default: the project's model).")
        base.add_argument("--base-training-job", type=int,
                          help="Start from this succeeded policy job's model (sft, dpo, kto, orpo, rloo, grpo).")
        parser.add_argument("--reward-job", type=int, help="rloo/grpo: the succeeded reward job whose model is the reward.")
        parser.add_argument("--test-fraction", type=float, default=None,
                            help="Share of prompts held out when this command exports (or, rloo/grpo, splits the "
                                 "prompts); default 0.1.")
        parser.add_argument("--allow-no-test", action="store_true",
                            help="Train even when the test split is empty (no held-out figures).")
        parser.add_argument("--max-steps", type=int, help="Optimizer steps (default: one epoch).")
        parser.add_argument("--judge-training-job", type=int, help="dpo: a succeeded reward job judging the win rate.")
        parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                            help="Any other job option, e.g. learning_rate=1e-4, use_lora=true, loss_type=ipo.")
        parser.add_argument("--wait", action="store_true", help="Wait for the job, with a progress bar.")
        parser.add_argument("--no-progress", action="store_true", help="With --wait: no progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        job_options: dict[str, Any] = {}
        for item in options["option"]:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise CommandError(f"--option {item!r}: expected NAME=VALUE.", returncode=EXIT_BAD_INPUT)
            job_options[name.strip()] = value.strip()
        if options["max_steps"] is not None:
            job_options["max_steps"] = options["max_steps"]
        fraction = options["test_fraction"]
        if fraction is not None and not 0 <= fraction < 1:
            raise CommandError("--test-fraction: must be >= 0 and < 1.", returncode=EXIT_BAD_INPUT)
        kind = options["kind"]
        # Without a broker the job runs here, so the bar can follow it step by step.
        inline = bool(app.conf.task_always_eager)
        try:
            project = project_get_by_slug(slug=options["slug"])
            export = None
            if options["export"] is not None:
                export = ExportSnapshot.objects.filter(pk=options["export"], project=project).first()
                if export is None:
                    raise ApplicationError(f"Project {project.slug} has no export {options['export']}.",
                                           fields={"export": ["not found in this project"]})
            elif not options["data"] and kind not in RL_KINDS:
                export_format = DEFAULT_EXPORT_FORMAT.get(kind, "pairs")
                export = training_export_now(project=project, export_format=export_format, test_fraction=fraction)
                splits = export.manifest["splits"]
                self.stdout.write(f"Exported {splits['train']['rows']} training {_rows(export_format)} and "
                                  f"{(splits.get('test') or {}).get('rows', 0)} test (export {export.pk}).")
            job = training_job_create(
                project=project, kind=kind, export=export, data_path=options["data"] or "",
                base_model=options["base_model"],
                base_training_job=_job(project, options["base_training_job"], "base_training_job"),
                options=job_options, judge_training_job=_job(project, options["judge_training_job"], "judge_training_job"),
                reward_job=_job(project, options["reward_job"], "reward_job"),
                test_fraction=0.1 if fraction is None else fraction, allow_no_test=options["allow_no_test"],
                enqueue=not inline)
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if options["allow_no_test"]:
            self.stderr.write("WARNING: --allow-no-test: if the test split is empty, this job reports no held-out figures.")
        self.stdout.write(f"Training job {job.pk} ({job.kind}) queued; page /projects/{project.slug}/training/{job.pk}/")
        if not (options["wait"] or inline):
            return
        bar = None if options["no_progress"] else tqdm(desc=f"training job {job.pk}", unit="step", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total or None
                bar.update(done - bar.n)

        try:
            if inline:
                training_job_run(job_id=job.pk, progress=progress)
            else:
                self._follow(job, progress)
        finally:
            if bar is not None:
                bar.close()
        job.refresh_from_db()
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Training job {job.pk} failed: {job.error}", returncode=1)
        self.stdout.write(_summary(job))

    def _follow(self, job: TrainingJob, progress) -> None:
        started = time.monotonic()
        warned = False
        while True:
            job.refresh_from_db()
            progress(job.steps_done, job.steps_total)
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                return
            if (not warned and job.status == JobStatus.QUEUED
                    and time.monotonic() - started >= NO_WORKER_AFTER_SECONDS
                    and queue_has_consumer(Queue.TRAINING) is False):
                warned = True
                self.stderr.write(f"No worker consumes the '{Queue.TRAINING}' queue, so job {job.pk} stays queued: "
                                  f"start one with `celery -A config worker -Q {Queue.TRAINING}` (still waiting; "
                                  "Ctrl+C stops waiting, the job stays queued).")
            time.sleep(1.0)


def _rows(export_format: str) -> str:
    return "pairs" if export_format == "pairs" else f"{export_format} rows"


def _job(project: Project, job_id: int | None, field: str) -> TrainingJob | None:
    if job_id is None:
        return None
    job = TrainingJob.objects.filter(pk=job_id, project=project).first()
    if job is None:
        raise ApplicationError(f"Project {project.slug} has no training job {job_id} (--{field.replace('_', '-')}).",
                               fields={field: [f"training job {job_id} not found in this project"]})
    return job


def _summary(job: TrainingJob) -> str:
    lines = [f"Training job {job.pk} {job.status}: {job.steps_done} steps, model in {job.report.get('model_dir')}"]
    lines += [f"  {line}" for line in training_job_report_lines(job=job)]
    return "\n".join(lines) + "\n"
