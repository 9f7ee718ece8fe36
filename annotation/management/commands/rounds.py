"""`rounds SLUG [--json] [--no-reward]`: the project's rounds, their lineage and figures."""
from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.services.projects import project_get_by_slug
from annotation.services.rounds import rounds_of_project


class Command(BaseCommand):
    help = "Show the project's rounds: policy -> runs -> tasks -> rankings/demonstrations -> exports -> training jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--json", action="store_true", help="As JSON.")
        parser.add_argument("--no-reward", action="store_true", help="Skip the mean reward (no reward model is loaded).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ApplicationError as exc:
            raise command_error(exc) from exc
        result = rounds_of_project(project=project, with_reward=not options["no_reward"])
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(format_rounds(result))


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_rounds(result: dict[str, Any]) -> str:
    if not result["rounds"]:
        return f"Project {result['project']}: no generation runs yet, so no rounds."
    lines = [f"Project {result['project']}: {len(result['rounds'])} round(s)"]
    for item in result["rounds"]:
        policy = item["policy"]
        who = (f"training job {policy['training_job']}" + (f" (round {item['parent_round']})" if item["parent_round"] else "")
               if policy["kind"] == "training_job" else f"base model {policy['model']}")
        lines.append(f"Round {item['round']}: policy {who}")
        lines.append(f"  runs {', '.join(str(r['id']) for r in item['generation_runs'])}; {item['tasks']} tasks, "
                     f"{item['rankings']} rankings, {item['demonstrations']} demonstrations")
        jobs = ", ".join("{id} ({kind}, {status})".format(**j) for j in item["training_jobs"]) or "none"
        exports = ", ".join(str(e["id"]) for e in item["exports"]) or "none"
        lines.append(f"  exports {exports}; training jobs {jobs}")
        reward = item["mean_reward"]
        lines.append(f"  {item['responses']} responses, mean length {_num(item['mean_response_chars'])} characters; "
                     f"mean reward {_num(reward['value'], 3) if reward else 'n/a (no succeeded reward job)'}"
                     + (f" (reward job {reward['reward_job']}, {reward['n']} responses)" if reward and reward.get("n") else ""))
        h2h = item["head_to_head"]
        if item["round"] == 1:
            lines.append("  head to head: first round")
        elif h2h is None:
            lines.append("  head to head: not evaluated against the previous round (evaluate SLUG --runs PREV,THIS)")
        else:
            win = h2h["win_rate"]
            lines.append(f"  head to head vs round {item['round'] - 1} (evaluation {h2h['evaluation']}): {h2h['wins']} wins, "
                         f"{h2h['losses']} losses, {h2h['ties']} ties; win rate {_num(win['value'], 3)} "
                         f"95% CI [{win['ci95'][0]:.3f}, {win['ci95'][1]:.3f}]; "
                         f"{'PROMOTED' if item['promoted'] else 'not promoted (interval not above 0.5)'}")
    return "\n".join(lines)
