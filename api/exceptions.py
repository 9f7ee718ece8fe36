"""One error shape for every error the API returns:

    {"error": {"code": "invalid", "message": "...", "fields": {"overlap": ["must be >= 1"]}}}

`exception_handler` renders what DRF views raise; api.error_views renders what never reaches a DRF
view (unknown routes, 500s, a database outage) in the same shape.
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.errors import ApplicationError

logger = logging.getLogger(__name__)

TOO_LARGE = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


def error_body(code: str, message: str, fields: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}, **extra}}


def too_large_message(exc: Exception) -> str:
    if isinstance(exc, RequestDataTooBig):
        return f"The request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
    return f"The request has too many fields or files: {exc}"


def _flatten_detail(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten_detail(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten_detail(item) for item in detail]
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields, **exc.extra), status=exc.status)
    if isinstance(exc, TOO_LARGE):
        return Response(error_body("too_large", too_large_message(exc)), status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", "The request could not be understood."), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError):
        # A value that passed validation but that PostgreSQL refuses (out of range, NUL, too long):
        # the client's data, so a 400; logged with its traceback because a validator is missing.
        logger.warning("DataError on %s", context["request"].path, exc_info=exc)
        return Response(error_body("invalid", "A value in the request is out of range or cannot be stored."),
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unhandled: Django's handler500 (api.error_views.server_error) answers
    if isinstance(exc, exceptions.ValidationError):
        detail = _flatten_detail(exc.detail)
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        names = ", ".join(fields)
        response.data = error_body("invalid", f"Invalid input: {names}.", fields)
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        code = getattr(exc, "default_code", "error")
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code if isinstance(code, str) else "error", str(detail))
    return response
