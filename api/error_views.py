"""Django's error handlers (config/urls.py handler400/403/404/500) for everything DRF does not answer.

Under /api/ they answer in the error shape, `{"error": {"code", "message", "fields"}}`: an unknown
route, a body over the upload limit (413), an unhandled exception (500) or a database that cannot be
reached (503, with Retry-After). Pages get a styled HTML page with no traceback. Nothing here touches
the database (the pages are rendered without the request's context processors), so the answer to a
database outage cannot fail in its turn.
"""
from __future__ import annotations

import sys

from django.core.exceptions import SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

from api.exceptions import TOO_LARGE, error_body, too_large_message

DATABASE_RETRY_AFTER_SECONDS = 5


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _answer(request: HttpRequest, *, status: int, code: str, title: str, message: str) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(code, message), status=status)
    html = render_to_string("frontend/error.html", {"status": status, "title": title, "message": message})
    return HttpResponse(html, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, TOO_LARGE):
        return _answer(request, status=413, code="too_large", title="Request too large", message=too_large_message(exception))
    return _answer(request, status=400, code="bad_request", title="Bad request", message="The request could not be understood.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    message = str(exception) if isinstance(exception, Exception) and str(exception) else "You do not have permission to see this."
    return _answer(request, status=403, code="forbidden", title="Not allowed", message=message)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a page form posted without its CSRF token (the API's own CSRF check is DRF's)."""
    return _answer(request, status=403, code="csrf_failed", title="Not allowed",
                   message="The form expired or was sent from another site; reload the page and try again.")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        message = f"No API route {request.path!r}; the routes are listed at /api/schema/."
    else:
        message = "There is no page at this address, or you may not see it."
    return _answer(request, status=404, code="not_found", title="Not found", message=message)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its `except` block, so the exception is still current.
    exception = sys.exc_info()[1]
    if isinstance(exception, OperationalError | InterfaceError):
        response = _answer(request, status=503, code="unavailable", title="Temporarily unavailable",
                           message="The database cannot be reached; try again in a few seconds.")
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
    if isinstance(exception, SuspiciousOperation):
        return bad_request(request, exception)
    return _answer(request, status=500, code="server_error", title="Something went wrong",
                   message="An unexpected error happened on the server; it has been logged.")
