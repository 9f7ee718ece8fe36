"""`evaluate SLUG --runs A,B [--report] [--json] [--judge --backend B --model M ...]`: head-to-head tasks of two runs,
their report, or the judge's ranking of them.

With `--judge` the judge ranks the evaluation's tasks (made first if new): with a broker the batches
go to the `generation` queue (`--wait` follows them), without one (CELERY_BROKER_URL unset) they run
here. Exit status: 0 done (or queued), 1 the judge run failed, partial or cancelled, 2 bad input.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.management.commands.judge import follow, run_inline
from annotation.models import RunStatus
from annotation.services.evaluation import (
    evaluation_create,
    evaluation_find,
    evaluation_judge_start,
    evaluation_report,
    evaluation_runs_parse,
)
from annotation.services.judge import DEFAULT_BATCH_SIZE
from annotation.services.projects import project_get_by_slug
from config.celery import app


class Command(BaseCommand):
    help = "Create blinded pairwise tasks of run A against run B (one response of each per prompt), or report on them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--runs", required=True, help="A,B: two generation run ids of this project (B is the challenger).")
        parser.add_argument("--report", action="store_true", help="Print the win rate of B over A instead of creating tasks.")
        parser.add_argument("--json", action="store_true", help="The report as JSON.")
        parser.add_argument("--judge", action="store_true",
                            help="Have the judge rank the evaluation's tasks under the project's constitution.")
        parser.add_argument("--backend", default="transformers", help="--judge: transformers (default) or openai")
        parser.add_argument("--model", default="", help="--judge: local path or HF id (openai: the server's model name)")
        parser.add_argument("--base-url", default="", help="--judge, openai: the server (default OPENAI_BASE_URL)")
        parser.add_argument("--api-key-env", default="", help="--judge, openai: the environment variable holding the key")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="--judge: tasks per Celery task")
        parser.add_argument("--seed", type=int, default=0, help="--judge: seeds the principle sampled for each pair")
        parser.add_argument("--wait", action="store_true", help="--judge: follow the run to its end")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
            runs = evaluation_runs_parse(text=options["runs"])
            if options["judge"] and options["report"]:
                raise ApplicationError("--judge and --report are separate steps: judge first, then --report.",
                                       fields={"judge": ["not with --report"]})
            if options["judge"]:
                self._judge(project, runs, options)
                return
            if options["report"]:
                report = evaluation_report(evaluation=evaluation_find(project=project, runs=runs))
            else:
                evaluation = evaluation_create(project=project, runs=runs)
                self.stdout.write(f"Evaluation {evaluation.pk}: run {evaluation.run_a_id} (A) vs run {evaluation.run_b_id} (B), "
                                  f"{evaluation.tasks_created} blinded pairwise tasks ({evaluation.prompts_skipped} prompts "
                                  "without a response of both skipped). Rank them like any task; then --report.")
                return
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(format_report(report))

    def _judge(self, project: Any, runs: Any, options: dict[str, Any]) -> None:
        inline = bool(app.conf.task_always_eager)
        evaluation, run = evaluation_judge_start(
            project=project, runs=runs, enqueue=not inline, backend=options["backend"], model=options["model"],
            base_url=options["base_url"], api_key_env=options["api_key_env"], batch_size=options["batch_size"],
            seed=options["seed"],
        )
        self.stdout.write(f"Evaluation {evaluation.pk}: judge run {run.pk} over its {run.tasks_total} tasks, "
                          f"model {run.model_name} ({run.backend}), constitution v{run.constitution.version}")
        if inline:
            run = run_inline(run, self.stderr)
        elif options["wait"]:
            run = follow(run, self.stderr)
        else:
            self.stdout.write(f"queued on 'generation'; then `evaluate {project.slug} --runs {options['runs']} --report`")
            return
        self.stdout.write(f"judge run {run.pk} {run.status}: {run.tasks_done} tasks ranked, {run.tasks_failed} failed")
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"judge run {run.pk} ended {run.status}: {run.error}", returncode=1)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """The report for people: counts first, then each rate with its interval."""
    win, lc = report["win_rate"], report["length_controlled"]
    lines = [
        f"Evaluation {report['evaluation']}: run {report['run_b']} (B) against run {report['run_a']} (A)",
        f"  votes: {report['votes']} on {report['tasks_with_votes']} of {report['tasks']} tasks: "
        f"B wins {report['wins_b']}, A wins {report['wins_a']}, ties {report['ties']}",
        f"  win rate of B: {report['wins_b']}/{win['n']} decisive = {_pct(win['value'])}, "
        f"95% CI [{win['ci95'][0]:.3f}, {win['ci95'][1]:.3f}] (ties as half: {_pct(report['win_rate_ties_half'])})",
        f"  length-controlled win rate: {_pct(lc['value'])}, 95% CI [{lc['ci95'][0]:.3f}, {lc['ci95'][1]:.3f}] "
        f"(mean length A {_pct(report['mean_length_a'])}, B {_pct(report['mean_length_b'])} characters)",
        f"  B better than A: {'yes' if report['b_better'] else 'not shown (the interval does not lie above 0.5)'}",
    ]
    judge = report.get("judge")
    if judge is None:
        lines.append("  judge: none yet (`--judge --model M`)")
    else:
        jw, agree = judge["win_rate"], judge["agreement"]
        lines += [
            f"  judge (run {judge['run']['id']}, {judge['run']['model_name']}): {judge['tasks_judged']} tasks: "
            f"B wins {judge['wins_b']}, A wins {judge['wins_a']}, ties {judge['ties']}; "
            f"win rate of B {judge['wins_b']}/{jw['n']} = {_pct(jw['value'])}, 95% CI [{jw['ci95'][0]:.3f}, {jw['ci95'][1]:.3f}]",
            f"  judge-human agreement: {agree['count']}/{agree['n']} tasks where both name a winner"
            f" (with ties {judge['agreement_with_ties']['count']}/{judge['agreement_with_ties']['n']})",
        ]
    return "\n".join(lines)
