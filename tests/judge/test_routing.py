"""Judge routing: with `uncertain`, confident tasks reach people only as an audit sample; the options and the dashboard."""
from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Assignment, Project, RankingTask, Role
from annotation.services.assignment import assignment_lease_next
from annotation.services.judge_routing import audited
from tests.export_factories import make_user
from tests.factories import api_client
from tests.judge.helpers import judged_project
from tests.judge.judge_server import JudgeServer

pytestmark = pytest.mark.django_db


def _route(slug: str, *, audit_rate: float, n: int = 6) -> tuple[Project, list]:
    project, tasks = judged_project(slug, n, k=2)
    Project.objects.filter(pk=project.pk).update(judge_routing="uncertain", judge_audit_rate=audit_rate)
    with JudgeServer() as server:  # p ~ 0.95 for the marked response, both orders: every ranking confident
        call_command("judge", slug, "--backend", "openai", "--model", "prefers-marker", "--base-url", server.base_url)
    return Project.objects.get(pk=project.pk), tasks


def test_confident_tasks_are_served_only_as_the_audit_sample(capsys):
    project, tasks = _route("route1", audit_rate=0.5, n=12)
    sample = {t.pk for t, _, _ in tasks if audited(project_id=project.pk, task_id=t.pk, rate=0.5)}
    assert 0 < len(sample) < 12  # a real sample, neither none nor all
    open_ids = set(RankingTask.objects.filter(project=project, is_complete=False).values_list("pk", flat=True))
    assert open_ids == sample
    # The counters stay the people's: nothing was submitted or leased by the judge.
    assert set(RankingTask.objects.filter(project=project).values_list("submitted_count", "active_count")) == {(0, 0)}
    annotator = make_user("route1-a")
    from annotation.models import Membership

    Membership.objects.create(user=annotator, project=project, role=Role.ANNOTATOR)
    served = set()
    for _ in range(len(sample) + 1):
        lease = assignment_lease_next(project=project, annotator=annotator)
        if not isinstance(lease, Assignment):
            break
        served.add(lease.task_id)
        Assignment.objects.filter(pk=lease.pk).update(status="skipped")
    assert served <= sample
    capsys.readouterr()
    call_command("agreement", "route1", "--json")
    import json

    routing = json.loads(capsys.readouterr().out)["judge"]["routing"]
    assert routing["confident_tasks"] == 12 and routing["audited_tasks"] == len(sample)
    assert routing["human_rankings_saved"] == (12 - len(sample)) * project.overlap


def test_with_routing_off_every_task_stays_open():
    project, _ = judged_project("route2", 3, k=2)
    with JudgeServer() as server:
        call_command("judge", "route2", "--backend", "openai", "--model", "prefers-marker", "--base-url", server.base_url)
    assert not RankingTask.objects.filter(project=project, is_complete=True).exists()


def test_routing_options_on_the_command_and_the_api_and_their_errors():
    call_command("create_project", "Routed", "--judge-routing", "uncertain", "--judge-confidence", "0.9", "--judge-audit-rate", "0.2")
    project = Project.objects.get(name="Routed")
    assert (project.judge_routing, project.judge_confidence, project.judge_audit_rate) == ("uncertain", 0.9, 0.2)
    with pytest.raises(CommandError) as info:
        call_command("create_project", "Bad", "--judge-routing", "sometimes")
    assert info.value.returncode == 2 and "judge_routing: must be one of off, uncertain" in str(info.value)
    admin = make_user("route-admin")
    type(admin).objects.filter(pk=admin.pk).update(is_staff=True)
    admin.refresh_from_db()
    bad = api_client(admin).post("/api/v1/projects/", {"name": "X", "judge_confidence": 0.2, "judge_audit_rate": 2}, format="json")
    assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"judge_confidence", "judge_audit_rate"}
    good = api_client(admin).post("/api/v1/projects/", {"name": "Y", "judge_routing": "uncertain"}, format="json")
    assert good.status_code == 201 and good.json()["judge_routing"] == "uncertain" and good.json()["judge_audit_rate"] == 0.1


def test_the_dashboard_shows_the_judge_beside_the_people_and_the_routing_saving():
    project, _ = _route("route3", audit_rate=0.0, n=3)
    engineer = make_user("route3-e")
    from annotation.models import Membership

    Membership.objects.create(user=engineer, project=project, role=Role.ENGINEER)
    from django.test import Client

    client = Client()
    client.force_login(engineer)
    page = client.get(f"/projects/{project.slug}/dashboard/").content.decode()
    assert "Judge against people" in page and "swap consistency" in page and "human-human agreement" in page
    assert 'data-judge-run="' in page and f"<strong>{3 * project.overlap}</strong> human rankings saved" in page
