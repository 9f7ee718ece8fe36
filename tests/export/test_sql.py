"""The export's raw SQL: names taken from the models, column lists that match them, and an ORM twin that agrees."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Prompt, Ranking, RankingTask, Response
from annotation.services.export import export_options_from_input, sql
from annotation.services.ranking_filter import ranking_filter_resolve

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def concrete(model) -> set[str]:
    return {f.name for f in model._meta.concrete_fields}


def test_every_column_list_names_concrete_fields_of_its_model():
    for model, names in [
        (Ranking, sql.RANKING_FIELDS + sql.RANKING_ORDER + sql.RANKING_FIELDS_NOT_EXPORTED),
        (Assignment, sql.ASSIGNMENT_FIELDS),
        (Response, sql.RESPONSE_FIELDS + sql.RESPONSE_DETAIL_FIELDS + sql.RESPONSE_FIELDS_NOT_EXPORTED),
        (Prompt, sql.PROMPT_FIELDS),
    ]:
        assert set(names) <= concrete(model), (model.__name__, set(names) - concrete(model))


def test_every_field_of_ranking_and_response_is_read_or_deliberately_left_out():
    # A new field on either model fails here until someone decides whether exports carry it.
    assert set(sql.RANKING_FIELDS) | set(sql.RANKING_FIELDS_NOT_EXPORTED) == concrete(Ranking)
    assert not set(sql.RANKING_FIELDS) & set(sql.RANKING_FIELDS_NOT_EXPORTED)
    read = set(sql.RESPONSE_FIELDS) | set(sql.RESPONSE_DETAIL_FIELDS)
    assert read | set(sql.RESPONSE_FIELDS_NOT_EXPORTED) == concrete(Response)
    assert not read & set(sql.RESPONSE_FIELDS_NOT_EXPORTED)


@pytest.mark.parametrize("fmt", ["pairs", "rankings"])
def test_the_statements_name_each_listed_column_quoted_from_meta(fmt):
    opts = export_options_from_input({"format": fmt, "exclude_flagged": True})
    statement, _ = sql.rankings_chunk_sql(opts, opts.ranking_filter)
    wanted = sql.RANKING_FIELDS if fmt == "rankings" else ("task", "tiers", "flags", "created_at")
    for name in wanted:
        assert sql.column("r", Ranking, name) in statement
    assert sql.table(Ranking) in statement
    responses = sql._responses_sql(fmt == "rankings")
    for name in sql.RESPONSE_FIELDS + (sql.RESPONSE_DETAIL_FIELDS if fmt == "rankings" else ()):
        assert sql.column("r", Response, name) in responses
    assert sql.table(RankingTask.responses.through) in responses


def test_a_renamed_column_is_followed_by_the_statements(monkeypatch):
    field = Ranking._meta.get_field("rationale")
    monkeypatch.setattr(field, "column", "why_text")
    opts = export_options_from_input({"format": "rankings"})
    statement, _ = sql.rankings_chunk_sql(opts, opts.ranking_filter)
    assert f"{connection.ops.quote_name('r')}.{connection.ops.quote_name('why_text')}" in statement
    assert '"rationale"' not in statement


def test_filter_values_travel_as_parameters_never_in_the_text(tricky):
    since = timezone.now() - dt.timedelta(days=1)
    opts = export_options_from_input({"format": "pairs", "since": since.isoformat(), "annotators": ["t-u1", "t-u2"]})
    resolved = ranking_filter_resolve(project=tricky["project"], ranking_filter=opts.ranking_filter)
    statement, params = sql.rankings_chunk_sql(opts, resolved)
    assert params == [since, sorted(u.id for u in tricky["users"][:2])]
    assert since.isoformat() not in statement and "t-u1" not in statement


@pytest.mark.parametrize("fmt", ["pairs", "unpaired", "rankings", "sft"])
@pytest.mark.parametrize("options", [{}, {"exclude_flagged": True}, {"annotators": ["t-u1", "t-u3"]},
                                     {"since": "2000-01-01", "until": "2100-01-01"}])
def test_the_orm_twin_reads_exactly_what_the_raw_sql_reads(tricky, fmt, options):
    opts = export_options_from_input({"format": fmt, **options})
    resolved = ranking_filter_resolve(project=tricky["project"], ranking_filter=opts.ranking_filter)
    tasks = list(RankingTask.objects.filter(project=tricky["project"]).values_list("id", "prompt_id"))
    task_ids, prompt_ids = [t for t, _ in tasks], sorted({p for _, p in tasks})
    fast = sql.fetch_chunk(opts, resolved, task_ids, prompt_ids, engine="sql")
    orm = sql.fetch_chunk(opts, resolved, task_ids, prompt_ids, engine="orm")
    assert fast == orm
    assert sum(map(len, fast.rankings.values())) == (3 if "annotators" in options else 4)


def test_submitted_at_text_is_what_isoformat_gives_with_and_without_microseconds(tricky):
    opts = export_options_from_input({"format": "rankings"})
    task_ids = [tricky["t1"].id]
    fast = sql.fetch_chunk(opts, opts.ranking_filter, task_ids, [tricky["t1"].prompt_id], engine="sql")
    stamps = dict(Ranking.objects.filter(task_id=tricky["t1"].id).values_list("annotator_id", "created_at"))
    texts = {row[0]: row[6] for row in fast.rankings[tricky["t1"].id]}
    assert texts == {user_id: stamp.isoformat() for user_id, stamp in stamps.items()}
    assert any(stamp.microsecond == 0 for stamp in stamps.values()) and any(stamp.microsecond for stamp in stamps.values())
