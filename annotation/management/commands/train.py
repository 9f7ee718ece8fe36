"""`train SLUG --kind reward|dpo [--export ID | --data PATH] [--base-model M] [--max-steps N] [--wait]`.

With neither --export nor --data it first writes a fresh pairs export of the project and trains on it.

Queues a training job on queue `training` (or, with no broker, runs it here). `--wait` shows a
progress bar until the job ends and exits 1 if it failed. Bad options exit 2 naming the problem.
Further TrainingJob options: `--option name=value` (fields of training.config, e.g. learning_rate=1e-4).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.models import ExportSnapshot, JobStatus, TrainingJob
from annotation.services.projects import project_get_by_slug
from annotation.services.training import training_export_pairs_now, training_job_create, training_job_run
from config.celery import app


class Command(BaseCommand):
    help = "Train a reward model or a DPO policy on an export of the project (TRL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--kind", required=True, choices=["reward", "dpo"])
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--export", type=int,
                            help="Id of a succeeded export snapshot (format pairs) of the project (default: a fresh pairs export).")
        source.add_argument("--data", help="An export directory (manifest.json plus splits) on this machine.")
        parser.add_argument("--base-model", default="", help="Hugging Face id or path (default: the project's model).")
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
            elif not options["data"]:
                export = training_export_pairs_now(project=project)
                self.stdout.write(f"Exported {export.manifest['splits']['train']['rows']} training pairs (export {export.pk}).")
            judge = None
            if options["judge_training_job"] is not None:
                judge = TrainingJob.objects.filter(pk=options["judge_training_job"], project=project).first()
                if judge is None:
                    raise ApplicationError(f"Project {project.slug} has no training job {options['judge_training_job']}.",
                                           fields={"judge_training_job": ["not found in this project"]})
            job = training_job_create(project=project, kind=options["kind"], export=export,
                                      data_path=options["data"] or "", base_model=options["base_model"],
                                      options=job_options, judge_training_job=judge, enqueue=not inline)
        except ApplicationError as exc:
            raise command_error(exc) from exc
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
                while True:
                    job.refresh_from_db()
                    progress(job.steps_done, job.steps_total)
                    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                        break
                    time.sleep(1.0)
        finally:
            if bar is not None:
                bar.close()
        job.refresh_from_db()
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Training job {job.pk} failed: {job.error}", returncode=1)
        self.stdout.write(_summary(job))


def _summary(job: TrainingJob) -> str:
    test = job.report.get("test") or {}
    lines = [f"Training job {job.pk} {job.status}: {job.steps_done} steps, model in {job.report.get('model_dir')}"]
    if job.kind == "reward" and test:
        acc, base = test["accuracy"], test["baseline_longer_wins"]
        lines.append(f"  held-out pairwise accuracy {acc['value']:.3f} (95% CI {acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f}, "
                     f"n={acc['n']}); 'longer wins' baseline {base['value']:.3f}")
    elif test:
        acc = test.get("implicit_reward_accuracy") or {}
        if acc:
            lines.append(f"  held-out implicit reward accuracy {acc['value']:.3f} (95% CI {acc['ci95'][0]:.3f}-"
                         f"{acc['ci95'][1]:.3f}, n={acc['n']})")
        if "win_rate_vs_base" in test:
            lines.append(f"  win rate vs base: {json.dumps(test['win_rate_vs_base']['win_rate'])}")
    return "\n".join(lines) + "\n"
