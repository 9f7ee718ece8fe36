"""Parallel tabs of one annotator: a tab that finds their lease lock taken shares their committed
lease at once instead of waiting, and waits only when there is nothing to share yet."""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from annotation.models import Assignment, AssignmentStatus
from annotation.services.assignment import NoTask, _annotator_lock_key, assignment_display, assignment_lease_next
from annotation.services.ranking import ranking_submit
from tests.ranking_helpers import make_member, make_project

pytestmark = [pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _wait(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


class LockHolder:
    """Another session of the annotator, in the middle of leasing: it holds their advisory lock."""

    def __init__(self, key: int) -> None:
        self.key, self.held, self.release = key, threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [self.key])
                self.held.set()
                self.release.wait(300)
        finally:
            connection.close()

    def __enter__(self) -> LockHolder:
        self.thread.start()
        assert self.held.wait(120)
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(120)


def lease_in_thread(project, user) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["lease"] = assignment_lease_next(project=project, annotator=user)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def waiting_on_an_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return cursor.fetchone()[0] > 0


def test_a_tab_gets_the_shared_lease_while_another_tab_holds_the_lock_and_waits_only_with_nothing_to_share():
    project, _ = make_project(name="Tabs share", tasks=3, k=3, overlap=1)
    person = make_member(project, "tabs")
    first = assignment_lease_next(project=project, annotator=person.user)
    key = _annotator_lock_key(project.pk, person.user.pk)

    with LockHolder(key):
        thread, out = lease_in_thread(project, person.user)
        thread.join(120)
        assert not thread.is_alive(), "answered while the other tab still held the lock"
        assert out["lease"].pk == first.pk

    # Nothing live to share (the lease was submitted): the tab waits for the other session, then claims.
    ranking_submit(assignment_id=first.pk, annotator=person.user,
                   ranking=[[opaque] for opaque, _, _ in assignment_display(assignment=first)])
    with LockHolder(key):
        thread, out = lease_in_thread(project, person.user)
        _wait(waiting_on_an_advisory_lock)
        assert thread.is_alive()
    thread.join(120)
    assert not isinstance(out["lease"], NoTask) and out["lease"].pk != first.pk
    assert Assignment.objects.filter(annotator=person.user, status=AssignmentStatus.LEASED).count() == 1
