"""`generate SLUG`: sample responses for a project's prompts (a GenerationRun).

With a broker the batches go to the `generation` queue and `--wait` follows the run's progress;
without one (CELERY_BROKER_URL unset) the batches run here, one after the other.
Exit status: 0 succeeded (or queued, without --wait), 1 failed, partial or cancelled, 2 bad input.
"""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from annotation.errors import ApplicationError
from annotation.models import GenerationRun, RunStatus
from annotation.services.generation import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    FINISHED,
    MAX_BATCH_SIZE,
    MAX_N,
    MAX_NEW_TOKENS,
    MAX_TEMPERATURE,
    generation_run_create,
    generation_run_progress,
    generation_run_summary,
)
from annotation.services.projects import project_get_by_slug
from config.celery import app


class Command(BaseCommand):
    help = "Sample responses for a project's prompts with a model (transformers or an OpenAI-compatible server)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the project's slug")
        parser.add_argument("--model", default="", help="HF model id or local path (openai: the server's model name)")
        # The choices are shown (metavar) but checked by the service, so the command and the API refuse
        # a bad value with the same message (tests/generation/test_options.py).
        parser.add_argument("--backend", default="transformers", metavar="{" + ",".join(BACKENDS) + "}",
                            help="where the samples come from: transformers (default, in the worker) or openai "
                                 "(an OpenAI-compatible server, --base-url)")
        parser.add_argument("--n", type=int, default=None, help=f"responses per prompt, 1 to {MAX_N} (default: the project's K)")
        parser.add_argument("--temperature", type=float, default=None,
                            help=f"sampling temperature, 0 to {MAX_TEMPERATURE:g} (0: greedy; default: the project's)")
        parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling, 0 < P <= 1 (default: the project's)")
        parser.add_argument("--max-new-tokens", type=int, default=None,
                            help=f"the longest response, 1 to {MAX_NEW_TOKENS} tokens (default: the project's)")
        parser.add_argument("--seed", type=int, default=None,
                            help="a 32-bit integer: the same seed gives the same samples, whatever the batch size "
                                 "(default: the project's)")
        parser.add_argument("--system-prompt", default=None, help="a system message put before every prompt (default: the project's)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"prompts per task and per generate call, 1 to {MAX_BATCH_SIZE} (default {DEFAULT_BATCH_SIZE})")
        parser.add_argument("--base-url", default="", help="openai backend: the server (default OPENAI_BASE_URL)")
        parser.add_argument("--wait", action="store_true", help="follow the run to its end with a progress bar")
        parser.add_argument("--from-training-job", type=int, default=None,
                            help="sample from this succeeded policy training job (sft, dpo, kto, orpo, rloo, grpo): the next round")

    def handle(self, *args, **options):
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ApplicationError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        inline = bool(app.conf.task_always_eager)
        model, source_job = options["model"], None
        if options["from_training_job"] is not None:
            from annotation.services.training import training_job_of_project, training_job_policy_dir

            try:
                source_job = training_job_of_project(project=project, job_id=options["from_training_job"])
                model = str(training_job_policy_dir(job=source_job))
            except ApplicationError as exc:
                raise CommandError(f"--from-training-job: {exc.message}", returncode=2) from exc
        try:
            run = generation_run_create(
                project=project,
                backend=options["backend"],
                model=model,
                source_training_job=source_job,
                n=options["n"],
                temperature=options["temperature"],
                top_p=options["top_p"],
                max_new_tokens=options["max_new_tokens"],
                seed=options["seed"],
                system_prompt=options["system_prompt"],
                batch_size=options["batch_size"],
                params={"base_url": options["base_url"]} if options["base_url"] else None,
                enqueue=not inline,
            )
        except ApplicationError as exc:
            problems = "; ".join(f"--{name.replace('_', '-')}: {', '.join(map(str, msgs))}" for name, msgs in exc.fields.items())
            raise CommandError(f"{exc.message} {problems}".strip(), returncode=2) from exc

        self.stdout.write(
            f"run {run.pk}: {run.prompts_total} prompts x {run.n} samples in {run.batches_total} batches, "
            f"model {run.model_name} ({run.backend}{', revision ' + run.model_revision if run.model_revision else ''})"
        )
        if inline:
            run = self._run_inline(run)
        elif options["wait"]:
            run = self._follow(run)
        else:
            self.stdout.write(f"queued on 'generation'; follow it with GET /api/v1/projects/{project.pk}/generation-runs/{run.pk}/")
            return
        self._print_summary(run)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"run {run.pk} ended {run.status}: {run.error}", returncode=1)

    def _run_inline(self, run: GenerationRun) -> GenerationRun:
        from transformers.utils import logging as hf_logging

        from workers.tasks.generation import generate_batch

        hf_logging.disable_progress_bar()  # its "Loading weights" bar would nest inside ours (ESC [A)

        # The batches run here, so their log lines would cut through the bar: route them above it.
        with logging_redirect_tqdm(), tqdm(total=run.prompts_total, unit="prompt", desc=f"run {run.pk}", file=self.stderr) as bar:
            for batch in run.batches:
                generate_batch.apply(args=[run.pk, batch])
                run.refresh_from_db()
                bar.n = run.prompts_done + run.prompts_failed
                bar.set_postfix(responses=run.responses_count, tokens=run.tokens_count)
                if run.status in FINISHED and run.batches_done < run.batches_total:
                    break  # failed (model cannot load) or cancelled: the other batches would do nothing
        return run

    def _follow(self, run: GenerationRun) -> GenerationRun:
        with tqdm(total=run.prompts_total, unit="prompt", desc=f"run {run.pk}", file=self.stderr) as bar:
            while True:
                run.refresh_from_db()
                bar.n = run.prompts_done + run.prompts_failed
                bar.set_postfix(status=run.status, responses=run.responses_count, tokens=run.tokens_count)
                if run.status in FINISHED:
                    return run
                time.sleep(0.5)

    def _print_summary(self, run: GenerationRun) -> None:
        progress = generation_run_progress(run=run)
        summary = generation_run_summary(run=run)
        self.stdout.write(
            f"run {run.pk} {run.status}: {run.prompts_done} prompts done, {run.prompts_failed} failed, "
            f"{run.responses_count} responses, {run.tokens_count} tokens"
            + (f" ({progress['tokens_per_second']} tokens/s)" if progress["tokens_per_second"] else "")
        )
        self.stdout.write(
            f"tasks created: {summary['tasks_created']}, prompts without a task (fewer than two distinct responses): "
            f"{summary['prompts_without_task']}, identical responses merged: {summary['duplicates_merged']}, "
            f"prompts truncated to fit the context: {summary['truncated_prompts']}"
        )
        for prompt_id, reason in list(summary["failed_prompts"].items())[:10]:
            self.stdout.write(f"  prompt {prompt_id} failed: {reason}")
        if run.error:
            self.stdout.write(f"error: {run.error}")
