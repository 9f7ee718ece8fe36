"""The application's one exception type. Services raise it; the API and commands render it."""
from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A rule was broken by the caller's input or state.

    Args:
        message: what is wrong, readable by a person.
        code: a stable machine-readable code ("invalid", "not_found", "conflict", ...).
        fields: field name -> list of problems, for input errors.
        status: the HTTP status the API answers with.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        fields: dict[str, Any] | None = None,
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or {}
        self.status = status
        self.extra = extra or {}


class NotFound(ApplicationError):
    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message, code="not_found", status=404)


class Forbidden(ApplicationError):
    def __init__(self, message: str = "You do not have permission to do this.") -> None:
        super().__init__(message, code="forbidden", status=403)


class Conflict(ApplicationError):
    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message, code="conflict", status=409, extra=extra)
