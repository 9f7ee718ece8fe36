"""`set_priority SLUG --priority fifo|uncertainty [--priority-model JOB_ID] [--wait]`: the serving order."""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import command_error
from annotation.services.priority import PRIORITY_MODES, project_priority_progress, project_priority_set
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Set a project's serving order: fifo (today's) or uncertainty first, scored by a reward model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--priority", required=True, help=f"One of {', '.join(PRIORITY_MODES)}.")
        parser.add_argument("--priority-model", type=int, help="A succeeded reward training job of the project (uncertainty).")
        parser.add_argument("--wait", action="store_true", help="Wait until the tasks are scored, printing progress.")

    def handle(self, *args, **options) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
            project = project_priority_set(project=project, priority=options["priority"], priority_model=options["priority_model"])
        except ApplicationError as exc:
            raise command_error(exc) from exc
        state = project_priority_progress(project=project)
        while options["wait"] and state["status"] in ("queued", "running"):
            time.sleep(1.0)
            project.refresh_from_db()
            state = project_priority_progress(project=project)
        self.stdout.write(f"{project.slug}: priority {state['priority']}"
                          + (f", model {state['priority_model']}, scoring {state['status']} {state['done']}/{state['total']}"
                             if state["priority"] == "uncertainty" else ""))
