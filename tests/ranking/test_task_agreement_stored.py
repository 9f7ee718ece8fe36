"""Each task's agreement is stored on the task by the submission, through the real API."""
from __future__ import annotations

import pytest

from annotation.models import RankingTask, Role
from annotation.services.consensus import task_agreement
from tests.ranking_helpers import make_member, make_project

pytestmark = pytest.mark.django_db


def _rank(member, order: str) -> None:
    """Take the next task and rank it: 'asc' puts the responses in id order, 'desc' reverses it."""
    client = member.client()
    task = client.get(f"/api/v1/projects/{member.project_id}/next-task").json()
    opaque_by_response = {v: k for k, v in _opaque_ids(task["id"]).items()}
    ids = sorted(opaque_by_response)
    if order == "desc":
        ids.reverse()
    answer = client.post(
        f"/api/v1/assignments/{task['id']}/submit",
        {"ranking": [[opaque_by_response[i]] for i in ids]},
        format="json",
    )
    assert answer.status_code == 201, answer.content


def _opaque_ids(assignment_id: int) -> dict[str, int]:
    from annotation.models import Assignment

    return Assignment.objects.get(pk=assignment_id).opaque_ids


def test_agreement_is_null_below_two_rankings_then_follows_each_submission():
    project, _admin = make_project(name="Stored agreement", tasks=1, k=3, overlap=3)
    members = []
    for name in ("ann-a", "ann-b", "ann-c"):
        member = make_member(project, name, Role.ANNOTATOR)
        member.project_id = project.pk
        members.append(member)
    task = RankingTask.objects.get(project=project)

    _rank(members[0], "asc")
    task.refresh_from_db()
    assert task.agreement is None

    _rank(members[1], "asc")
    task.refresh_from_db()
    assert task.agreement == 1.0

    _rank(members[2], "desc")
    task.refresh_from_db()
    tiers = list(task.rankings.order_by("id").values_list("tiers", flat=True))
    assert task.agreement == task_agreement(tiers)
    assert task.agreement == round(1 / 3, 6)  # of the three annotator pairs only the two "asc" agree
