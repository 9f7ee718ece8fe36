"""The OpenAPI schema describes what the server does, errors included (drf-spectacular).

- Lists: views with `pagination_class` (api.pagination.PaginatedApiView) get the
  `{count, next, previous, results}` envelope and the `limit`/`offset` parameters from drf-spectacular.
- Errors: every operation lists the error responses it can give, each with the error body
  (`Error`): 400 where it takes a body or query parameters, 401 always (token or session required),
  403 where a role or CSRF applies, 404 where the path names a row, 413 and 415 where it takes a
  body, 429 (throttles, with Retry-After), 503 (database unreachable, with Retry-After). A view's own
  description of a code is kept; a 409 appears where the view declares it.
- Request bodies are documented as JSON (see map_parsers); a ListField that refuses [] has minItems 1.
- Each route is served with and without its trailing slash (api.routing.api_path); the schema lists
  the slashed spelling once.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    "400": "Bad input: error.fields names each bad field or parameter.",
    "401": "No credentials, or a bad token.",
    "403": "Your role in the project is too low for this (or a session request without its CSRF token).",
    "404": "No such row, or it belongs to a project you are not a member of.",
    "413": "The body is larger than the upload limit.",
    "415": "The body's Content-Type is not one this operation accepts.",
    "429": "Too many requests, or too many failed token attempts from this address: retry after Retry-After seconds.",
    "503": "The database cannot be reached: retry after Retry-After seconds.",
}
RETRY_AFTER = {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds to wait before retrying."}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text='A stable machine-readable code: "invalid", "not_found", "forbidden", "conflict", ...')
    message = serializers.CharField(help_text="What is wrong, for a person.")
    fields = serializers.DictField(child=serializers.JSONField(), help_text="Field or parameter name -> its problems (a list).")


class ErrorSerializer(serializers.Serializer):
    """Every error the API returns (some carry more keys beside these, e.g. line_errors for imports)."""

    error = ErrorDetailSerializer()


class ApiAutoSchema(AutoSchema):
    def map_parsers(self) -> list[str]:
        # Bodies are JSON. The server still reads form encodings (DRF's default, kept for the
        # browsable API), but a form cannot carry null or a number, so the schema does not offer them;
        # a view with its own parsers (the multipart import) documents those.
        media_types = super().map_parsers()
        return [m for m in media_types if m == "application/json"] or media_types

    def _map_serializer_field(self, field: serializers.Field, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(field, serializers.ListField) and not field.allow_empty and schema.get("type") == "array":
            schema.setdefault("minItems", 1)  # drf-spectacular maps min_length, not allow_empty=False
        return schema

    def get_operation(self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        parameters = operation.get("parameters", [])
        has_path = any(p["in"] == "path" for p in parameters)
        has_query = any(p["in"] == "query" for p in parameters)
        has_body = "requestBody" in operation
        codes = ["401", "429", "503"]
        if has_body or has_query:
            codes.append("400")
        if has_path or method != "GET":
            codes.append("403")
        if has_path:
            codes.append("404")
        if has_body:
            codes += ["413", "415"]
        responses = operation["responses"]
        error = self._get_response_for_code(ErrorSerializer, "400")["content"]
        for code in codes:
            existing = responses.get(code)
            if existing is None:
                responses[code] = {"description": ERROR_DESCRIPTIONS[code], "content": error}
            elif "content" not in existing:
                existing["content"] = error
        for code, response in responses.items():
            if code.startswith(("4", "5")) and "content" not in response:
                response["content"] = error  # e.g. a view's own 409
            if code in ("429", "503"):
                response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
        operation["responses"] = dict(sorted(responses.items()))
        return operation


def drop_slashless_duplicates(endpoints: list[tuple], **kwargs: Any) -> list[tuple]:
    """drf-spectacular preprocessing hook: keep each API route's slashed spelling (see api.routing)."""
    return [endpoint for endpoint in endpoints if endpoint[0].endswith("/")]
