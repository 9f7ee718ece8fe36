"""`import_prompts SLUG FILE`: import a JSONL or CSV file of prompts, all or nothing.

Exit status 2 with every bad line (number and reason) when the file has any; nothing is imported then.
"""
from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.services.importing import ImportRejected, detect_format, prompts_import
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Import prompts (and optional ready-made responses) from a JSONL or CSV file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("file", type=Path)
        parser.add_argument("--format", dest="file_format", choices=["jsonl", "csv"], help="Default: from the file name.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, **options) -> None:
        path: Path = options["file"]
        bars: dict[str, tqdm] = {}

        def progress(phase: str, done: int, total: int) -> None:
            if options["no_progress"]:
                return
            bar = bars.get(phase)
            if bar is None:
                # One bar at a time: a second open bar makes tqdm move the cursor up (ESC [A), which
                # a log file or a dumb terminal shows as "[A".
                for other in bars.values():
                    other.close()
                label = "validating" if phase == "validate" else "importing"
                bar = bars[phase] = tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr, leave=True)
            bar.update(done - bar.n)

        try:
            project = project_get_by_slug(slug=options["slug"])
            file_format = detect_format(filename=path.name, file_format=options["file_format"])
            try:
                fileobj = path.open("rb")
            except OSError as exc:
                raise CommandError(f"Cannot open {path}: {exc.strerror}", returncode=EXIT_BAD_INPUT) from exc
            with fileobj:
                result = prompts_import(project=project, fileobj=fileobj, file_format=file_format, progress=progress)
        except ImportRejected as exc:
            for bar in bars.values():
                bar.close()
            lines = [f"{path}: {exc.message}"] + [f"  {path}:{e.line}: {e.reason}" for e in exc.errors]
            if exc.truncated:
                lines.append(f"  ... and {exc.total - len(exc.errors)} more bad lines")
            lines += ["by reason:"] + [f"  {line}" for line in exc.summary_lines()]
            raise CommandError("\n".join(lines), returncode=EXIT_BAD_INPUT) from exc
        except ApplicationError as exc:
            raise command_error(exc) from exc
        finally:
            for bar in bars.values():
                bar.close()

        r = result
        self.stdout.write(
            f"{r.prompts_created} prompts imported into {project.slug}; {r.prompts_existing} were already there"
            + (f", {r.duplicates_in_file} repeated in the file" if r.duplicates_in_file else "")
            + "."
        )
        if r.responses_created or r.responses_ignored:
            self.stdout.write(
                f"{r.responses_created} ready-made responses; {r.tasks_created} ranking tasks created"
                + (f"; {r.responses_merged} identical responses merged" if r.responses_merged else "")
                + (f"; {r.prompts_without_task} prompts with fewer than two distinct responses (no task)" if r.prompts_without_task else "")
                + (f"; {r.responses_ignored} responses ignored (their prompts already had responses)" if r.responses_ignored else "")
                + "."
            )
