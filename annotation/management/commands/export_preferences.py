"""`export_preferences SLUG --format pairs|unpaired|rankings --out PATH [...]`: write one export directory.

The directory gets train/test files and manifest.json (the layout of a stored snapshot). Bad
options, an unknown project or a non-empty PATH exit with status 2 and say what is wrong; nothing
is left half-written (files appear only when complete, the manifest last).
"""
from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotation.errors import ApplicationError
from annotation.management.commands._common import EXIT_BAD_INPUT, command_error
from annotation.services.export import export_options_from_input, export_write
from annotation.services.projects import project_get_by_slug


class Command(BaseCommand):
    help = "Export preference data (TRL pairs, unpaired/KTO, or raw rankings) with a prompt-disjoint split."

    def add_arguments(self, parser: CommandParser) -> None:
        # Values are passed through as text: the export service validates them and names the bad ones.
        parser.add_argument("slug")
        parser.add_argument("--format", required=True, help="pairs | unpaired | rankings")
        parser.add_argument("--out", required=True, type=Path, help="Directory to write (created; must be empty).")
        parser.add_argument("--file-format", default="jsonl", help="jsonl (default) | parquet")
        parser.add_argument("--min-agreement", help="Keep tasks whose agreement is at least this (0..1).")
        parser.add_argument("--min-votes", help="Keep tasks with at least this many rankings (default 1).")
        parser.add_argument("--test-fraction", default="0.1", help="Share of prompts in the test split (default 0.1).")
        parser.add_argument("--seed", default="0", help="Seed of the split (default 0).")
        parser.add_argument("--policy", default="all", help="Pairs from consensus tiers: all | best_vs_rest | adjacent.")
        parser.add_argument("--exclude-flagged", action="store_true", help="Leave out responses any annotator flagged.")
        parser.add_argument("--exclude-gold", action="store_true", help="Leave out gold tasks.")
        parser.add_argument("--annotators", help="Comma-separated usernames whose rankings count.")
        parser.add_argument("--since", help="Count rankings submitted at or after this ISO date-time.")
        parser.add_argument("--until", help="Count rankings submitted before this ISO date-time.")
        parser.add_argument("--desirable-tiers", help="unpaired: top consensus tiers labelled true (default 1).")
        parser.add_argument("--undesirable-tiers", help="unpaired: bottom consensus tiers labelled false (default 1).")
        parser.add_argument("--user", help="Recorded as created_by in the manifest (default: the OS user).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        raw: dict[str, Any] = {
            "format": options["format"],
            "file_format": options["file_format"],
            "test_fraction": options["test_fraction"],
            "seed": options["seed"],
            "policy": options["policy"],
            "exclude_flagged": options["exclude_flagged"],
            "exclude_gold": options["exclude_gold"],
        }
        for name in ("min_agreement", "min_votes", "since", "until", "desirable_tiers", "undesirable_tiers"):
            if options[name] is not None:
                raw[name] = options[name]
        if options["annotators"] is not None:
            raw["annotators"] = [name.strip() for name in options["annotators"].split(",") if name.strip()]
        out: Path = options["out"]
        try:
            project = project_get_by_slug(slug=options["slug"])
            export_options = export_options_from_input(raw)
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
