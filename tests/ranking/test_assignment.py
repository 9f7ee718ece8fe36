"""The next-task engine through its services: overlap, resume, priority, leases, skip, gold, blinding."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.errors import Conflict, NotFound
from annotation.models import Assignment, AssignmentStatus, Ranking, RankingTask
from annotation.services import assignment as engine
from annotation.services.assignment import (
    NoTask,
    assignment_heartbeat,
    assignment_lease_next,
    assignment_skip,
    assignments_expire_all,
    task_set_gold,
)
from annotation.services.ranking import ranking_submit
from tests.factories import make_member, make_ranked_project

pytestmark = [pytest.mark.django_db, pytest.mark.needs_postgres]


def submit_in_order(assignment: Assignment, annotator, **kwargs):
    shown = [opaque for opaque, _, _ in engine.assignment_display(assignment=assignment)]
    return ranking_submit(assignment_id=assignment.pk, annotator=annotator, ranking=[[o] for o in shown], **kwargs)


def counters(task_id: int) -> tuple[int, int, bool]:
    task = RankingTask.objects.get(pk=task_id)
    return task.active_count, task.submitted_count, task.is_complete


def test_a_live_lease_is_resumed_not_duplicated():
    project, _ = make_ranked_project(tasks=3, overlap=2)
    ann = make_member(project, "ann")
    first = assignment_lease_next(project=project, annotator=ann.user)
    again = assignment_lease_next(project=project, annotator=ann.user)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=ann.user).count() == 1
    assert counters(first.task_id) == (1, 0, False)


def test_overlap_is_never_exceeded_and_each_annotator_gets_a_task_once():
    project, _ = make_ranked_project(tasks=2, overlap=2)
    people = [make_member(project, f"ann{i}") for i in range(5)]
    got = {}
    for person in people[:4]:
        got[person.user.username] = assignment_lease_next(project=project, annotator=person.user)
    tasks = [a.task_id for a in got.values()]
    assert sorted(tasks.count(t) for t in set(tasks)) == [2, 2]
    # Everything is leased to others: the fifth annotator is told why, not given a third slot.
    nothing = assignment_lease_next(project=project, annotator=people[4].user)
    assert isinstance(nothing, NoTask) and nothing.code == "nothing_for_you"
    # Submitting does not free a slot; ann0 then cannot get its own task again.
    first = got["ann0"]
    submit_in_order(first, people[0].user)
    assert counters(first.task_id) == (2, 1, False)
    nxt = assignment_lease_next(project=project, annotator=people[0].user)
    assert isinstance(nxt, NoTask) or nxt.task_id != first.task_id


def test_highest_priority_first_then_oldest():
    project, _ = make_ranked_project(tasks=4, overlap=1)
    ids = list(RankingTask.objects.filter(project=project).order_by("id").values_list("id", flat=True))
    RankingTask.objects.filter(pk=ids[2]).update(priority=5)
    ann = make_member(project, "ann")
    order = []
    for _ in range(4):
        a = assignment_lease_next(project=project, annotator=ann.user)
        order.append(a.task_id)
        submit_in_order(a, ann.user)
    assert order == [ids[2], ids[0], ids[1], ids[3]]
    done = assignment_lease_next(project=project, annotator=ann.user)
    assert isinstance(done, NoTask) and done.code == "all_done"
    assert all(counters(i) == (1, 1, True) for i in ids)


def test_an_expired_lease_returns_its_slot_to_the_pool_at_the_next_claim():
    project, _ = make_ranked_project(tasks=1, overlap=1, lease_seconds=60)
    a, b = make_member(project, "a"), make_member(project, "b")
    past = timezone.now() - timedelta(minutes=5)
    lease = assignment_lease_next(project=project, annotator=a.user, now=past)
    assert isinstance(assignment_lease_next(project=project, annotator=b.user, now=past), NoTask)
    taken = assignment_lease_next(project=project, annotator=b.user)
    assert taken.task_id == lease.task_id
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.EXPIRED
    assert counters(lease.task_id) == (1, 0, False)
    # a's answer comes too late: the only slot is b's now.
    with pytest.raises(Conflict) as err:
        submit_in_order(Assignment.objects.get(pk=lease.pk), a.user)
    assert err.value.extra["reason"] == "lease_lost"
    assert Ranking.objects.count() == 0


def test_a_late_submission_is_kept_while_the_slot_is_free():
    project, _ = make_ranked_project(tasks=1, overlap=1, lease_seconds=60)
    a = make_member(project, "a")
    past = timezone.now() - timedelta(minutes=5)
    lease = assignment_lease_next(project=project, annotator=a.user, now=past)
    assert assignments_expire_all() == 1  # swept: status EXPIRED, slot free
    assert counters(lease.task_id) == (0, 0, False)
    result = submit_in_order(Assignment.objects.get(pk=lease.pk), a.user)
    assert result.late and not result.replayed
    assert counters(lease.task_id) == (1, 1, True)


def test_heartbeat_extends_the_lease_and_a_resumed_stale_lease_is_renewed():
    project, _ = make_ranked_project(tasks=1, overlap=1, lease_seconds=60)
    a = make_member(project, "a")
    lease = assignment_lease_next(project=project, annotator=a.user, now=timezone.now() - timedelta(seconds=50))
    before = lease.lease_expires_at
    beat = assignment_heartbeat(assignment_id=lease.pk, annotator=a.user)
    assert beat.lease_expires_at > before + timedelta(seconds=40)
    other = make_member(project, "other")
    with pytest.raises(NotFound):
        assignment_heartbeat(assignment_id=lease.pk, annotator=other.user)


def test_skip_frees_the_slot_and_the_task_never_comes_back_to_that_annotator():
    project, _ = make_ranked_project(tasks=1, overlap=1)
    a, b = make_member(project, "a"), make_member(project, "b")
    lease = assignment_lease_next(project=project, annotator=a.user)
    skipped = assignment_skip(assignment_id=lease.pk, annotator=a.user, reason="I cannot judge code")
    assert skipped.status == AssignmentStatus.SKIPPED and skipped.skip_reason == "I cannot judge code"
    assert counters(lease.task_id) == (0, 0, False)
    # A retried skip is answered like the first and releases nothing twice.
    assignment_skip(assignment_id=lease.pk, annotator=a.user, reason="again")
    assert counters(lease.task_id) == (0, 0, False)
    assert isinstance(assignment_lease_next(project=project, annotator=a.user), NoTask)
    assert assignment_lease_next(project=project, annotator=b.user).task_id == lease.task_id
    with pytest.raises(Conflict):
        submit_in_order(Assignment.objects.get(pk=lease.pk), a.user)


def test_gold_tasks_come_at_most_once_per_annotator_beyond_the_overlap_and_are_not_left_work():
    project, _ = make_ranked_project(tasks=10, overlap=1, gold_rate=0.999)
    gold = RankingTask.objects.filter(project=project).order_by("id").last()
    responses = list(gold.responses.order_by("id").values_list("id", flat=True))
    task_set_gold(task=gold, gold_ranking=[[responses[0]], responses[1:]])
    people = [make_member(project, f"g{i}") for i in range(3)]
    seen: dict[str, list[int]] = {p.user.username: [] for p in people}
    # Round-robin until nothing is left: gold is drawn at 99.9% per lease, so every annotator
    # meets it (almost always first), although its overlap is 1.
    while True:
        leased = 0
        for person in people:
            a = assignment_lease_next(project=project, annotator=person.user)
            if isinstance(a, NoTask):
                continue
            leased += 1
            seen[person.user.username].append(a.task_id)
            submit_in_order(a, person.user)
        if not leased:
            break
    assert all(tasks.count(gold.pk) == 1 for tasks in seen.values()), seen
    normal = [t for tasks in seen.values() for t in tasks if t != gold.pk]
    assert sorted(normal) == sorted(set(normal)) and len(normal) == 9  # overlap 1: each normal task once
    gold.refresh_from_db()
    assert gold.submitted_count == 3 and not gold.is_complete
    assert assignment_lease_next(project=project, annotator=people[0].user).code == "all_done"


def test_each_assignment_has_its_own_shuffled_order_and_opaque_ids():
    project, _ = make_ranked_project(tasks=1, overlap=40, k=4)
    orders, ids = set(), []
    for i in range(40):
        person = make_member(project, f"s{i}")
        a = assignment_lease_next(project=project, annotator=person.user)
        orders.add(tuple(a.display_order))
        ids.append(frozenset(a.opaque_ids))
        assert all(o.startswith("r") and o[1:].isdigit() for o in a.opaque_ids)
        assert sorted(a.opaque_ids.values()) == sorted(a.display_order)
    assert len(orders) > 5  # 24 possible orders; 40 draws all alike would be a broken shuffle
    assert len(set(ids)) > 20


def test_gold_ranking_must_name_every_response_of_the_task_once():
    project, _ = make_ranked_project(tasks=1, overlap=1)
    task = RankingTask.objects.get(project=project)
    rid = list(task.responses.values_list("id", flat=True))
    from annotation.errors import ApplicationError

    with pytest.raises(ApplicationError) as err:
        task_set_gold(task=task, gold_ranking=[[rid[0]], [rid[0]]])
    assert "gold_ranking" in err.value.fields
    task.refresh_from_db()
    assert not task.is_gold


def test_the_generic_claim_used_on_sqlite_respects_overlap_too(settings):
    settings.PORTABLE_SQL = True  # the portable twin, through the public service (tests/platform/test_portable_sql.py)
    project, _ = make_ranked_project(tasks=1, overlap=1)
    a, b = make_member(project, "a"), make_member(project, "b")
    assert not isinstance(assignment_lease_next(project=project, annotator=a.user), NoTask)
    assert isinstance(assignment_lease_next(project=project, annotator=b.user), NoTask)


@pytest.mark.needs_redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_periodic_celery_task_expires_overdue_leases(celery_worker):
    project, _ = make_ranked_project(tasks=2, overlap=1, lease_seconds=60)
    a = make_member(project, "a")
    lease = assignment_lease_next(project=project, annotator=a.user, now=timezone.now() - timedelta(minutes=5))
    from workers.tasks.assignment import expire_leases

    expire_leases.delay()
    deadline = time.monotonic() + 120  # generous: a busy machine, never a speed test
    while time.monotonic() < deadline and Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.LEASED:
        time.sleep(0.2)
    assert Assignment.objects.get(pk=lease.pk).status == AssignmentStatus.EXPIRED
    assert counters(lease.task_id) == (0, 0, False)
