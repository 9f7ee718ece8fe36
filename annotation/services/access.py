"""Fetch rows together with the permission check, so no caller can forget it.

A user who is not a member of a project gets NotFound (404), never the row: projects of other
tenants are invisible. A member whose role is too low gets Forbidden (403).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import CharField, Model, OuterRef, QuerySet, Subquery, Value

from annotation.errors import Forbidden, NotFound
from annotation.limits import BIGINT_MAX
from annotation.models import ROLE_RANK, Membership, Project, Role
from annotation.sql import access as sql
from annotation.sql.rows import models_from_sql  # noqa: F401  (its old home: kept importable from here)


def membership_get(*, user: AbstractBaseUser, project: Project) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, project=project).first()


def role_of(*, user: AbstractBaseUser, project: Project) -> str | None:
    """The user's role in the project; superusers act as admins everywhere."""
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    membership = membership_get(user=user, project=project)
    return membership.role if membership else None


def has_role(*, user: AbstractBaseUser, project: Project, min_role: str) -> bool:
    role = role_of(user=user, project=project)
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[min_role]


MAX_ID = BIGINT_MAX


def project_and_role_get_for_user(
    *, user: AbstractBaseUser, project_ref: int | str, min_role: str = Role.ANNOTATOR
) -> tuple[Project, str]:
    """The project by id or slug with the caller's role in it, if they may see it with at least `min_role`.

    The role is also left on the row as `project.caller_role`. Non-members (and anonymous users,
    and unknown projects) get NotFound; too-low roles Forbidden.
    """
    if not user.is_authenticated:
        raise NotFound("Project not found.")
    ref = str(project_ref)
    if ref.isascii() and ref.isdigit():  # str.isdigit alone is true for '²' and reads '٣' as 3
        if int(ref) > MAX_ID:
            raise NotFound("Project not found.")
        project = sql.project_with_role(user_id=user.pk, project_id=int(ref))
    else:
        project = sql.project_with_role(user_id=user.pk, slug=ref)
    if project is None:
        raise NotFound("Project not found.")
    role = Role.ADMIN if getattr(user, "is_superuser", False) else project.caller_role
    project.caller_role = role
    if role is None:
        raise NotFound("Project not found.")
    if ROLE_RANK[role] < ROLE_RANK[min_role]:
        raise Forbidden(f"This needs the {min_role} role in project '{project.slug}'; you are {role}.")
    return project, role


def project_get_for_user(*, user: AbstractBaseUser, project_ref: int | str, min_role: str = Role.ANNOTATOR) -> Project:
    """The project by id or slug, if the user may see it with at least `min_role`."""
    return project_and_role_get_for_user(user=user, project_ref=project_ref, min_role=min_role)[0]


def project_row_get_for_user(*, user: AbstractBaseUser, queryset: QuerySet, pk: int, min_role: str, what: str) -> Model:
    """A row belonging to a project (an export, a training job, ...) if the user may see that project
    with at least `min_role`. A missing row and a row of another tenant's project give the same 404
    ("<what> not found."); a member with a too-low role gets 403."""
    row = queryset.filter(pk=pk).first()
    if row is None:
        raise NotFound(f"{what} not found.")
    try:
        project_get_for_user(user=user, project_ref=row.project_id, min_role=min_role)
    except NotFound as exc:
        raise NotFound(f"{what} not found.") from exc
    return row


def user_get_by_token(*, key: str) -> AbstractBaseUser | None:
    """The user owning this API token (active or not: the caller decides), or None.

    One raw statement (annotation.sql.access): DRF's lookup compiles a select_related query on every API request.
    """
    return sql.user_by_token(key=key)


def projects_for_user(*, user: AbstractBaseUser):
    """Projects the user is a member of (all of them for a superuser), each with `caller_role`."""
    if getattr(user, "is_superuser", False):
        return Project.objects.annotate(caller_role=Value(Role.ADMIN.value, output_field=CharField()))
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return Project.objects.filter(memberships__user=user).annotate(caller_role=Subquery(role)).distinct()


def can_see_generation_settings(*, role: str | None) -> bool:
    """Model names and sampling settings are for engineers and admins: annotators rank blind."""
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[Role.ENGINEER]
