"""`create_project NAME [...]`: create a project and print its slug (alone on stdout, for scripts)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.services.projects import project_create_with_admin, user_get


class Command(BaseCommand):
    help = "Create a project and print its slug."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--slug", default="", help="URL name (default: derived from NAME).")
        parser.add_argument("--responses-per-prompt", type=int, help="K, responses ranked per prompt (>= 2; default 4).")
        parser.add_argument("--overlap", type=int, help="Distinct annotators per task (>= 1; default 3).")
        parser.add_argument("--min-overlap", type=int,
                            help="Adaptive overlap: rankings after which a task completes if they agree (1 <= M <= N; default N).")
        parser.add_argument("--agreement-target", type=float,
                            help="Adaptive overlap: the task agreement that completes a task at M rankings, 0..1 (default 0.8).")
        parser.add_argument("--adaptive-rule",
                            help="Adaptive overlap: agreement (default): a task completes at M or more rankings whose agreement "
                                 "reaches the target; consensus: once their consensus ranking has no tie.")
        parser.add_argument("--consensus-weighting",
                            help="What each annotator's rankings count in the consensus: none (default), or reliability: the "
                                 "weight estimated from how often they agree with the others (docs/agreement.md).")
        parser.add_argument("--allow-ties", action="store_true", help="Let annotators put responses in the same tier.")
        parser.add_argument("--gold-rate", type=float, help="Share of gold tasks, 0 <= R < 1 (default 0).")
        parser.add_argument("--lease-seconds", type=int, help="How long an annotator holds a task (default 900).")
        parser.add_argument("--task-type", choices=["ranking", "demonstration"],
                            help="ranking (default): rank responses; demonstration: write the ideal response (SFT data).")
        parser.add_argument("--review", action="store_true",
                            help="Demonstration projects: another annotator accepts or rejects each demonstration.")
        parser.add_argument("--max-demonstration-chars", type=int, help="Longest demonstration accepted (default 20000).")
        parser.add_argument("--instructions-file", type=Path, help="Markdown file shown to annotators.")
        parser.add_argument("--owner", help="Username made the project's admin (default: a new user SLUG-admin, "
                                             "its password and token printed once on stderr).")
        parser.add_argument("--model", dest="gen_model", help="Default generation model (HF id or path).")
        parser.add_argument("--system-prompt", dest="gen_system_prompt", help="Default system prompt for generation.")
        parser.add_argument("--judge-routing", help="off (default) | uncertain: people rank the uncertain tasks plus an audit sample.")
        parser.add_argument("--judge-confidence", type=float, help="Confidence a judge ranking needs to skip people (0.5..1; default 0.8).")
        parser.add_argument("--judge-audit-rate", type=float, help="Share of confident tasks still served to people (0..1; default 0.1).")

    def handle(self, *args, **options) -> None:
        instructions = None
        if options["instructions_file"]:
            try:
                instructions = options["instructions_file"].read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read --instructions-file: {exc}", returncode=EXIT_BAD_INPUT) from exc
        try:
            owner = user_get(username=options["owner"]) if options["owner"] else None
            project, created = project_create_with_admin(
                name=options["name"],
                slug=options["slug"],
                owner=owner,
                instructions=instructions,
                responses_per_prompt=options["responses_per_prompt"],
                overlap=options["overlap"],
                min_overlap=options["min_overlap"],
                agreement_target=options["agreement_target"],
                adaptive_rule=options["adaptive_rule"],
                consensus_weighting=options["consensus_weighting"],
                allow_ties=options["allow_ties"],
                gold_rate=options["gold_rate"],
                lease_seconds=options["lease_seconds"],
                task_type=options["task_type"],
                review=options["review"] or None,
                max_demonstration_chars=options["max_demonstration_chars"],
                gen_model=options["gen_model"],
                gen_system_prompt=options["gen_system_prompt"],
                judge_routing=options["judge_routing"],
                judge_confidence=options["judge_confidence"],
                judge_audit_rate=options["judge_audit_rate"],
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if created is not None:
            # stderr: stdout is the slug alone (SLUG=$(python manage.py create_project ...)).
            self.stderr.write(f"No --owner: created admin user {created.user.username} with password: {created.password}\n"
                              f"(shown once: only its hash is stored)\nAPI token: {created.token}")
        self.stdout.write(project.slug)
