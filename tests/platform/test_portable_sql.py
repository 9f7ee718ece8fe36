"""The portable twins of the PostgreSQL statements (SQLite in `make demo`), run through the public services.

PORTABLE_SQL=1 makes every service take its twin on PostgreSQL too; each test checks the twin
keeps the rule its PostgreSQL statement keeps, and, where both write rows, that they write the same.
"""
from __future__ import annotations

import io
import json

import pytest

from annotation.models import AgreementReport, Assignment, AssignmentStatus, Prompt, RankingTask, Response
from annotation.services.agreement_cache import agreement_mark_stale
from annotation.services.assignment import NoTask, assignment_display, assignment_lease_next
from annotation.services.importing import prompts_import
from annotation.services.projects import project_create
from annotation.services.ranking import ranking_submit
from annotation.sql import postgres_statements
from tests.factories import make_member, make_ranked_project

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def portable(settings):
    settings.PORTABLE_SQL = True
    assert not postgres_statements()


def test_the_portable_claim_respects_the_overlap_and_the_portable_store_counts(portable):
    project, _ = make_ranked_project(name="Twin claim", tasks=1, k=3, overlap=1)
    a, b = make_member(project, "a"), make_member(project, "b")
    lease = assignment_lease_next(project=project, annotator=a.user)
    assert not isinstance(lease, NoTask)
    assert isinstance(assignment_lease_next(project=project, annotator=b.user), NoTask)  # the only slot is a's

    shown = [[opaque] for opaque, _, _ in assignment_display(assignment=lease)]
    result = ranking_submit(assignment_id=lease.pk, annotator=a.user, ranking=shown)

    task = RankingTask.objects.get(pk=lease.task_id)
    assert (task.active_count, task.submitted_count, task.is_complete) == (1, 1, True)
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.SUBMITTED and result.ranking.pk
    nothing = assignment_lease_next(project=project, annotator=b.user)
    assert isinstance(nothing, NoTask) and nothing.code == "all_done"


def test_the_portable_stale_mark_claims_one_refresh(portable):
    project, _ = make_ranked_project(name="Twin stale", tasks=1, k=3)
    assert agreement_mark_stale(project_id=project.pk, claim=True) is True
    assert agreement_mark_stale(project_id=project.pk, claim=True) is False  # a refresh is already queued
    assert AgreementReport.objects.get(project=project).stale


def _import(project, body: bytes):
    return prompts_import(project=project, fileobj=io.BytesIO(body), file_format="jsonl")


def test_the_portable_import_writes_what_copy_writes(settings):
    lines = [{"id": f"q{i}", "prompt": f"Question {i}?", "metadata": {"n": i},
              "responses": [f"answer {i}.{j}" for j in range(3)]} for i in range(5)]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()

    def rows(project):
        prompts = list(Prompt.objects.filter(project=project).order_by("external_id")
                       .values_list("external_id", "messages", "metadata", "content_hash"))
        responses = list(Response.objects.filter(prompt__project=project).order_by("prompt__external_id", "sample_index")
                         .values_list("prompt__external_id", "run", "sample_index", "text", "text_hash", "finish_reason",
                                      "token_count", "model_name", "prompt_truncated"))
        return prompts, responses

    copied = project_create(name="By COPY")
    _import(copied, body)
    settings.PORTABLE_SQL = True
    bulk = project_create(name="By bulk insert")
    _import(bulk, body)

    assert rows(copied) == rows(bulk)
    assert len(rows(bulk)[1]) == 15 and RankingTask.objects.filter(project=bulk).count() == 5
