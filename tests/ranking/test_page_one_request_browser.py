"""The ranking page in chromium costs one request per ranking: each submit carries next=true and the
prefetched task as after=, and next-task is only asked for the first task and its prefetch."""
from __future__ import annotations

import time

import pytest

from annotation.models import Assignment, AssignmentStatus, Ranking
from tests import browser
from tests.browser import login
from tests.ranking_helpers import make_member, make_project

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page  # the shared fixture, made visible to this module


def current_assignment(page) -> Assignment:
    page.wait_for_selector("#task:not([hidden])")
    return Assignment.objects.get(pk=int(page.get_attribute("#task", "data-assignment")))


def wait_for_next(page, previous: Assignment) -> None:
    page.wait_for_function(
        "prev => { const t = document.querySelector('#task'); const e = document.querySelector('#empty');"
        " return (t && !t.hidden && t.dataset.assignment !== String(prev)) || (e && !e.hidden); }",
        arg=previous.pk,
    )


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_four_rankings_cost_four_submits_and_the_first_two_next_tasks(browser_page, live_server):
    page = browser_page
    project, _ = make_project(name="One trip page", tasks=6, k=3, overlap=1)
    ann = make_member(project, "one-trip")
    login(page, live_server.url, "one-trip", ann.password)
    calls: list[tuple[str, str]] = []
    answered: list[str] = []
    page.on("request", lambda r: calls.append((r.method, r.url)) if "/api/v1/" in r.url else None)
    page.on("response", lambda r: answered.append(r.url) if "/next-task" in r.url else None)
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    # The first task and its prefetch are both answered before the first ranking: a submit sent
    # while the prefetch is still in flight has nothing to name in after= (a busy machine's timing).
    deadline = time.monotonic() + 120
    while len(answered) < 2:  # page.wait_for_timeout, not sleep: playwright delivers events while it runs
        assert time.monotonic() < deadline, f"the first task and its prefetch were not both answered: {answered}"
        page.wait_for_timeout(100)

    shown = []
    for _ in range(4):
        task = current_assignment(page)
        shown.append(task.pk)
        for key in "abc":
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_for_next(page, task)
    wait_until(lambda: Ranking.objects.filter(annotator=ann.user).count() == 4)

    submits = [url for method, url in calls if method == "POST" and "/submit" in url]
    next_tasks = [url for method, url in calls if method == "GET" and "/next-task" in url]
    assert len(submits) == 4 and all("next=true" in url for url in submits)
    assert all("after=" in url for url in submits), "each submit names the prefetched task"
    assert len(next_tasks) == 2, next_tasks  # the first task and its prefetch, then never again
    assert len(set(shown)) == 4
    # The page holds the shown task and one prefetched: never more than two live leases.
    assert ann.user.assignments.filter(status=AssignmentStatus.LEASED).count() == 2
