"""`judge SLUG --backend transformers|openai --model M [...]`: the model ranks the project's tasks under its constitution.

With a broker the batches go to the `generation` queue and `--wait` follows the run with a
progress bar; without one (CELERY_BROKER_URL unset) the batches run here.
Exit status: 0 succeeded (or queued, without --wait), 1 failed, partial or cancelled, 2 bad input.
"""
from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.models import JudgeRun, RunStatus
from annotation.services.judge import DEFAULT_BATCH_SIZE, FINISHED, judge_run_create, judge_run_progress
from annotation.services.projects import project_get_by_slug
from config.celery import app


class Command(BaseCommand):
    help = "Rank a project's tasks with a judge model under the project's constitution (AI feedback)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--backend", default="transformers", help="transformers (default) or openai")
        parser.add_argument("--model", default="", help="local path or HF id (openai: the server's model name). Required.")
        parser.add_argument("--base-url", default="", help="openai: the server (default OPENAI_BASE_URL)")
        parser.add_argument("--api-key-env", default="", help="openai: the environment variable holding the API key")
        parser.add_argument("--pairs", default="all", help="all (every pair of a task's responses, default) or adjacent")
        parser.add_argument("--limit", type=int, default=None, help="judge only the first N tasks")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="tasks per Celery task")
        parser.add_argument("--seed", type=int, default=0, help="seeds the principle sampled for each pair")
        parser.add_argument("--wait", action="store_true", help="follow the run to its end with a progress bar")

    def handle(self, *args, **options):
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ApplicationError as exc:
            raise command_error(exc) from exc
        inline = bool(app.conf.task_always_eager)
        try:
            run = judge_run_create(
                project=project, backend=options["backend"], model=options["model"], base_url=options["base_url"],
                api_key_env=options["api_key_env"], pairs=options["pairs"], limit=options["limit"],
                batch_size=options["batch_size"], seed=options["seed"], enqueue=not inline,
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        self.stdout.write(
            f"judge run {run.pk}: {run.tasks_total} tasks, {run.comparisons_total} comparisons (x2 orders) in "
            f"{run.batches_total} batches, model {run.model_name} ({run.backend}), constitution v{run.constitution.version}"
        )
        if inline:
            run = self._run_inline(run)
        elif options["wait"]:
            run = self._follow(run)
        else:
            self.stdout.write(f"queued on 'generation'; follow it with GET /api/v1/projects/{project.pk}/judge-runs/{run.pk}/")
            return
        progress = judge_run_progress(run=run)
        self.stdout.write(
            f"judge run {run.pk} {run.status}: {run.tasks_done} tasks ranked, {run.tasks_failed} failed, "
            f"{run.comparisons_done} comparisons, {run.comparisons_failed} failed"
            + (f" ({progress['comparisons_per_second']} comparisons/s)" if progress["comparisons_per_second"] else "")
        )
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"judge run {run.pk} ended {run.status}: {run.error}", returncode=1)

    def _run_inline(self, run: JudgeRun) -> JudgeRun:
        return run_inline(run, self.stderr)

    def _follow(self, run: JudgeRun) -> JudgeRun:
        return follow(run, self.stderr)


def _bar(run: JudgeRun, stderr: Any) -> tqdm:
    return tqdm(total=run.tasks_total, unit="task", desc=f"judge run {run.pk}", file=stderr)


def run_inline(run: JudgeRun, stderr: Any) -> JudgeRun:
    """The run's batches here, one after another (no broker); `evaluate --judge` shares it."""
    from workers.tasks.judge import judge_batch

    with _bar(run, stderr) as bar:
        for batch in run.batches:
            judge_batch.apply(args=[run.pk, batch])
            run.refresh_from_db()
            bar.n = run.tasks_done + run.tasks_failed
            bar.set_postfix(comparisons=run.comparisons_done)
            if run.status in FINISHED and run.batches_done < run.batches_total:
                break
    return run


def follow(run: JudgeRun, stderr: Any) -> JudgeRun:
    """Poll the run (on the workers) to its end with a progress bar."""
    with _bar(run, stderr) as bar:
        while True:
            run.refresh_from_db()
            bar.n = run.tasks_done + run.tasks_failed
            bar.set_postfix(status=run.status, comparisons=run.comparisons_done)
            bar.refresh()
            if run.status in FINISHED:
                return run
            time.sleep(0.5)
