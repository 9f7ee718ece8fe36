"""Strict input fields for the option serializers that services share with the API and the commands.

DRF's own fields are lenient where an option must not be ("yes" is a boolean, True is an
integer, null means "unset") and their messages do not show the value that was refused. These
subclasses keep DRF's types (so drf-spectacular documents them as numbers, booleans, enums and
date-times, with their bounds) but accept only what they say and name the bad value.

`serializer_validate` runs a serializer and turns its errors into an ApplicationError (HTTP 400 in
the API, exit status 2 in a command) that names every bad field.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from annotation.errors import ApplicationError


def timestamp_parse(value: str | dt.datetime) -> dt.datetime:
    """An ISO 8601 date or date-time ("2026-01-31", "2026-01-31T12:00:00Z", ...); naive times are UTC.

    Raises ValueError naming the value. The one date parser of the options (export and agreement
    filters, command line and API).
    """
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).strip())  # Python 3.11+: "Z" and plain dates too
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or date-time: {value!r}") from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


class Choice(serializers.ChoiceField):
    """One of fixed strings; the message lists them."""

    def __init__(self, choices: Sequence[str], **kwargs: Any) -> None:
        super().__init__(choices=list(choices), **kwargs)
        self.error_messages["invalid_choice"] = f"must be one of {', '.join(choices)}; got {{input!r}}"


class _Bounded:
    """Shared by Number and Integer: convert, then check [min_value, max_value] or below `below` (exclusive)."""

    kind = "a number"

    def __init__(self, *, min_value: float | None = None, max_value: float | None = None, below: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Set after __init__ so DRF adds no validators of its own (their messages omit the value);
        # drf-spectacular reads these attributes for the schema's bounds.
        self.min_value, self.max_value, self.below = min_value, max_value, below

    def _convert(self, data: Any) -> float:
        raise NotImplementedError

    def to_internal_value(self, data: Any) -> Any:
        try:
            if isinstance(data, bool):
                raise ValueError
            value = self._convert(data)
        except (TypeError, ValueError, OverflowError):
            raise serializers.ValidationError(f"must be {self.kind}; got {data!r}") from None
        if self.min_value is not None and value < self.min_value:
            raise serializers.ValidationError(f"must be at least {self.min_value}; got {value}")
        if self.below is not None and value >= self.below:
            raise serializers.ValidationError(f"must be below {self.below}; got {value}")
        if self.max_value is not None and value > self.max_value:
            raise serializers.ValidationError(f"must be at most {self.max_value}; got {value}")
        return value


class Number(_Bounded, serializers.FloatField):
    """A number (not a boolean) within the bounds."""

    def _convert(self, data: Any) -> float:
        return float(data)


class Integer(_Bounded, serializers.IntegerField):
    """A whole number (an int, or a string of one; not 2.5, not a boolean) within the bounds."""

    kind = "an integer"

    def _convert(self, data: Any) -> int:
        value = int(data)
        if float(data) != value:  # 2.5 is not an integer, nor is 2.5 written as a float
            raise ValueError
        return value


class Flag(serializers.BooleanField):
    """true or false, and nothing else ("yes", 1 and "true" are refused: a typo must not flip an option)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false; got {data!r}")
        return data


class QueryFlag(Flag):
    """A Flag that a query string can carry too: true or false, or exactly the strings "true" and "false"."""

    def to_internal_value(self, data: Any) -> bool:
        if data in ("true", "false"):
            return data == "true"
        return super().to_internal_value(data)


class Timestamp(serializers.DateTimeField):
    """An ISO 8601 date or date-time, read by `timestamp_parse`."""

    def to_internal_value(self, value: Any) -> dt.datetime:
        try:
            return timestamp_parse(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class Usernames(serializers.ListField):
    """Usernames: a list of them, or one comma-separated string (the command line, a query string).

    The result is sorted and without duplicates; an empty list means "not given" (None).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(child=serializers.CharField(), **kwargs)

    def to_internal_value(self, data: Any) -> list[str] | None:
        items = data.split(",") if isinstance(data, str) else data
        if not isinstance(items, list | tuple) or not all(isinstance(item, str) for item in items):
            raise serializers.ValidationError("must be a list of usernames (or one comma-separated string)")
        names = sorted({part.strip() for item in items for part in item.split(",") if part.strip()})
        return names or None


def serializer_validate(serializer_class: type[serializers.Serializer], data: Mapping[str, Any], *, what: str,
                        context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The serializer's validated data, or ApplicationError(400) naming every bad field."""
    serializer = serializer_class(data=data, context=context or {})
    if not serializer.is_valid():
        fields = {name: [str(e) for e in (errors if isinstance(errors, list) else [errors])] for name, errors in serializer.errors.items()}
        raise ApplicationError(f"Invalid {what}: {', '.join(sorted(fields))}.", fields=fields)
    return dict(serializer.validated_data)


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses unknown keys (a misspelt option must never be silently ignored) and
    reads null as "not given" for fields that are not nullable."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["must be an object of options"]})
        unknown = {key: ["unknown option"] for key in data if key not in self.fields}
        given = {key: value for key, value in data.items()
                 if key in self.fields and not (value is None and not self.fields[key].allow_null)}
        try:
            value = super().to_internal_value(given)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**unknown, **exc.detail}) from None
        if unknown:
            raise serializers.ValidationError(unknown)
        return value
