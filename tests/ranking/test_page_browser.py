"""The ranking page in Debian's chromium: keyboard, drag and drop, skip, escaping; rankings read back from the database."""
from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Ranking
from annotation.services.importing import prompts_import
from annotation.services.projects import project_create
from tests import browser
from tests.browser import login
from tests.factories import make_member

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page  # the shared fixture, made visible to this module
SHOT = Path(settings.MEDIA_ROOT) / "ranking-page-short-tasks.png"

INSTRUCTIONS = """Rank the answers **from best to worst**.

- Prefer answers that are *correct*, then helpful, then concise.
- Flag anything harmful.
<script>window.__xss_instructions = 1</script>
"""
PROMPTS = [
    (
        "How do I reverse a list in Python? Show code.",
        [
            "Use slicing:\n\n```python\nitems = [1, 2, 3]\nprint(items[::-1])\n```\n\nThis makes a **new** list.",
            "Call `items.reverse()`; it reverses the list *in place* and returns `None`.",
            "Lists cannot be reversed in Python.",
        ],
    ),
    (
        "What is the capital of Australia?",
        ["Canberra.", "Sydney is the capital.", "The capital of Australia is Canberra, chosen in 1908 as a compromise."],
    ),
    ("Give me a synonym of 'fast'.", ["Quick.", "Slow.", "Rapid, swift or quick."]),
    ("Translate 'thank you' into French.", ["Merci.", "Gracias.", "Merci beaucoup (thank you very much)."]),
    ("Escape test <img src=x onerror=\"window.__xss=1\">", ["<b>bold?</b> <script>window.__xss=2</script>", "plain", "also plain"]),
    ("Is 17 a prime number?", ["Yes, 17 is prime.", "No, 17 = 3 x 6.", "Yes: its only divisors are 1 and 17."]),
]


def make_ranking_project():
    admin = make_member(None, "rank-admin")
    project = project_create(name="Browser ranking", created_by=admin.user, responses_per_prompt=3, overlap=1, instructions=INSTRUCTIONS)
    lines = [json.dumps({"id": f"p{i}", "prompt": prompt, "responses": [{"content": r, "model": "hidden-model"} for r in responses]})
             for i, (prompt, responses) in enumerate(PROMPTS)]
    prompts_import(project=project, fileobj=io.BytesIO("\n".join(lines).encode()), file_format="jsonl")
    return project


def current_assignment(page) -> Assignment:
    page.wait_for_selector("#task:not([hidden])")
    return Assignment.objects.get(pk=int(page.get_attribute("#task", "data-assignment")))


def label_to_response(assignment: Assignment) -> dict[str, int]:
    return {"ABCDEFGHIJKLMNOP"[i]: rid for i, rid in enumerate(assignment.display_order)}


def wait_until(condition, timeout: float = 30.0) -> None:
    """Poll the database until `condition()` holds (a generous deadline: CI shares a loaded machine)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def wait_for_next(page, previous: Assignment) -> None:
    page.wait_for_function(
        "prev => { const t = document.querySelector('#task'); const e = document.querySelector('#empty');"
        " return (t && !t.hidden && t.dataset.assignment !== String(prev)) || (e && !e.hidden); }",
        arg=previous.pk,
    )


def test_an_annotator_ranks_by_keyboard_and_by_drag_and_skips(browser_page, live_server):
    page = browser_page
    project = make_ranking_project()
    ann = make_member(project, "ranker")
    login(page, live_server.url, "ranker", ann.password)
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    expected: dict[int, list[list[int]]] = {}

    # 1. keyboard: B, then A, Enter (C goes last by itself).
    first = current_assignment(page)
    ids = label_to_response(first)
    assert page.locator("#cards .response").count() == 3
    page.keyboard.press("b")
    page.keyboard.press("a")
    assert page.inner_text("#ranking .tier >> nth=0") == "B"
    page.keyboard.press("Enter")
    expected[first.pk] = [[ids["B"]], [ids["A"]], [ids["C"]]]
    wait_for_next(page, first)
    assert "Saved" in page.inner_text("#status")

    # 2. keyboard with an undo, a flag, a rating and a rationale.
    second = current_assignment(page)
    ids = label_to_response(second)
    page.keyboard.press("a")
    page.keyboard.press("Backspace")
    page.keyboard.press("c")
    page.keyboard.press("a")
    page.keyboard.press("b")
    page.check("#cards .response[data-label='B'] input[data-flag='factually_wrong']")
    page.keyboard.press("6")
    page.keyboard.press("r")
    page.keyboard.type("C is the most complete.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    expected[second.pk] = [[ids["C"]], [ids["A"]], [ids["B"]]]
    wait_for_next(page, second)

    # 3. keyboard again; the screenshot shows a task half ranked.
    third = current_assignment(page)
    ids = label_to_response(third)
    page.keyboard.press("c")
    # docs/img/ranking-page.png now comes from tests/frontend/test_ranking_browser.py (realistic tasks).
    page.screenshot(path=str(SHOT), full_page=True)
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    expected[third.pk] = [[ids["C"]], [ids["B"]], [ids["A"]]]
    wait_for_next(page, third)

    # 4. by drag and drop, then the Submit button.
    fourth = current_assignment(page)
    ids = label_to_response(fourth)
    for label in ("B", "C", "A"):
        page.drag_and_drop(f"#cards .response[data-label='{label}']", "#ranking")
    assert page.locator("#ranking .tier").count() == 3
    page.click("#submit")
    expected[fourth.pk] = [[ids["B"]], [ids["C"]], [ids["A"]]]
    wait_for_next(page, fourth)

    # 5. skip with S: it asks for a reason (Enter takes the first), the next task shows at once and
    # the skip is sent when its undo window closes.
    fifth = current_assignment(page)
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    wait_for_next(page, fifth)
    page.wait_for_selector("#toast", state="hidden", timeout=30_000)
    wait_until(lambda: Assignment.objects.get(pk=fifth.pk).status == AssignmentStatus.SKIPPED)

    stored = {r.assignment_id: r for r in Ranking.objects.filter(annotator=ann.user)}
    assert {k: v.tiers for k, v in stored.items()} == expected
    assert stored[second.pk].rating == 6 and stored[second.pk].rationale == "C is the most complete."
    assert stored[second.pk].flags == {str(label_to_response(second)["B"]): ["factually_wrong"]}
    assert Assignment.objects.get(pk=fifth.pk).status == AssignmentStatus.SKIPPED
    assert Assignment.objects.get(pk=fifth.pk).skip_reason == "Not sure"

    # Nothing the server sent ran as markup, and the model's name never reached the page.
    assert page.evaluate("window.__xss === undefined && window.__xss_instructions === undefined")
    assert "hidden-model" not in page.content()
    assert page.locator("#done-today").inner_text() == "4"
    assert SHOT.stat().st_size > 10_000


def test_the_page_escapes_prompt_html_and_renders_code_blocks(browser_page, live_server):
    page = browser_page
    project = make_ranking_project()
    ann = make_member(project, "reader")
    login(page, live_server.url, "reader", ann.password)
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    current_assignment(page)
    assert page.locator("#messages .markdown").first.inner_text().startswith("How do I reverse a list")
    assert page.locator("#cards pre code").count() >= 1
    assert page.locator("#instructions strong").inner_text() == "from best to worst"
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("?")
    assert not page.locator("#help").is_visible()
    # Tie key in a project without ties: refused with a message, nothing placed.
    page.keyboard.press("a")
    page.keyboard.press("=")
    assert "not allowed" in page.inner_text("#alert")


def test_other_projects_rank_page_is_404(client, django_user_model):
    project = make_ranking_project()
    outsider = make_member(None, "outsider")
    client.force_login(outsider.user)
    assert client.get(f"/projects/{project.slug}/rank/").status_code == 404
    assert client.get("/projects/no-such-project/rank/").status_code == 404


def test_a_lost_connection_and_a_lost_lease_keep_what_was_typed(browser_page, live_server):
    page = browser_page
    project = make_ranking_project()
    ann = make_member(project, "offline")
    login(page, live_server.url, "offline", ann.password)
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    first = current_assignment(page)
    ids = label_to_response(first)
    page.keyboard.press("c")
    page.keyboard.press("a")
    page.fill("#rationale", "typed before the network dropped")
    page.context.set_offline(True)
    page.keyboard.press("Escape")  # leave the rationale box: keys act on the page again
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#alert').textContent.includes('Connection lost')")
    assert page.input_value("#rationale") == "typed before the network dropped"
    assert Ranking.objects.count() == 0
    page.context.set_offline(False)
    page.click("#submit")  # the same Idempotency-Key: stored once
    wait_for_next(page, first)
    stored = Ranking.objects.get(assignment=first)
    assert stored.rationale == "typed before the network dropped"
    assert stored.tiers == [[ids["C"]], [ids["A"]], [ids["B"]]]

    # The lease of the next task runs out and its only slot goes to someone else: 409, text kept.
    second = current_assignment(page)
    page.fill("#rationale", "my careful notes")
    page.keyboard.press("Escape")
    Assignment.objects.filter(pk=second.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    from annotation.services.assignment import assignments_expire_all

    assignments_expire_all()
    rival = make_member(project, "rival")
    from annotation.services.assignment import assignment_lease_next

    assert assignment_lease_next(project=project, annotator=rival.user).task_id == second.task_id
    page.keyboard.press("a")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.wait_for_selector("#alert:not([hidden]) button")
    assert "ran out" in page.inner_text("#alert")
    assert page.input_value("#rationale") == "my careful notes"
    page.click("#alert button")
    wait_for_next(page, second)
    assert not Ranking.objects.filter(assignment=second).exists()
