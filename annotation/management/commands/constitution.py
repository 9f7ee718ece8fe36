"""`constitution SLUG --file FILE | --show`: add a new version of a project's constitution, or print the current one.

Each top-level Markdown list item of the file is one principle. A file with no principle exits 2.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.services.judge import constitution_create, constitution_current
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Add a version of a project's constitution (prints its number), or --show the current one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--file", type=Path, help="Markdown file; each top-level list item is one principle.")
        group.add_argument("--show", action="store_true", help="Print the current version and its principles.")

    def handle(self, *args, **options) -> None:
        try:
            project = project_get_by_slug(slug=options["slug"])
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if options["show"]:
            current = constitution_current(project=project)
            if current is None:
                raise CommandError(f"Project '{project.slug}' has no constitution yet.", returncode=EXIT_BAD_INPUT)
            self.stdout.write(f"version {current.version} ({len(current.principles)} principles)")
            for number, principle in enumerate(current.principles, 1):
                self.stdout.write(f"  {number}. {principle}")
            return
        try:
            text = options["file"].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read --file {options['file']}: {exc}", returncode=EXIT_BAD_INPUT) from exc
        try:
            constitution = constitution_create(project=project, text=text)
        except ApplicationError as exc:
            raise command_error(exc) from exc
        self.stdout.write(str(constitution.version))
