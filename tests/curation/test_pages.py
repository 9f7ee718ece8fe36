"""The task browser's pages through Django's client: the list's filters and paging, the task page
with everything side by side (names for admins, pseudonyms for engineers), the admins' actions
from the page, one task and a filtered selection, and the role rules of the API."""
from __future__ import annotations

import pytest

from annotation.models import RankingTask, Role
from tests.curation.helpers import build
from tests.export_factories import make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def cur():
    return build()


def test_the_list_filters_orders_and_links_each_task(cur, client):
    client.force_login(cur.engineer)
    slug = cur.project.slug
    page = client.get(f"/projects/{slug}/tasks/", {"ordering": "agreement", "agreement_lt": "0.5"})
    assert [row["id"] for row in page.context["rows"]] == [cur.tasks["fight"].pk, cur.tasks["split"].pk]
    html = page.content.decode()
    assert f'href="/projects/{slug}/tasks/{cur.tasks["fight"].pk}/"' in html and "Write a haiku about databases." in html
    assert 'id="bulk-form"' not in html  # engineers read only
    assert page.context["counts"] == {"total": 5, "open": 1, "in_progress": 2, "complete": 2}
    searched = client.get(f"/projects/{slug}/tasks/", {"q": "Marseille"}).context["rows"]
    assert [row["id"] for row in searched] == [cur.tasks["split"].pk]
    bad = client.get(f"/projects/{slug}/tasks/", {"agreement_lt": "lots"})
    assert bad.status_code == 400 and "agreement_lt" in bad.content.decode()


def test_the_list_pages_through_every_task(cur, client, settings):
    from frontend.views import tasks as view

    client.force_login(cur.admin)
    settings.DEBUG = False
    old, view.PAGE = view.PAGE, 2
    try:
        seen, url = [], f"/projects/{cur.project.slug}/tasks/?ordering=-priority"
        while url:
            page = client.get(url)
            seen += [row["id"] for row in page.context["rows"]]
            url = page.context["next"] and f"/projects/{cur.project.slug}/tasks/{page.context['next']}"
        assert len(seen) == 5 and len(set(seen)) == 5
    finally:
        view.PAGE = old


def test_the_task_page_shows_everything_with_names_for_admins_and_pseudonyms_for_engineers(cur, client):
    task = cur.tasks["split"]
    url = f"/projects/{cur.project.slug}/tasks/{task.pk}/"
    client.force_login(cur.admin)
    html = client.get(url).content.decode()
    for text in ("What is the capital of France?", "Paris.", "Lyon.", "Marseille, obviously.", "cur-r2", "third one is wrong",
                 "factual_error", "C: factual_error", "A &gt; B &gt; C", "0.333", "Borda", "BT", "sample 0", "imported", 'id="curate"',
                 'id="gold-config"', "12.5"):
        assert text in html, text
    client.force_login(cur.engineer)
    html = client.get(url).content.decode()
    assert "cur-r" not in html and "annotator-" in html and 'id="curate"' not in html and "gold.js" not in html


def test_annotators_get_403_outsiders_404_and_another_projects_task_404(cur, client):
    task = cur.tasks["split"]
    url = f"/projects/{cur.project.slug}/tasks/{task.pk}/"
    client.force_login(cur.annotator)
    assert client.get(url).status_code == 403 and client.get(f"/projects/{cur.project.slug}/tasks/").status_code == 403
    outsider = make_user("page-outsider")
    elsewhere = make_project("page-elsewhere", members={outsider: Role.ADMIN})
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get(f"/projects/{elsewhere.slug}/tasks/{task.pk}/").status_code == 404  # not under another project's address
    assert client.post(f"/projects/{elsewhere.slug}/tasks/{task.pk}/action/", {"action": "exclude"}).status_code == 404
    client.force_login(cur.engineer)
    assert client.post(f"{url}action/", {"action": "exclude"}).status_code == 403
    assert client.post(f"/projects/{cur.project.slug}/tasks/bulk/", {"action": "exclude"}).status_code == 403
    assert not RankingTask.objects.filter(excluded=True).exists()


def test_an_admin_changes_priority_sends_back_and_excludes_from_the_task_page(cur, client):
    task = cur.tasks["agree"]
    url = f"/projects/{cur.project.slug}/tasks/{task.pk}/"
    client.force_login(cur.admin)
    assert client.post(f"{url}action/", {"action": "priority", "priority": "-4"}).status_code == 302
    assert client.post(f"{url}action/", {"action": "more_rankings"}).status_code == 302
    assert client.post(f"{url}action/", {"action": "exclude"}).status_code == 302
    row = RankingTask.objects.get(pk=task.pk)
    assert (row.priority, row.overlap, row.is_complete, row.submitted_count, row.excluded) == (-4, 4, False, 3, True)
    page = client.get(url, follow=True).content.decode()
    assert "excluded from exports" in page and "overlap 4 → 5" in page
    response = client.post(f"{url}action/", {"action": "priority", "priority": "urgent"}, follow=True)
    assert "priority: must be a 32-bit integer" in response.content.decode()
    assert RankingTask.objects.get(pk=task.pk).priority == -4


def test_bulk_actions_from_the_list_apply_to_the_filtered_selection(cur, client):
    client.force_login(cur.admin)
    slug = cur.project.slug
    html = client.get(f"/projects/{slug}/tasks/", {"status": "complete"}).content.decode()
    assert 'id="bulk-form"' in html and '<input type="hidden" name="status" value="complete">' in html
    response = client.post(f"/projects/{slug}/tasks/bulk/", {"status": "complete", "action": "priority", "priority": "8"}, follow=True)
    assert "priority: 2 tasks changed." in response.content.decode()
    assert sorted(RankingTask.objects.filter(priority=8).values_list("id", flat=True)) == sorted(
        [cur.tasks["agree"].pk, cur.tasks["split"].pk])
    client.post(f"/projects/{slug}/tasks/bulk/", {"status": "complete", "action": "more_rankings"})
    assert RankingTask.objects.filter(project=cur.project, is_complete=True).count() == 0
    response = client.post(f"/projects/{slug}/tasks/bulk/", {"action": "drop"}, follow=True)
    assert "action: must be one of" in response.content.decode()


def test_the_list_page_takes_as_many_queries_for_many_rows_as_for_few(cur, client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.export_factories import make_task

    client.force_login(cur.admin)
    url = f"/projects/{cur.project.slug}/tasks/?ordering=agreement&flagged=false"

    def count() -> int:
        client.get(url)  # the session and the user are cached after the first request
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    few = count()
    for i in range(20):
        make_task(cur.project, f"Extra question {i}?", [f"yes {i}", f"no {i}", f"maybe {i}"])
    assert count() == few
