"""`evaluate SLUG --runs A,B [--report] [--json]`: head-to-head tasks of two runs, or their report."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.services.evaluation import evaluation_create, evaluation_find, evaluation_report, evaluation_runs_parse
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Create blinded pairwise tasks of run A against run B (one response of each per prompt), or report on them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--runs", required=True, help="A,B: two generation run ids of this project (B is the challenger).")
        parser.add_argument("--report", action="store_true", help="Print the win rate of B over A instead of creating tasks.")
        parser.add_argument("--json", action="store_true", help="The report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
            runs = evaluation_runs_parse(text=options["runs"])
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


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_report(report: dict[str, Any]) -> str:
    """The report for people: counts first, then each rate with its interval."""
    win, lc = report["win_rate"], report["length_controlled"]
    return "\n".join([
        f"Evaluation {report['evaluation']}: run {report['run_b']} (B) against run {report['run_a']} (A)",
        f"  votes: {report['votes']} on {report['tasks_with_votes']} of {report['tasks']} tasks: "
        f"B wins {report['wins_b']}, A wins {report['wins_a']}, ties {report['ties']}",
        f"  win rate of B: {report['wins_b']}/{win['n']} decisive = {_pct(win['value'])}, "
        f"95% CI [{win['ci95'][0]:.3f}, {win['ci95'][1]:.3f}] (ties as half: {_pct(report['win_rate_ties_half'])})",
        f"  length-controlled win rate: {_pct(lc['value'])}, 95% CI [{lc['ci95'][0]:.3f}, {lc['ci95'][1]:.3f}] "
        f"(mean length A {_pct(report['mean_length_a'])}, B {_pct(report['mean_length_b'])} characters)",
        f"  B better than A: {'yes' if report['b_better'] else 'not shown (the interval does not lie above 0.5)'}",
    ])
