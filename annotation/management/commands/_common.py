"""Shared by the management commands: how an ApplicationError becomes an exit status.

Bad input exits with status 2 and a message naming what is wrong (docs/architecture.md).
"""
from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from rest_framework import serializers
from rest_framework.fields import empty

from annotation.errors import ApplicationError

EXIT_BAD_INPUT = 2


def command_error(exc: ApplicationError) -> CommandError:
    """A CommandError (exit status 2) listing the message and every field problem."""
    lines = [exc.message]
    for field, problems in exc.fields.items():
        for problem in problems if isinstance(problems, list) else [problems]:
            lines.append(f"  {field}: {problem}")
    return CommandError("\n".join(lines), returncode=EXIT_BAD_INPUT)


def add_serializer_arguments(parser: CommandParser, serializer_class: type[serializers.Serializer]) -> None:
    """One --flag per field of an options serializer, with its help text, so a command and the API
    share one definition of the options (names, help, defaults) and one validation.

    Values reach the serializer as given (text), which validates them and names the bad ones; a
    boolean field becomes a switch. Fields left out are not passed, so the serializer's defaults apply.
    """
    fields = serializer_class().fields
    for name, field in sorted(fields.items(), key=lambda item: not item[1].required):  # required ones first
        flag = "--" + name.replace("_", "-")
        help_text = str(field.help_text or "")
        if getattr(field, "choices", None):
            help_text += f" ({' | '.join(map(str, field.choices))})"
        if field.default is not empty and field.default is not None and field.default is not False:
            help_text += f" Default: {field.default}."
        if field.required:
            help_text += " Required."
        if isinstance(field, serializers.BooleanField):
            parser.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=help_text)


def serializer_input(options: dict[str, Any], serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
    """The given values of a serializer's flags (see add_serializer_arguments), for the serializer to validate."""
    return {name: options[name] for name in serializer_class().fields if options.get(name) is not None}
