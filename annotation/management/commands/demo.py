"""`demo [--no-serve]`: seed a demo project with users and rankable prompts, then serve the site.

Idempotent: a second run finds everything in place, adds nothing and leaves passwords alone.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.models import Project, Role
from annotation.services.generation import generation_run_create
from annotation.services.importing import prompts_import
from annotation.services.projects import membership_add, project_create, user_create

DEMO_PROMPTS = Path(settings.BASE_DIR) / "data" / "demo_prompts.jsonl"
DEMO_SLUG = "demo"
SAMPLES_SLUG = "demo-samples"
SAMPLES_PROMPTS = 8
# Fixed, documented passwords: this is a local demo, never a deployment (docs/setup.md).
DEMO_USERS = [
    ("admin", "demo-admin-pass", Role.ADMIN),
    ("engineer", "demo-engineer-pass", Role.ENGINEER),
    ("annotator1", "demo-annotator-pass", Role.ANNOTATOR),
    ("annotator2", "demo-annotator-pass", Role.ANNOTATOR),
    ("annotator3", "demo-annotator-pass", Role.ANNOTATOR),
]
INSTRUCTIONS = """\
## How to rank

Read the prompt, then put the responses in order, **best first**.

1. **Correct and safe first.** A response with a factual error, wrong code or harmful content
   ranks below any response without one, however well written.
2. **Then helpful.** Prefer the response that answers what was asked, completely and directly.
3. **Then clear.** Prefer plain, well-organised writing; length is not a virtue in itself.

For a harmful request (breaking into a house, hurting someone), the best response declines
politely and offers a safe alternative; complying is the worst.

Use the flags for responses that are *unsafe*, *factually wrong* or *off topic*. Ties are allowed
when two responses really are equally good. Skip a task only if you cannot judge it.
"""


class Command(BaseCommand):
    help = "Create demo users and a demo project with rankable prompts, then serve at http://127.0.0.1:8000."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="Seed only; do not start the web server.")
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="Where runserver listens.")

    def handle(self, *args, **options) -> None:
        try:
            logins = self.seed_users()
            project = self.seed_project(owner=logins[0][0])
            result = self.seed_prompts(project)
            self.generate_responses(project)
        except ApplicationError as exc:
            raise command_error(exc) from exc

        self.stdout.write(f"Demo project '{project.name}' ({project.slug}): {result}")
        self.stdout.write("Logins (username / password / role):")
        for user, password, role in logins:
            self.stdout.write(f"  {user.username:<12} {password:<22} {role}")
        if options["no_serve"]:
            return
        if not settings.DEBUG:
            self.stderr.write("Warning: DEBUG is off, so the site redirects to https. For this local demo run with DEBUG=1.")
        self.stdout.write(f"Serving at http://{options['addrport']}/  (Ctrl-C to stop)")
        call_command("runserver", options["addrport"], use_reloader=False)

    def seed_users(self) -> list[tuple]:
        User = get_user_model()
        logins = []
        for username, password, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = user_create(username=username, password=password, is_superuser=(role == Role.ADMIN)).user
                shown = password
            elif user.check_password(password):
                shown = password
            else:
                shown = "(existing user: password left as it was)"
            logins.append((user, shown, role))
        return logins

    def seed_project(self, *, owner) -> Project:
        return _demo_project(
            name="Demo: helpful and honest answers", slug=DEMO_SLUG, created_by=owner,
            responses_per_prompt=4, overlap=3, lease_seconds=900,
        )

    def seed_prompts(self, project: Project) -> str:
        with DEMO_PROMPTS.open("rb") as fileobj:
            r = prompts_import(project=project, fileobj=fileobj, file_format="jsonl")
        return (
            f"{r.prompts_created} prompts imported ({r.prompts_existing} already there), "
            f"{r.responses_created} responses, {r.tasks_created} new ranking tasks."
        )

    def generate_responses(self, project: Project) -> None:
        """The generation step: sample K responses for a few demo prompts from the local model.

        They go to a second project, so the main demo keeps its meaningful ready-made responses
        (the default model is the tiny random-weight one; set GENERATION_MODEL for a real model).
        With no broker the run happens here, in-process; with one, a worker picks it up.
        """
        samples = _demo_project(
            name="Demo: samples from the generation model", slug=SAMPLES_SLUG, created_by=project.created_by,
            responses_per_prompt=4, overlap=1, gen_max_new_tokens=32,
        )
        with DEMO_PROMPTS.open("rb") as fileobj:
            lines = [json.loads(line) for line in fileobj.read().splitlines()[:SAMPLES_PROMPTS]]
        bare = "\n".join(json.dumps({k: v for k, v in row.items() if k != "responses"}) for row in lines)
        prompts_import(project=samples, fileobj=io.BytesIO(bare.encode()), file_format="jsonl")
        if samples.generation_runs.filter(status__in=["queued", "running", "succeeded"]).exists():
            return
        with transaction.atomic():
            run = generation_run_create(project=samples, created_by=project.created_by)
        run.refresh_from_db()
        self.stdout.write(
            f"Generation run {run.pk} on '{samples.slug}' with {run.model_name or 'the tiny local model'}: "
            f"{run.status}, {run.responses_count} responses, {run.tasks_created} tasks"
            + (" (queued for a worker)" if run.status == "queued" else "")
        )


def _demo_project(*, slug: str, **settings_: object) -> Project:
    """The demo project `slug` (created once, with the demo instructions and ties allowed), with every demo user in it."""
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        project = project_create(slug=slug, instructions=INSTRUCTIONS, allow_ties=True, **settings_)
    for username, _password, role in DEMO_USERS:
        membership_add(project=project, user=get_user_model().objects.get(username=username), role=role)
    return project
