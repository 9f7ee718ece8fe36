"""The statements that run first on every request: the project with the caller's role, the token's user."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model
from rest_framework.authtoken.models import Token

from annotation.models import Membership, Project
from annotation.sql.names import Names, per_vendor, render
from annotation.sql.rows import models_from_sql


@per_vendor
def _project_with_role_sql(by: str) -> str:
    # One statement for the project and the caller's membership: the ORM's two queries cost more to
    # compile than to run, and this is the first query of every project request.
    p, m = Names(Project, "p"), Names(Membership, "m")
    key = {"id": p.id, "slug": p.slug}[by]
    return render(
        "SELECT {p.all}, {m.role} AS caller_role FROM {p} p "
        "LEFT JOIN {m} m ON {m.project} = {p.id} AND {m.user} = %s WHERE {key} = %s",
        p=p, m=m, key=key,
    )


def project_with_role(*, user_id: int, project_id: int | None = None, slug: str | None = None) -> Project | None:
    """The project by id or by slug, with `caller_role` (the user's membership role, or None)."""
    by, value = ("id", project_id) if project_id is not None else ("slug", slug)
    found = models_from_sql(model=Project, sql=_project_with_role_sql(by), params=[user_id, value])
    return found[0] if found else None


@per_vendor
def _user_by_token_sql() -> str:
    u, t = Names(get_user_model(), "u"), Names(Token, "t")
    return render("SELECT {u.all} FROM {t} t JOIN {u} u ON {u.id} = {t.user} WHERE {t.key} = %s", u=u, t=t)


def user_by_token(*, key: str) -> Model | None:
    """The user owning this API token (active or not), or None: one statement, no select_related compile."""
    found: list[Any] = models_from_sql(model=get_user_model(), sql=_user_by_token_sql(), params=[key])
    return found[0] if found else None
