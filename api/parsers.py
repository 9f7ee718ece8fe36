"""The API's JSON parser: DRF's, with a size limit, a depth limit and no RecursionError.

DRF's JSONParser reads the whole body whatever its size (Django's DATA_UPLOAD_MAX_MEMORY_SIZE only
guards request.body and form fields) and lets RecursionError escape as a 500 on deeply nested input.
This one reads at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (more: 413) and refuses anything nested
deeper than annotation.limits.MAX_JSON_DEPTH (400).
"""
from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.utils import json as drf_json

from annotation.limits import json_loads_bounded


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
        try:
            return json_loads_bounded(body.decode(encoding), parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:  # includes UnicodeDecodeError and JSONTooDeep
            raise ParseError(f"JSON parse error - {exc}") from exc


class BoundedFormParser(FormParser):
    """DRF's form parser, reading at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (more: 413)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            body = stream.read(limit + 1)
            if len(body) > limit:
                raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
            stream = io.BytesIO(body)
        return super().parse(stream, media_type, parser_context)
