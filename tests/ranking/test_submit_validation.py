"""A submission's rules live in ranking_validate: the API answers with its messages, not a serializer's."""
from __future__ import annotations

import pytest

from annotation.models import Assignment, Ranking
from annotation.services.assignment import assignment_get_for_annotator
from annotation.services.ranking import MAX_DURATION_SECONDS, MAX_RATIONALE, ranking_validate
from tests.factories import make_member, make_ranked_project

pytestmark = [pytest.mark.django_db]

# field -> (a bad value, everything else valid)
BAD = {
    "rating": 0,
    "rationale": "x" * (MAX_RATIONALE + 1),
    "duration_seconds": MAX_DURATION_SECONDS + 1,
    "flags": {"r999999": ["harmful"]},
}


@pytest.mark.parametrize("field", list(BAD))
def test_the_api_refuses_a_bad_field_with_the_services_own_message(field):
    project, _ = make_ranked_project(name="Rules", tasks=1, k=3)
    ann = make_member(project, "ann")
    client = ann.client()
    task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    ranking = [[r["id"]] for r in task["responses"]]

    answer = client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": ranking, field: BAD[field]}, format="json")

    assignment = assignment_get_for_annotator(assignment_id=task["id"], annotator=ann.user)
    expected = ranking_validate(assignment=assignment, ranking=ranking, **{field: BAD[field]})
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == expected and set(expected) == {field}
    assert not Ranking.objects.exists() and Assignment.objects.get(pk=task["id"]).status == "leased"
