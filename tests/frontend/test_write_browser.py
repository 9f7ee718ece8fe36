"""The demonstration page in Debian's chromium at 1366x768: the prompt, the draft to edit, the server's
Markdown preview, the draft kept across a reload (localStorage), Ctrl+Enter submits; no CSP violation
or script error. The demonstration is read back from the database."""
from __future__ import annotations

import io
import json
import time

import pytest

from annotation.models import Demonstration, Role
from annotation.services.importing import prompts_import
from tests import browser
from tests.browser import login
from tests.factories import make_project, make_user
from tests.frontend.browser_checks import assert_clean, watch

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_write_a_demonstration_from_the_draft_keep_it_across_a_reload_and_submit_with_ctrl_enter(browser_page, live_server):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    admin, writer = make_user("writer-admin"), make_user("writer")
    project = make_project("Write answers", admin=admin, members={writer: Role.ANNOTATOR}, overlap=1, task_type="demonstration")
    line = {"id": "q1", "messages": [{"role": "user", "content": "Name a **prime** number."}],
            "responses": [{"content": "Two is prime.", "model": "secret-model"}]}
    prompts_import(project=project, fileobj=io.BytesIO(json.dumps(line).encode()), file_format="jsonl")

    problems = watch(page)
    login(page, live_server.url, "writer", "writer-pass-123")
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    page.wait_for_selector("#task:not([hidden])")
    assert "Name a" in page.inner_text("#messages") and "secret-model" not in page.content()
    assert page.input_value("#text") == "Two is prime."  # the draft, to edit
    assert page.evaluate("() => { const r = document.querySelector('#submit').getBoundingClientRect(); return r.bottom <= innerHeight; }")

    page.fill("#text", "**Two** is the only even prime.")
    page.wait_for_function("() => document.querySelector('#preview').innerHTML.includes('<strong>Two</strong>')")
    page.reload()
    page.wait_for_selector("#task:not([hidden])")
    assert page.input_value("#text") == "**Two** is the only even prime."  # kept across the reload

    page.focus("#text")
    page.keyboard.press("Control+Enter")
    wait_until(lambda: Demonstration.objects.filter(project=project).exists())
    stored = Demonstration.objects.get(project=project)
    assert stored.text == "**Two** is the only even prime." and stored.annotator == writer and stored.draft is not None
    page.wait_for_selector("#empty:not([hidden])")
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('demonstration-draft:')).length") == 0
    assert_clean(page, problems)


def test_a_reviewer_accepts_a_demonstration_with_a_key_and_the_author_is_offered_nothing(browser_page, live_server):
    from annotation.services.assignment import assignment_lease_next
    from annotation.services.demonstrations import demonstration_submit

    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    admin, author, reviewer = make_user("rev-admin"), make_user("rev-author"), make_user("rev-reviewer")
    project = make_project("Reviewed answers", admin=admin, members={author: Role.ANNOTATOR, reviewer: Role.ANNOTATOR},
                           overlap=1, task_type="demonstration", review=True)
    line = {"id": "q1", "messages": [{"role": "user", "content": "Say hello."}]}
    prompts_import(project=project, fileobj=io.BytesIO(json.dumps(line).encode()), file_format="jsonl")
    assignment = assignment_lease_next(project=project, annotator=author)
    demonstration_submit(assignment_id=assignment.pk, annotator=author, text="*Hello* there.")

    problems = watch(page)
    login(page, live_server.url, "rev-reviewer", "rev-reviewer-pass-123")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    page.wait_for_selector("#item:not([hidden])")
    assert "<em>Hello</em>" in page.inner_html("#demonstration") and "Say hello." in page.inner_text("#messages")
    assert "rev-author" not in page.content()
    page.keyboard.press("a")
    page.wait_for_selector("#empty:not([hidden])")
    stored = Demonstration.objects.get(project=project)
    assert stored.review_status == "accepted" and stored.reviewer == reviewer
    assert_clean(page, problems)
