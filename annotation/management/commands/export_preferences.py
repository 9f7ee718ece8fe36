"""`export_preferences SLUG --format pairs|unpaired|rankings|sft --out PATH [...]`: write one export directory.

The directory gets train/test files and manifest.json (the layout of a stored snapshot). The
export options are the API's (annotation.services.export.options.ExportOptionsSerializer): one
--flag per option, validated by that serializer. Bad options, an unknown project or annotator,
or a non-empty PATH exit with status 2 and say what is wrong; nothing is left half-written (files
appear only when complete, the manifest last). An empty export, or an empty test split, is
written but said loudly on stderr (and in the manifest's `warnings`).
"""
from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, add_serializer_arguments, command_error, serializer_input
from annotation.services.export import export_options_from_input, export_write
from annotation.services.export.options import ExportOptionsSerializer
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Export preference data (TRL pairs, unpaired/KTO, sft, or raw rankings) with a prompt-disjoint split."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--out", required=True, type=Path, help="Directory to write (created; must be empty).")
        add_serializer_arguments(parser, ExportOptionsSerializer)
        parser.add_argument("--user", help="Recorded as created_by in the manifest (default: the OS user).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        try:
            project = project_get_by_slug(slug=options["slug"])
            export_options = export_options_from_input(serializer_input(options, ExportOptionsSerializer), project=project)
        except ApplicationError as exc:
            raise command_error(exc) from exc
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise CommandError(f"--out {out}: exists and is not an empty directory; choose a new path.", returncode=EXIT_BAD_INPUT)

        bar = None if options["no_progress"] else tqdm(desc="exporting", unit="task", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.update(done - bar.n)

        try:
            manifest = export_write(
                project=project,
                options=export_options,
                out_dir=out,
                created_by=options["user"] or getpass.getuser(),
                progress=progress,
            )
        except ApplicationError as exc:
            raise command_error(exc) from exc
        finally:
            if bar is not None:
                bar.close()
        self.stdout.write(_summary(manifest, out))
        for warning in manifest["warnings"]:
            self.stderr.write(f"WARNING: {warning}")


def _summary(manifest: dict[str, Any], out: Path) -> str:
    counts = manifest["counts"]
    lines = [
        f"Exported {manifest['format']} ({manifest['file_format']}) of project {manifest['project']} to {out}",
        f"  tasks: {counts['tasks_seen']} seen, {counts['tasks_kept']} kept "
        f"({counts['tasks_without_rankings']} without rankings, {counts['tasks_below_min_votes']} below min votes, "
        f"{counts['tasks_below_min_agreement']} below min agreement)",
    ]
    for name, info in manifest["splits"].items():
        lines.append(
            f"  {name}: {info['file']} {info['rows']} rows, {info['prompts']} prompts, {info['bytes']} bytes, sha256 {info['sha256']}"
        )
    lines.append(f"  seed {manifest['seed']}, test fraction {manifest['test_fraction']}, policy {manifest['policy']}")
    active = {k: v for k, v in manifest["filters"].items() if v not in (None, False, 1)}
    lines.append(f"  filters: {active or 'none'}")
    return "\n".join(lines) + "\n"
