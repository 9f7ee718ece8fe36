"""A removed member stops working at once: their leases end in the removal's transaction (slots back
to the pool), every later call on their assignments is refused, and their past rankings stay,
marked as a former member's, which agreement and exports can leave out."""
from __future__ import annotations

import pytest
from django.core.management import call_command

from annotation.models import Assignment, AssignmentStatus, Ranking, RankingTask
from annotation.services.export import export_options_from_input
from annotation.services.projects import membership_remove
from annotation.services.ranking_filter import ranking_filter_build, ranking_filter_queryset
from tests.ranking_helpers import make_member, make_project

pytestmark = [pytest.mark.django_db]


def _rank(client, project) -> dict:
    task = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    answer = client.post(f"/api/v1/assignments/{task['id']}/submit",
                         {"ranking": [[r["id"]] for r in task["responses"]]}, format="json")
    assert answer.status_code == 201, answer.content
    return task


def test_removing_a_member_ends_their_leases_and_refuses_every_later_call():
    project, admin = make_project(name="Removal", tasks=3, k=2, overlap=1)
    ann = make_member(project, "leaver")
    client = ann.client()
    leased = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
    task_id = Assignment.objects.get(pk=leased["id"]).task_id
    assert RankingTask.objects.get(pk=task_id).active_count == 1

    answer = admin.client().delete(f"/api/v1/projects/{project.pk}/members/{ann.user.pk}/")

    assert answer.status_code == 204
    assignment = Assignment.objects.get(pk=leased["id"])
    assert assignment.status == AssignmentStatus.EXPIRED and assignment.finished_at is not None
    assert RankingTask.objects.get(pk=task_id).active_count == 0  # the slot is back in the pool, counted exactly
    ranking = [[r["id"]] for r in leased["responses"]]
    for path, body in (("submit", {"ranking": ranking}), ("heartbeat", {}), ("skip", {"reason": "x"})):
        refused = client.post(f"/api/v1/assignments/{leased['id']}/{path}", body, format="json")
        assert refused.status_code in (403, 404), (path, refused.content)
        assert set(refused.json()["error"]) >= {"code", "message"}, path
    assert not Ranking.objects.exists()
    assert Assignment.objects.get(pk=leased["id"]).status == AssignmentStatus.EXPIRED
    assert RankingTask.objects.get(pk=task_id).active_count == 0
    # the freed slot goes to someone else
    other = make_member(project, "stayer").client().get(f"/api/v1/projects/{project.pk}/next-task").json()
    assert Assignment.objects.get(pk=other["id"]).task_id == task_id


def test_a_former_members_rankings_stay_marked_and_can_be_left_out_of_agreement_and_exports(tmp_path):
    project, admin = make_project(name="Former", tasks=2, k=2, overlap=2)
    leaver, stayer = make_member(project, "leaver"), make_member(project, "stayer")
    for member in (leaver, stayer):
        _rank(member.client(), project)
    membership_remove(project=project, user=leaver.user)

    assert Ranking.objects.filter(project=project).count() == 2  # past rankings stay
    everyone = ranking_filter_build(project=project, data={})
    members_only = ranking_filter_build(project=project, data={"exclude_former_members": True})
    assert ranking_filter_queryset(Ranking.objects.filter(project=project), everyone).count() == 2
    assert list(ranking_filter_queryset(Ranking.objects.filter(project=project), members_only)
                .values_list("annotator__username", flat=True)) == ["stayer"]

    # the agreement report marks them; with the filter it counts only current members
    report = admin.client().get(f"/api/v1/projects/{project.pk}/agreement").json()
    marked = {a["username"]: a["former_member"] for a in report["annotators"]}
    assert marked == {"leaver": True, "stayer": False}, report["annotators"]
    filtered = admin.client().get(f"/api/v1/projects/{project.pk}/agreement?exclude_former_members=true").json()
    assert [a["username"] for a in filtered["annotators"]] == ["stayer"]
    assert filtered["filters"]["exclude_former_members"] is True

    assert export_options_from_input({"format": "rankings", "exclude_former_members": True}).exclude_former_members
    out = tmp_path / "export"
    call_command("export_preferences", project.slug, "--format", "rankings", "--out", str(out),
                 "--exclude-former-members", "--test-fraction", "0", "--no-progress")
    import json
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert sum(len(r["annotations"]) for r in rows) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["filters"]["exclude_former_members"] is True
