"""Adaptive overlap: a task completes at min_overlap rankings that agree, else takes one more
annotator at a time up to the overlap; exact under concurrency, through the real API on PostgreSQL."""
from __future__ import annotations

import random
import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, Q
from django.test import Client
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Project, Ranking, RankingTask
from annotation.services.assignment import assignments_expire
from annotation.services.consensus import task_agreement, task_consensus
from annotation.services.dashboard import dashboard_overlap
from tests.factories import next_task_retrying_gold_draws
from tests.ranking_helpers import make_member, make_project
from tests.threads import run_threads

pytestmark = [pytest.mark.needs_postgres]

ADAPTIVE = {"overlap": 5, "min_overlap": 2, "agreement_target": 0.8}


def _order(task: dict, reverse: bool = False) -> list[list[str]]:
    """The task's opaque ids ranked by the answer's number ("Answer 0 ..." best), or the reverse."""
    number = {r["id"]: int(re.match(r"Answer (\d+)", r["content"]).group(1)) for r in task["responses"]}
    return [[rid] for rid in sorted(number, key=number.get, reverse=reverse)]


def _rank(member, project, *, reverse: bool = False) -> int:
    client = member.client()
    task = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert task.status_code == 200, task.content
    result = client.post(f"/api/v1/assignments/{task.json()['id']}/submit", {"ranking": _order(task.json(), reverse)}, format="json")
    assert result.status_code == 201, result.content
    return result.json()["ranking_id"]


def _nothing_for(member, project) -> bool:
    return member.client().get(f"/api/v1/projects/{project.pk}/next-task").status_code == 204


@pytest.mark.django_db
def test_a_crowd_that_agrees_completes_each_task_at_min_overlap():
    project, admin = make_project(name="Agree", tasks=4, k=3, **ADAPTIVE)
    people = [make_member(project, f"agree{i}") for i in range(5)]
    for person in people[:2]:
        for _ in range(4):
            _rank(person, project)
    tasks = list(RankingTask.objects.filter(project=project))
    assert all(t.is_complete and t.submitted_count == 2 and t.agreement == 1.0 and t.target_overlap == 2 for t in tasks)
    assert _nothing_for(people[2], project), "complete at 2: nobody else gets them"
    saved = dashboard_overlap(project=project)
    assert (saved["spent"], saved["fixed"], saved["saved"]) == (8, 20, 12)
    assert saved["distribution"][2] == {"rankings": 2, "tasks": 4, "percent": 100}
    page = Client()
    page.force_login(admin.user)
    html = page.get(f"/projects/{project.slug}/dashboard/").content.decode()
    assert "Adaptive overlap saved <strong>12</strong> rankings" in html
    assert "4 complete tasks took 8 rankings, where a fixed overlap of 5 takes 20" in html


@pytest.mark.django_db
def test_a_crowd_that_disagrees_escalates_one_annotator_at_a_time_up_to_the_overlap():
    project, _ = make_project(name="Disagree", tasks=1, k=3, **ADAPTIVE)
    people = [make_member(project, f"dis{i}") for i in range(7)]
    task = RankingTask.objects.get(project=project)
    # Two leases fill what the task may get now: a third annotator waits.
    first, second = (p.client().get(f"/api/v1/projects/{project.pk}/next-task").json() for p in people[:2])
    assert _nothing_for(people[2], project)
    for person, held, reverse in ((people[0], first, False), (people[1], second, True)):
        submitted = person.client().post(f"/api/v1/assignments/{held['id']}/submit", {"ranking": _order(held, reverse)}, format="json")
        assert submitted.status_code == 201
    task.refresh_from_db()
    assert (task.is_complete, task.submitted_count, task.target_overlap, task.agreement) == (False, 2, 3, 0.0)
    # One more at a time: the third gets it, the fourth waits until the third has submitted.
    third = people[2].client().get(f"/api/v1/projects/{project.pk}/next-task").json()
    assert _nothing_for(people[3], project)
    people[2].client().post(f"/api/v1/assignments/{third['id']}/submit", {"ranking": _order(third)}, format="json")
    for i, person in enumerate(people[3:5]):
        _rank(person, project, reverse=(i % 2 == 0))
    task.refresh_from_db()
    assert (task.is_complete, task.submitted_count, task.target_overlap) == (True, 5, 5)
    assert task.agreement < 0.8
    assert _nothing_for(people[5], project), "never above the overlap"
    assert dashboard_overlap(project=project)["saved"] == 0


@pytest.mark.django_db
def test_fixed_overlap_is_the_default_and_unchanged():
    project, _ = make_project(name="Fixed", tasks=1, k=3, overlap=3)
    assert project.min_overlap is None and not project.is_adaptive
    people = [make_member(project, f"fixed{i}") for i in range(4)]
    for person in people[:2]:
        _rank(person, project)  # they agree, yet a fixed overlap asks for three
    task = RankingTask.objects.get(project=project)
    assert not task.is_complete
    _rank(people[2], project)
    task.refresh_from_db()
    assert task.is_complete and task.submitted_count == 3


@pytest.mark.django_db
def test_a_late_submission_keeps_a_slot_the_rule_still_allows_and_loses_one_it_does_not():
    project, _ = make_project(name="Late", tasks=2, k=3, **ADAPTIVE)
    late_one, a, b = (make_member(project, name) for name in ("late", "lateA", "lateB"))
    held = late_one.client().get(f"/api/v1/projects/{project.pk}/next-task").json()
    with_task = Assignment.objects.get(pk=held["id"])
    Assignment.objects.filter(pk=held["id"]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert assignments_expire(project_id=project.pk) == 1
    # Two others agree on the task the late annotator held: complete at 2, the late answer is refused.
    for person in (a, b):
        client = person.client()
        while True:
            got = client.get(f"/api/v1/projects/{project.pk}/next-task").json()
            if Assignment.objects.get(pk=got["id"]).task_id == with_task.task_id:
                client.post(f"/api/v1/assignments/{got['id']}/submit", {"ranking": _order(got)}, format="json")
                break
            client.post(f"/api/v1/assignments/{got['id']}/skip", {"reason": "later"}, format="json")
    late = late_one.client().post(f"/api/v1/assignments/{held['id']}/submit", {"ranking": _order(held)}, format="json")
    assert late.status_code == 409 and late.json()["error"]["reason"] == "lease_lost"
    assert RankingTask.objects.get(pk=with_task.task_id).submitted_count == 2


@pytest.mark.django_db
def test_create_project_takes_the_adaptive_options(capsys):
    call_command("create_project", "Adaptive cmd", "--overlap", "5", "--min-overlap", "2", "--agreement-target", "0.75")
    project = Project.objects.get(slug=capsys.readouterr().out.strip())
    assert (project.overlap, project.min_overlap, project.agreement_target, project.is_adaptive) == (5, 2, 0.75, True)
    staff = make_member(None, "adaptive-staff")
    staff.user.is_staff = True
    staff.user.save()
    body = {"name": "Adaptive api", "overlap": 4, "min_overlap": 2, "agreement_target": 0.9}
    created = staff.client().post("/api/v1/projects/", body, format="json")
    assert created.status_code == 201, created.content
    assert {key: created.json()[key] for key in ("overlap", "min_overlap", "agreement_target")} == {
        "overlap": 4, "min_overlap": 2, "agreement_target": 0.9}
    fixed = staff.client().post("/api/v1/projects/", {"name": "Fixed api", "overlap": 4}, format="json").json()
    assert fixed["min_overlap"] == 4, "the default: fixed overlap"


def _open_for(person, project) -> bool:
    """Some task is not complete and this annotator never had it."""
    return RankingTask.objects.filter(project=project, is_complete=False).exclude(assignments__annotator=person.user).exists()


def _agree(tiers: list, *, rule: str, target: float) -> bool:
    """The rule written out again here (not adaptive_decided), so the test checks the service against it."""
    if rule == "consensus":  # the Borda consensus orders every response strictly
        return all(len(tier) == 1 for tier in task_consensus(tiers).tiers)
    value = task_agreement(tiers)
    return value is not None and value >= target


def _allowed_now(tiers: list, *, first: int, most: int, target: float, rule: str = "agreement") -> int:
    """The rankings the rule lets a task have, replaying its rankings in order."""
    allowed = first
    while allowed < most and len(tiers) >= allowed:
        if _agree(tiers[:allowed], rule=rule, target=target):
            break
        allowed += 1
    return allowed


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rule", ["agreement", "consensus"])
def test_many_annotators_at_once_never_exceed_what_the_rule_allows_and_counters_equal_rows(rule):
    project, _ = make_project(name=f"Adaptive crowd {rule}", tasks=60, k=3, overlap=4, min_overlap=2, agreement_target=0.8,
                              adaptive_rule=rule)
    people = [make_member(project, f"ac{i}") for i in range(12)]

    def annotate(person, seed):
        rng = random.Random(seed)
        client = person.client()
        deadline = time.monotonic() + 300
        while True:
            response = client.get(f"/api/v1/projects/{project.pk}/next-task")
            if response.status_code == 204:
                # Nothing now may mean others hold the slots a task allows; it may open one more.
                if time.monotonic() > deadline or not _open_for(person, project):
                    return
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.content
            task = response.json()
            if rng.random() < 0.05:
                client.post(f"/api/v1/assignments/{task['id']}/skip", {"reason": "unsure"}, format="json")
                continue
            ranking = _order(task, reverse=rng.random() < 0.3)  # a noisy crowd: some tasks agree, some escalate
            result = client.post(f"/api/v1/assignments/{task['id']}/submit", {"ranking": ranking}, format="json")
            assert result.status_code == 201, result.content

    run_threads(annotate, [(person, i) for i, person in enumerate(people)])

    rows = RankingTask.objects.filter(project=project).annotate(
        live=Count("assignments", filter=Q(assignments__status__in=[AssignmentStatus.LEASED, AssignmentStatus.SUBMITTED]), distinct=True),
        done=Count("assignments", filter=Q(assignments__status=AssignmentStatus.SUBMITTED), distinct=True),
        ranked=Count("rankings", distinct=True),
    )
    sizes = set()
    for task in rows:
        tiers = list(Ranking.objects.filter(task=task).order_by("id").values_list("tiers", flat=True))
        allowed = _allowed_now(tiers, first=2, most=4, target=0.8, rule=rule)
        assert task.active_count == task.live == task.done == task.ranked == task.submitted_count, task
        assert task.submitted_count == allowed == task.target_overlap <= 4, (task, allowed)
        assert task.is_complete, "twelve annotators are enough for every task"
        assert task.agreement == task_agreement(tiers)
        sizes.add(task.submitted_count)
    assert not Assignment.objects.values("task", "annotator").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED).exists()
    assert 2 in sizes and len(sizes) > 1, f"the noisy crowd both agreed and escalated: {sizes}"


def _rank_when_served(member, project, *, reverse: bool = False) -> None:
    body = next_task_retrying_gold_draws(member.client(), project)
    member.client().post(f"/api/v1/assignments/{body['id']}/submit", {"ranking": _order(body, reverse)}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize(("reverse_second", "complete", "target"), [(False, True, 2), (True, False, 3)], ids=["agree", "disagree"])
def test_a_task_no_longer_gold_follows_the_adaptive_rule(reverse_second, complete, target):
    from annotation.services.assignment import task_set_gold

    project, _ = make_project(name=f"Gold {reverse_second}", tasks=1, k=3, gold_rate=0.999, **ADAPTIVE)
    task = RankingTask.objects.get(project=project)
    task_set_gold(task=task, gold_ranking=[[rid] for rid in task.responses.values_list("id", flat=True)])
    _rank_when_served(make_member(project, f"g1{reverse_second}"), project)
    _rank_when_served(make_member(project, f"g2{reverse_second}"), project, reverse=reverse_second)
    task.refresh_from_db()
    assert task.submitted_count == 2 and not task.is_complete, "gold tasks stay open"
    task = task_set_gold(task=task, gold_ranking=None)
    task.refresh_from_db()
    assert (task.is_complete, task.target_overlap) == (complete, target)
    if not complete:
        _rank_when_served(make_member(project, f"g3{reverse_second}"), project)
        task.refresh_from_db()
        assert task.submitted_count == 3


CONSENSUS = {**ADAPTIVE, "adaptive_rule": "consensus"}


def _ranked_as(task: dict, numbers: list[int]) -> list[list[str]]:
    """The task's opaque ids in the order of the answers' numbers given ("Answer 2", then ...)."""
    by_number = {int(re.match(r"Answer (\d+)", r["content"]).group(1)): r["id"] for r in task["responses"]}
    return [[by_number[n]] for n in numbers]


def _submit_as(member, project, numbers: list[int]) -> None:
    client = member.client()
    task = client.get(f"/api/v1/projects/{project.pk}/next-task")
    assert task.status_code == 200, task.content
    result = client.post(f"/api/v1/assignments/{task.json()['id']}/submit", {"ranking": _ranked_as(task.json(), numbers)},
                         format="json")
    assert result.status_code == 201, result.content


@pytest.mark.django_db
@pytest.mark.parametrize(("rule", "complete", "target_overlap"), [("agreement", False, 3), ("consensus", True, 2)])
def test_the_consensus_rule_completes_when_the_consensus_has_no_tie_however_low_the_agreement(rule, complete, target_overlap):
    # 0 > 1 > 2 and 2 > 0 > 1 agree on one pair of three (agreement 1/3), yet their Borda consensus is
    # strict: 0 (2 + 1) > 2 (0 + 2) > 1 (1 + 0). The agreement rule asks for a third, the consensus rule does not.
    project, _ = make_project(name=f"Strict {rule}", tasks=1, k=3, **{**ADAPTIVE, "adaptive_rule": rule})
    first, second, third = (make_member(project, f"strict{rule}{i}") for i in range(3))
    _submit_as(first, project, [0, 1, 2])
    _submit_as(second, project, [2, 0, 1])
    task = RankingTask.objects.get(project=project)
    assert round(task.agreement, 4) == round(1 / 3, 4)
    assert (task.is_complete, task.submitted_count, task.target_overlap) == (complete, 2, target_overlap)
    assert _nothing_for(third, project) == complete


@pytest.mark.django_db
def test_the_consensus_rule_takes_one_more_annotator_while_the_consensus_has_a_tie():
    project, _ = make_project(name="Tied", tasks=1, k=4, **CONSENSUS)
    people = [make_member(project, f"tied{i}") for i in range(6)]
    _submit_as(people[0], project, [0, 1, 2, 3])
    _submit_as(people[1], project, [1, 0, 2, 3])  # Borda 0: 3 + 2 = 1: 2 + 3, a tie
    task = RankingTask.objects.get(project=project)
    assert (task.is_complete, task.submitted_count, task.target_overlap) == (False, 2, 3)
    _submit_as(people[2], project, [2, 3, 0, 1])  # 0: 6, 1: 5, 2: 5, 3: 2, another tie
    task.refresh_from_db()
    assert (task.is_complete, task.submitted_count, task.target_overlap) == (False, 3, 4)
    _submit_as(people[3], project, [0, 1, 2, 3])  # 0: 9, 1: 7, 2: 6, 3: 2: strict
    task.refresh_from_db()
    assert (task.is_complete, task.submitted_count, task.target_overlap) == (True, 4, 4)
    assert _nothing_for(people[4], project)
    assert dashboard_overlap(project=project)["saved"] == 1


@pytest.mark.django_db
def test_the_consensus_rule_stops_at_the_overlap_whatever_the_consensus():
    project, _ = make_project(name="Never strict", tasks=1, k=4, overlap=3, min_overlap=2, adaptive_rule="consensus")
    people = [make_member(project, f"never{i}") for i in range(4)]
    for person, numbers in zip(people[:3], ([0, 1, 2, 3], [1, 0, 2, 3], [2, 3, 0, 1]), strict=True):
        _submit_as(person, project, numbers)
    task = RankingTask.objects.get(project=project)
    assert (task.is_complete, task.submitted_count) == (True, 3), "at the overlap, complete with a tie (1 and 2)"
    assert _nothing_for(people[3], project)


@pytest.mark.django_db
@pytest.mark.parametrize(("second", "complete", "target"), [([2, 0, 1], True, 2), ([2, 1, 0], False, 3)], ids=["strict", "tie"])
def test_a_task_no_longer_gold_follows_the_consensus_rule(second, complete, target):
    from annotation.services.assignment import task_set_gold

    project, _ = make_project(name=f"Gold consensus {second}", tasks=1, k=3, gold_rate=0.999, **CONSENSUS)
    task = RankingTask.objects.get(project=project)
    task_set_gold(task=task, gold_ranking=[[rid] for rid in task.responses.values_list("id", flat=True)])
    for i, numbers in enumerate(([0, 1, 2], second)):
        member = make_member(project, f"gc{i}{second}")
        body = next_task_retrying_gold_draws(member.client(), project)
        member.client().post(f"/api/v1/assignments/{body['id']}/submit", {"ranking": _ranked_as(body, numbers)}, format="json")
    task.refresh_from_db()
    assert task.submitted_count == 2 and not task.is_complete, "gold tasks stay open"
    task = task_set_gold(task=task, gold_ranking=None)
    task.refresh_from_db()
    assert (task.is_complete, task.target_overlap) == (complete, target)


@pytest.mark.django_db
def test_the_adaptive_rule_is_an_option_of_the_command_and_the_api(capsys):
    call_command("create_project", "Consensus cmd", "--overlap", "4", "--min-overlap", "2", "--adaptive-rule", "consensus")
    project = Project.objects.get(slug=capsys.readouterr().out.strip())
    assert (project.adaptive_rule, project.is_adaptive) == ("consensus", True)
    staff = make_member(None, "consensus-staff")
    staff.user.is_staff = True
    staff.user.save()
    created = staff.client().post("/api/v1/projects/", {"name": "Consensus api", "overlap": 4, "min_overlap": 2,
                                                        "adaptive_rule": "consensus"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["adaptive_rule"] == "consensus"
    assert dashboard_overlap(project=Project.objects.get(pk=created.json()["id"]))["adaptive_rule"] == "consensus"
    default = staff.client().post("/api/v1/projects/", {"name": "Agreement api", "overlap": 4, "min_overlap": 2}, format="json")
    assert default.json()["adaptive_rule"] == "agreement", "the default: the agreement target"
