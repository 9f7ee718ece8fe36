"""One pagination for every list: `{count, next, previous, results}` with `limit` and `offset`.

`limit` is 1..API_MAX_PAGE_SIZE (default PAGE_SIZE), `offset` 0..2**63-1; anything else (a word, a
negative number, a non-ASCII digit, a limit above the maximum) is a 400 naming the parameter,
never silently replaced by the default.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.limits import BIGINT_MAX as MAX_ID


def query_int(request: Request, name: str, *, default: int | None, minimum: int, maximum: int) -> int | None:
    """An integer query parameter, ASCII digits only, within [minimum, maximum]; 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    text = raw.strip()
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19 or not minimum <= int(text) <= maximum:
        raise ValidationError({name: [f"must be an integer from {minimum} to {maximum}"]})
    return int(text)


class ApiPagination(LimitOffsetPagination):
    """DRF's limit/offset pagination with a maximum page and strict parameters."""

    @property
    def default_limit(self) -> int:  # type: ignore[override]
        return int(settings.REST_FRAMEWORK.get("PAGE_SIZE") or 100)

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return int(settings.API_MAX_PAGE_SIZE)

    def get_limit(self, request: Request) -> int:
        return query_int(request, self.limit_query_param, default=min(self.default_limit, self.max_limit),
                         minimum=1, maximum=self.max_limit)

    def get_offset(self, request: Request) -> int:
        return query_int(request, self.offset_query_param, default=0, minimum=0, maximum=MAX_ID)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_limit, "default": min(self.default_limit, self.max_limit)}
        limit["description"] = f"Number of results to return per page (1 to {self.max_limit})."
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_ID, "default": 0}
        return [limit, offset]


class PaginatedApiView(APIView):
    # An APIView whose GET lists: `self.paginated(...)` answers one page, and the schema shows the
    # envelope and the parameters. (A comment, not a docstring: drf-spectacular would publish that
    # as the description of every list operation.)

    pagination_class = ApiPagination

    def paginated(self, queryset: QuerySet, serializer_class: type, **serializer_kwargs: Any) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True, **serializer_kwargs).data)
