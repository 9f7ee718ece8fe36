"""Shared by the management commands: how an ApplicationError becomes an exit status.

Bad input exits with status 2 and a message naming what is wrong (docs/architecture.md).
"""
from __future__ import annotations

from django.core.management.base import CommandError

from annotation.errors import ApplicationError

EXIT_BAD_INPUT = 2


def command_error(exc: ApplicationError) -> CommandError:
    """A CommandError (exit status 2) listing the message and every field problem."""
    lines = [exc.message]
    for field, problems in exc.fields.items():
        for problem in problems if isinstance(problems, list) else [problems]:
            lines.append(f"  {field}: {problem}")
    return CommandError("\n".join(lines), returncode=EXIT_BAD_INPUT)
