"""Shared browser fixture: Debian's chromium driven by sync playwright against pytest-django's live_server.

Use it from a test module with:

    from tests import browser
    from tests.browser import login

    browser_page = browser.browser_page  # makes the fixture visible here (ruff-clean, unlike an import)

    @pytest.mark.browser
    def test_page(browser_page, live_server, django_user_model):
        page = browser_page
        login(page, live_server.url, "ann", "pw")

`browser_page` needs live_server, so the test runs with transactional database access (rows the
test creates are committed and visible to the server thread).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser_page(live_server, monkeypatch):
    """A fresh page in a fresh chromium (no cookies or cache shared between tests).

    Only this one fixture needs importing; chromium is started per test (well under a second).
    """
    if not shutil.which("chromium") and not os.path.exists(CHROMIUM):
        pytest.skip("/usr/bin/chromium not installed (apt-get install chromium)")
    # Sync playwright runs an event loop in this thread; Django's ORM would then refuse sync calls
    # from the test body ("async-unsafe"), although they are ordinary blocking calls here.
    # monkeypatch restores it afterwards, so it never leaks into later tests or their subprocesses.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            yield page
        finally:
            context.close()
            browser.close()


def login(page, base_url: str, username: str, password: str) -> None:
    """Log in through the real login form at /login/ and wait until it has redirected away."""
    page.goto(f"{base_url.rstrip('/')}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if "/login/" in page.url:
        raise AssertionError(f"login failed for {username!r}: still on {page.url}")


def screenshot_path(name: str) -> Path:
    """Where a test's screenshot goes: docs/img/ (the README's pictures) with SAVE_SCREENSHOTS=1,
    else the test MEDIA_ROOT, so an ordinary test run leaves the working tree clean."""
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parent.parent / "docs" / "img" / name
    return Path(settings.MEDIA_ROOT) / name
