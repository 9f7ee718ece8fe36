"""Fetch rows together with the permission check, so no caller can forget it.

A user who is not a member of a project gets NotFound (404), never the row: projects of other
tenants are invisible. A member whose role is too low gets Forbidden (403).
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import DEFERRED, CharField, Model, OuterRef, QuerySet, Subquery, Value

from annotation.errors import Forbidden, NotFound
from annotation.limits import BIGINT_MAX
from annotation.models import ROLE_RANK, Membership, Project, Role

_converters: dict[tuple[type[Model], str], dict[str, list]] = {}


def _column_converters(model: type[Model]) -> dict[str, list]:
    """column -> [(converter, expression)], as the ORM's compiler applies them; derived once per model."""
    key = (model, connection.vendor)
    if key not in _converters:
        table = model._meta.db_table
        found = {}
        for field in model._meta.concrete_fields:
            col = field.get_col(table)
            funcs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            if funcs:
                found[field.column] = [(func, col) for func in funcs]
        _converters[key] = found
    return _converters[key]


def models_from_sql(*, model: type[Model], sql: str, params: Any) -> list:
    """Instances of `model` from one raw statement; columns that are not the model's become attributes.

    What Model.objects.raw() does, at a fraction of its per-call cost (it re-derives the column
    mapping and converters on every query), for the few statements on the annotators' hot path.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    if not rows:
        return []
    fields = model._meta.concrete_fields
    position = {name: i for i, name in enumerate(names)}
    order = [position.get(field.column) for field in fields]
    attnames = [field.attname for field in fields]
    # JSON (and, on SQLite, date) columns need the ORM's converters.
    converters = [(position[column], funcs) for column, funcs in _column_converters(model).items() if column in position]
    known = {field.column for field in fields}
    extras = [(i, name) for i, name in enumerate(names) if name not in known]
    out = []
    for row in rows:
        values = list(row)
        for i, funcs in converters:
            for func, col in funcs:
                values[i] = func(values[i], col, connection)
        instance = model.from_db(connection.alias, attnames, [DEFERRED if i is None else values[i] for i in order])
        for i, name in extras:
            setattr(instance, name, values[i])
        out.append(instance)
    return out


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

# One statement for the project and the caller's membership: this runs first on every project
# request, where the ORM's two queries cost more to compile than to run.
_PROJECT_WITH_ROLE_SQL = (
    "SELECT p.*, m.role AS caller_role FROM annotation_project p "
    "LEFT JOIN annotation_membership m ON m.project_id = p.id AND m.user_id = %s WHERE p.{column} = %s"
)


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
        column, value = "id", int(ref)
    else:
        column, value = "slug", ref
    found = models_from_sql(model=Project, sql=_PROJECT_WITH_ROLE_SQL.format(column=column), params=[user.pk, value])
    if not found:
        raise NotFound("Project not found.")
    project = found[0]
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


_USER_BY_TOKEN_SQL = "SELECT u.* FROM authtoken_token t JOIN {users} u ON u.id = t.user_id WHERE t.key = %s"


def user_get_by_token(*, key: str) -> AbstractBaseUser | None:
    """The user owning this API token (active or not: the caller decides), or None.

    One raw statement: DRF's lookup compiles a select_related query on every API request.
    """
    from django.contrib.auth import get_user_model

    users = get_user_model()
    found = models_from_sql(model=users, sql=_USER_BY_TOKEN_SQL.format(users=users._meta.db_table), params=[key])
    return found[0] if found else None


def projects_for_user(*, user: AbstractBaseUser):
    """Projects the user is a member of (all of them for a superuser), each with `caller_role`."""
    if getattr(user, "is_superuser", False):
        return Project.objects.annotate(caller_role=Value(Role.ADMIN.value, output_field=CharField()))
    role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return Project.objects.filter(memberships__user=user).annotate(caller_role=Subquery(role)).distinct()


def can_see_generation_settings(*, role: str | None) -> bool:
    """Model names and sampling settings are for engineers and admins: annotators rank blind."""
    return role is not None and ROLE_RANK[role] >= ROLE_RANK[Role.ENGINEER]
