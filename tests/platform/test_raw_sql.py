"""The raw SQL of the hot paths (annotation/sql): names from the models, every column listed, safe composition."""
from __future__ import annotations

import importlib
import pkgutil

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model

import annotation.sql
from annotation.models import Assignment, RankingTask
from annotation.services.access import project_get_for_user, user_get_by_token
from annotation.services.assignment import assignment_get_for_annotator, assignment_lease_next
from annotation.sql.names import COLUMN_LISTS, Names, Sql, concrete_field_names, render
from tests.factories import make_member, make_ranked_project

for _module in pkgutil.iter_modules(annotation.sql.__path__):
    importlib.import_module(f"annotation.sql.{_module.name}")  # every module declares its column lists on import


def _expected(model: type[Model], pk: bool) -> tuple[str, ...]:
    return concrete_field_names(model, pk=pk)


@pytest.mark.parametrize("listed", COLUMN_LISTS, ids=[c.statement for c in COLUMN_LISTS])
def test_each_raw_column_list_names_every_concrete_field_of_its_model(listed):
    # A field added to the model must be added here too: otherwise the raw INSERT or COPY would
    # leave it out (and fail where it has no database default) or a raw SELECT would defer it.
    assert set(listed.fields) == set(_expected(listed.model, listed.pk)), (
        f"{listed.statement}: update its column list and the values it writes to match {listed.model.__name__}'s fields"
    )
    assert len(listed.fields) == len(set(listed.fields))


def test_the_column_lists_cover_every_raw_insert_and_copy():
    assert {c.statement.split(" (")[0] for c in COLUMN_LISTS} >= {
        "assignment insert", "ranking insert", "prompt COPY", "response COPY"}


@pytest.mark.django_db
def test_rows_read_by_raw_statements_have_no_deferred_field():
    project, admin = make_ranked_project(name="Raw rows", tasks=2, k=3)
    ann = make_member(project, "ann")
    leased = assignment_lease_next(project=project, annotator=ann.user)
    resumed = assignment_lease_next(project=project, annotator=ann.user)  # the live-lease statement
    held = assignment_get_for_annotator(assignment_id=leased.pk, annotator=ann.user)
    fetched = project_get_for_user(user=ann.user, project_ref=project.slug)
    user = user_get_by_token(key=ann.token)
    assert resumed.pk == held.pk == leased.pk
    for row in (resumed, held, fetched, user):
        assert row.get_deferred_fields() == set(), type(row).__name__
    assert held.held_allow_ties is False and held.held_task_is_gold is False and fetched.caller_role == "annotator"
    assert (held.display_order, held.opaque_ids) == (leased.display_order, leased.opaque_ids)


def test_names_come_from_the_models_and_only_quoted_names_reach_the_text():
    t = Names(RankingTask, "t")
    assert render("SELECT {t.id} FROM {t} t WHERE {t.project} = %s", t=t) == (
        'SELECT t."id" FROM "annotation_rankingtask" t WHERE t."project_id" = %s')
    assert Names(Assignment).task == Names(Assignment).task_id == '"task_id"'
    with pytest.raises(TypeError):
        render("SELECT * FROM {t} WHERE id = {value}", t=t, value="1; DROP TABLE annotation_rankingtask")
    with pytest.raises(FieldDoesNotExist):
        render("SELECT {t.no_such_field} FROM {t} t", t=t)
    assert isinstance(Names(RankingTask).all, Sql)
