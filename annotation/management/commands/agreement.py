"""`agreement SLUG [--json]`: the project's agreement report, readable or as JSON.

Without filters it prints the cached report (recomputed when stale); with --since/--until/
--annotators, or --fresh, it computes on the spot. Bad input exits with status 2.
"""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import add_serializer_arguments, command_error, serializer_input
from annotation.services.agreement import BOOTSTRAP_SAMPLES, project_agreement_compute
from annotation.services.agreement_cache import agreement_report_get, agreement_report_refresh
from annotation.services.projects import project_get_by_slug
from annotation.services.ranking_filter import RankingFilterSerializer, ranking_filter_build


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Inter-annotator agreement, annotator reliability and position bias of a project."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        add_serializer_arguments(parser, RankingFilterSerializer)  # --since, --until, --annotators: as in exports
        parser.add_argument("--fresh", action="store_true", help="Recompute now instead of reading the cache.")
        parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES, help="Bootstrap samples for the CI.")

    def handle(self, *args, **options) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
            if options["bootstrap"] < 0:
                raise ApplicationError("Invalid option.", fields={"bootstrap": ["must be >= 0"]})
            filters = ranking_filter_build(project=project, data=serializer_input(options, RankingFilterSerializer))
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if filters.is_empty and options["bootstrap"] == BOOTSTRAP_SAMPLES:
            if options["fresh"]:
                agreement_report_refresh(project_id=project.pk)
            report = agreement_report_get(project=project)
            if report["cache"]["source"] == "pending":  # a command is no request: compute the first report now
                agreement_report_refresh(project_id=project.pk)
                report = agreement_report_get(project=project)
        else:
            report = project_agreement_compute(project=project, filters=filters, bootstrap=options["bootstrap"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(self.render(report))

    def render(self, r: dict[str, Any]) -> str:
        ci = r["alpha_ci"]
        lines = [
            f"Agreement for project {r['project']}: {r['rankings']} rankings of {r['tasks']} tasks "
            f"({r['tasks_with_overlap']} ranked by two or more annotators)",
            f"  Krippendorff's alpha (ordinal): {_fmt(r['alpha'])}"
            + (f"  95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}] ({r['bootstrap_samples']} task bootstraps)" if ci else ""),
            f"  Kendall's W: mean {_fmt(r['kendall_w_mean'])}, median {_fmt(r['kendall_w_median'])} over {r['kendall_w_tasks']} tasks",
            f"  mean pairwise tau-b: {_fmt(r['tau_b_mean'])} over {r['annotator_pairs']} annotator pairs",
            f"  pairwise agreement: {_fmt(r['pairwise_agreement'])} of {r['pairwise_comparisons']} response-pair comparisons",
        ]
        bias = r["position_bias"]
        if bias["positions"]:
            lines.append(
                f"  position bias (ranked first, by display position; chi2 {_fmt(bias['chi2'], 2)}, "
                f"p {_fmt(bias['p_value'], 4)}{', SIGNIFICANT' if bias['significant'] else ''}):"
            )
            for p in bias["positions"]:
                lines.append(f"    position {p['position']}: {_fmt(p['rate'])} (uniform {_fmt(p['expected'])}, shown {p['shown']})")
        lines.append("")
        lines.append(f"  {'annotator':<20} {'tasks':>6} {'agreement':>9} {'gold':>6} {'median s':>8} {'skips':>6}  flag")
        for a in r["annotators"]:
            lines.append(
                f"  {a['username']:<20} {a['tasks']:>6} {_fmt(a['agreement']):>9} {_fmt(a['gold_score']):>6} "
                f"{_fmt(a['median_seconds'], 1):>8} {_fmt(a.get('skip_share'), 2):>6}  {'FLAGGED' if a['flagged'] else ''}"
                + (f" ({'; '.join(a['flag_reasons'])})" if a.get("flag_reasons") else "") + (" TOO FAST" if a.get("too_fast") else "")
            )
        lines.append(f"  Rule: {r['flag_rule']}.")
        if r.get("fast_rule"):
            lines.append(f"  Too fast: {r['fast_rule']}.")
        judge = r.get("judge")
        if judge:
            lines += self.render_judge(judge)
        cache = r.get("cache")
        if cache:
            lines.append(f"  Computed at {cache['computed_at']} ({'stale, refresh scheduled' if cache['stale'] else 'up to date'}).")
        return "\n".join(lines) + "\n"

    def render_judge(self, j: dict[str, Any]) -> list[str]:
        def share(s: dict[str, Any]) -> str:
            ci = s["ci95"]
            return f"{_fmt(s['value'])} ({s['count']}/{s['n']}" + (f", 95% CI [{_fmt(ci[0])}, {_fmt(ci[1])}])" if ci else ")")

        run = j["run"]
        lines = [
            "",
            f"  Judge run {run['id']} ({run['backend']} {run['model_name']}, constitution v{run['constitution_version']}, "
            f"{run['status']}): {j['comparisons']} comparisons ({j['comparisons_failed']} failed), "
            f"{j['compared_with_people']} with a human label",
            f"    judge-human agreement: {share(j['judge_human_agreement'])}; with ties {share(j['judge_human_agreement_with_ties'])}",
            f"    human-human agreement: {share(j['human_human_agreement'])}; with ties {share(j['human_human_agreement_with_ties'])}",
            f"    swap consistency: {share(j['swap_consistency'])}; first-position rate: {share(j['first_position_rate'])}",
            f"    longer response wins: judge {share(j['length_preference']['judge'])}, people {share(j['length_preference']['people'])}",
        ]
        for p in j["per_principle"]:
            lines.append(f"    principle {p['principle'][:60]!r}: {share(p['judge_human_agreement'])}")
        routing = j["routing"]
        if routing["mode"] != "off":
            lines.append(f"    routing: {routing['confident_tasks']} confident tasks, {routing['audited_tasks']} audited, "
                         f"{routing['human_rankings_saved']} human rankings saved; audit agreement {share(routing['audit_agreement'])}")
        return lines
