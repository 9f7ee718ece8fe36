"""Fetch rows together with the permission check, so no caller can forget it.

A user who is not a member of a project gets NotFound (404), never the row: projects of other
tenants are invisible. A member whose role is too low gets Forbidden (403).
"""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from annotation.errors import Forbidden, NotFound
from annotation.models import ROLE_RANK, Membership, Project, Role


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


def project_get_for_user(*, user: AbstractBaseUser, project_ref: int | str, min_role: str = Role.ANNOTATOR) -> Project:
    """The project by id or slug, if the user may see it with at least `min_role`."""
    lookup = {"pk": int(project_ref)} if str(project_ref).isdigit() else {"slug": str(project_ref)}
    project = Project.objects.filter(**lookup).first()
    if project is None:
        raise NotFound("Project not found.")
    role = role_of(user=user, project=project)
    if role is None:
        raise NotFound("Project not found.")
    if ROLE_RANK[role] < ROLE_RANK[min_role]:
        raise Forbidden(f"This needs the {min_role} role in project '{project.slug}'; you are {role}.")
    return project


def projects_for_user(*, user: AbstractBaseUser):
    """Projects the user is a member of (all of them for a superuser)."""
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()
