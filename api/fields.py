"""Serializer fields shared by the API's input serializers."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers

from annotation.limits import BIGINT_MAX


class IdField(serializers.IntegerField):
    """A row id: ASCII digits (DRF's IntegerField reads any Unicode digit, '٣' as 3), 1 to 2**63-1."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not data.strip().isascii():
            self.fail("invalid")
        return super().to_internal_value(data)
