"""Permission classes. Row-level checks go through annotation.services.access in the fetch itself."""
from rest_framework.permissions import BasePermission


class IsAuthenticatedMember(BasePermission):
    """Authenticated; project membership and role are checked by access.project_get_for_user."""

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated)
