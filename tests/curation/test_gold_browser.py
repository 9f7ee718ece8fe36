"""The gold flow from the task page in Debian's chromium at 1366x768: an admin finds the most
contested task from the list, reads it (responses side by side), ranks it with keys and a drag in
the annotators' ranking strip, saves it as gold (read back from the database), then sends it back
for one more ranking; no CSP violation or script error on the way."""
from __future__ import annotations

import pytest

from annotation.models import RankingTask
from tests import browser
from tests.browser import login
from tests.curation.helpers import build
from tests.frontend.browser_checks import assert_clean, watch

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page


def mouse_drag(page, source: str, target: str) -> None:
    start, end = page.locator(source).bounding_box(), page.locator(target).bounding_box()
    page.mouse.move(start["x"] + 5, start["y"] + 5)
    page.mouse.down()
    for i in range(1, 11):  # in steps: SortableJS's fallback mode follows the pointer
        page.mouse.move(start["x"] + 5 + (end["x"] + 2 - start["x"]) * i / 10, start["y"] + 5)
        page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_timeout(200)


def test_an_admin_finds_the_most_contested_task_and_marks_it_gold_by_keys_and_drag(browser_page, live_server):
    cur = build("gb")
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    problems = watch(page)
    login(page, live_server.url, cur.admin.username, f"pw-{cur.admin.username}")
    page.goto(f"{live_server.url}/projects/{cur.project.slug}/tasks/")
    page.select_option("#f-ordering", "agreement")
    with page.expect_navigation():
        page.click("#f-apply")
    first = page.locator("#tasks-table tbody tr >> nth=0")
    assert first.get_attribute("data-task") == str(cur.tasks["fight"].pk)
    with page.expect_navigation():
        first.locator("a").first.click()
    task = cur.tasks["fight"]
    a, b, c = sorted(task.responses.values_list("id", flat=True))

    # Side by side on a laptop screen: three cards in one row, nothing wider than the window.
    tops = [box["y"] for box in (page.locator(f"#cards .response >> nth={i}").bounding_box() for i in range(3))]
    assert max(tops) - min(tops) < 1
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert "0.000" in page.inner_text("#t-agreement")

    page.click("#gold-widget h3")  # focus away from any field: letters are the widget's
    page.keyboard.press("c")
    page.keyboard.press("=")
    page.keyboard.press("a")
    page.keyboard.press("b")
    assert page.locator("#ranking .tier").all_inner_texts() == ["C = A", "B"]
    mouse_drag(page, "#ranking .tier >> nth=1", "#ranking .tier >> nth=0")  # B to the first place
    assert page.locator("#ranking .tier").all_inner_texts() == ["B", "C = A"]
    with page.expect_navigation():
        page.keyboard.press("Enter")
    row = RankingTask.objects.get(pk=task.pk)
    assert row.is_gold and row.gold_ranking == [[b], [c, a]]
    assert page.locator("#gold-badge").is_visible() and page.inner_text("#t-gold") == "B > C = A"
    assert page.locator("#ranking .tier").all_inner_texts() == ["B", "C = A"]  # the widget starts from the saved gold

    with page.expect_navigation():
        page.click("#more-rankings")
    assert "one more ranking: overlap 4" in page.inner_text("main")
    assert RankingTask.objects.get(pk=task.pk).overlap == 4
    assert_clean(page, problems)
