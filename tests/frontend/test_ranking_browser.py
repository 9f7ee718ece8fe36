"""The ranking page in Debian's chromium with realistic tasks: what fits on a laptop screen and a
phone, Markdown and code, raw text, Enter after a click, skip with undo, flag keys, the key list,
drag and drop by touch and by keyboard; no CSP violation or script error anywhere. Rankings are
read back from the database. With SAVE_SCREENSHOTS=1 it refreshes docs/img/ranking-page.png."""
from __future__ import annotations

import time

import pytest

from annotation.models import Assignment, AssignmentStatus, Ranking, Role
from tests import browser
from tests.browser import login, screenshot_path
from tests.factories import make_project, make_user
from tests.frontend.browser_checks import assert_clean, watch
from tests.frontend.realistic import INSTRUCTIONS, import_realistic_tasks

pytestmark = [pytest.mark.browser, pytest.mark.needs_postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser_page = browser.browser_page

LAPTOPS = [(1366, 768), (1280, 720)]
PHONE = (390, 844)
XSS = "A script: <script>window.__xss = 1</script> <img src=x onerror=\"window.__xss = 2\"> [link](javascript:window.__xss=3)"


def setup_project(*, repeat: int = 2, username: str = "ranker"):
    admin = make_user(f"{username}-admin")
    annotator = make_user(username)
    project = make_project(f"Code answers {username}", admin=admin, members={annotator: Role.ANNOTATOR}, responses_per_prompt=4,
                           overlap=1, instructions=INSTRUCTIONS)
    import_realistic_tasks(project, repeat=repeat)
    return project, annotator


def open_page(page, live_server, project, username: str) -> list[str]:
    problems = watch(page)
    login(page, live_server.url, username, f"{username}-pass-123")
    page.goto(f"{live_server.url}/projects/{project.slug}/rank/")
    page.wait_for_selector("#task:not([hidden])")
    return problems


def shown(page) -> Assignment:
    page.wait_for_selector("#task:not([hidden])")
    return Assignment.objects.get(pk=int(page.get_attribute("#task", "data-assignment")))


def labels(assignment: Assignment) -> dict[str, int]:
    return {"ABCDEFGHIJKLMNOP"[i]: rid for i, rid in enumerate(assignment.display_order)}


def wait_for_other(page, previous: Assignment) -> None:
    page.wait_for_function("prev => document.querySelector('#task').dataset.assignment !== String(prev)", arg=previous.pk)


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def in_view(page, selector: str, *, min_height: float = 0) -> bool:
    """The element's box lies inside the viewport (and is at least min_height tall on screen)."""
    return page.evaluate(
        """([sel, minH]) => { const r = document.querySelector(sel).getBoundingClientRect();
             return r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight + 0.5 && r.right <= innerWidth + 0.5 && r.height >= minH; }""",
        [selector, min_height])


def visible_lines(page, selector: str) -> float:
    """How many lines of text of the element are on screen (its box clipped to the viewport, in line heights)."""
    return page.evaluate(
        """sel => { const e = document.querySelector(sel); const r = e.getBoundingClientRect();
             const shown = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
             return shown / parseFloat(getComputedStyle(e).lineHeight || 20); }""", selector)


@pytest.mark.parametrize("size", LAPTOPS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_on_a_laptop_the_prompt_every_response_and_the_ranking_bar_fit_without_scrolling(browser_page, live_server, size):
    page = browser_page
    page.set_viewport_size({"width": size[0], "height": size[1]})
    project, annotator = setup_project(username=f"laptop{size[0]}")
    problems = open_page(page, live_server, project, annotator.username)
    # First visit: the instructions are open, and the ranking bar is still on screen.
    assert page.locator("#instructions-box").evaluate("d => d.open")
    assert in_view(page, "#submit")
    page.keyboard.press("i")  # seen: collapsed from now on (the key and the button reopen them)
    for _ in range(2):  # this task and, after a submit, the next one: each starts at the top
        assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight + 1"), "the page itself scrolls"
        assert in_view(page, "#messages .turn:last-child") and in_view(page, "#rank-bar") and in_view(page, "#submit")
        cards = page.locator("#cards .response")
        n = cards.count()
        assert n in (3, 4)
        for label in "ABCD"[:n]:
            assert in_view(page, f"#cards .response[data-label='{label}']")
            assert visible_lines(page, f"#cards .response[data-label='{label}'] .response-body") >= 5
        # Side by side: the cards share one row.
        tops = {round(box["y"]) for box in (cards.nth(i).bounding_box() for i in range(n))}
        assert len(tops) == 1
        # A long answer scrolls inside its card, not the page.
        body = "#cards .response[data-label='A'] .response-body"
        page.eval_on_selector(body, "b => b.scrollTop = 200")
        before = shown(page)
        for key in "abcd"[:n]:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_for_other(page, before)
        assert page.eval_on_selector(body, "b => b.scrollTop") == 0 and page.evaluate("scrollY") == 0
    page.reload()
    page.wait_for_selector("#task:not([hidden])")
    assert not page.locator("#instructions-box").evaluate("d => d.open")  # seen once: stays collapsed
    page.click("#instructions-button")
    assert page.locator("#instructions-box").evaluate("d => d.open")
    if size == (1366, 768):
        page.keyboard.press("i")
        page.keyboard.press("c")
        page.keyboard.press("a")
        page.screenshot(path=str(screenshot_path("ranking-page.png")))
    assert_clean(page, problems)


def test_on_a_phone_the_responses_stack_and_the_ranking_bar_stays_on_screen(browser_page, live_server):
    page = browser_page
    page.set_viewport_size({"width": PHONE[0], "height": PHONE[1]})
    project, annotator = setup_project(username="phone")
    problems = open_page(page, live_server, project, annotator.username)
    page.keyboard.press("i")
    cards = page.locator("#cards .response")
    boxes = [cards.nth(i).bounding_box() for i in range(cards.count())]
    assert all(b["width"] > PHONE[0] * 0.8 for b in boxes) and boxes[0]["y"] < boxes[1]["y"]  # stacked, full width
    assert in_view(page, "#messages .turn") and in_view(page, "#rank-bar") and in_view(page, "#submit")
    assert visible_lines(page, "#cards .response[data-label='A'] .response-body") >= 3
    page.evaluate("window.scrollTo(0, document.scrollingElement.scrollHeight / 2)")
    assert in_view(page, "#rank-bar") and in_view(page, "#submit")  # sticky at the bottom
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")  # code scrolls in its block, not the page
    first = shown(page)
    ids = labels(first)
    for key in "dcba":
        page.keyboard.press(key)
    page.click("#submit")
    wait_for_other(page, first)
    assert page.evaluate("scrollY") == 0
    assert Ranking.objects.get(assignment=first).tiers == [[ids["D"]], [ids["C"]], [ids["B"]], [ids["A"]]]
    assert_clean(page, problems)


def test_markdown_code_and_raw_text_and_nothing_in_a_response_runs(browser_page, live_server):
    page = browser_page
    admin, annotator = make_user("md-admin"), make_user("md-reader")
    project = make_project("Markdown", admin=admin, members={annotator: Role.ANNOTATOR}, overlap=1)
    import io
    import json

    from annotation.services.importing import prompts_import

    line = {"prompt": "Show **bold** <b>and html</b>", "responses": [
        "Intro paragraph.\n\nSecond paragraph with `code`.\n\n```python\ndef f(x):\n    return x * 2  # " + "long " * 40
        + "\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        XSS, "Plain answer.\n\n- one\n- two"]}
    prompts_import(project=project, fileobj=io.BytesIO(json.dumps(line).encode()), file_format="jsonl")
    problems = open_page(page, live_server, project, "md-reader")
    assignment = shown(page)
    by_label = {r["label"]: r for r in page.evaluate(
        "Array.from(document.querySelectorAll('#cards .response'))"
        ".map(c => ({label: c.dataset.label, text: c.querySelector('.response-body').innerText}))")}
    code_card = next(label for label, r in by_label.items() if "Intro paragraph" in r["text"])
    xss_card = next(label for label, r in by_label.items() if "A script" in r["text"])
    card = f"#cards .response[data-label='{code_card}']"
    assert page.locator(f"{card} .response-body p").count() >= 2
    pre = page.locator(f"{card} pre")
    assert pre.evaluate("p => getComputedStyle(p).fontFamily").lower().find("mono") >= 0
    assert pre.evaluate("p => getComputedStyle(p).overflowX") == "auto" and pre.evaluate("p => p.scrollWidth > p.clientWidth")
    assert page.locator(f"{card} pre code span.k").first.inner_text() == "def"  # highlighted on the server
    assert page.locator(f"{card} table td").count() == 2
    assert page.locator("#messages strong").inner_text() == "bold" and "<b>and html</b>" in page.inner_text("#messages")
    # The script, the handler and the javascript: link are text, never markup.
    assert "<script>window.__xss = 1</script>" in page.inner_text(f"#cards .response[data-label='{xss_card}'] .response-body")
    assert page.locator("#cards a[href^='javascript']").count() == 0
    # Raw text of one card, then of everything (T): exactly what the model wrote.
    page.click(f"{card} .raw-toggle")
    assert "```python" in page.inner_text(f"{card} pre.raw-text")
    page.click(f"{card} .raw-toggle")
    assert page.locator(f"{card} pre.raw-text").count() == 0
    page.keyboard.press("t")
    assert page.locator("#cards pre.raw-text").count() == 3 and page.get_attribute("#raw-all", "aria-pressed") == "true"
    assert "**bold**" in page.inner_text("#messages")
    page.keyboard.press("t")
    assert page.locator("#cards pre.raw-text").count() == 0
    assert page.evaluate("window.__xss === undefined")
    assert "secret" not in page.content() and assignment.status == AssignmentStatus.LEASED
    assert_clean(page, problems)


def test_the_keyboard_alone_ranks_flags_skips_with_undo_and_lists_every_key(browser_page, live_server):
    page = browser_page
    page.set_viewport_size({"width": 1366, "height": 768})
    project, annotator = setup_project(username="keys")
    problems = open_page(page, live_server, project, annotator.username)

    # ? lists every key.
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    keys = page.locator("#keys-table tr").all_inner_texts()
    for needle in ("Enter", "Shift + letter", "S", "U", "T", "I", "Alt + ← / →", "?"):
        assert any(row.startswith(needle) for row in keys), needle
    page.keyboard.press("?")
    assert not page.locator("#help").is_visible()

    # Click "Rank" on three cards, then Enter with the focus still on the last button: it submits.
    first = shown(page)
    ids = labels(first)
    for label in "BAC":
        page.click(f"#cards .response[data-label='{label}'] .place-next")
    assert page.evaluate("document.activeElement.classList.contains('place-next')")
    page.keyboard.press("Enter")
    wait_for_other(page, first)
    assert Ranking.objects.get(assignment=first).tiers == [[ids["B"]], [ids["A"]], [ids["C"]], [ids["D"]]]

    # Flags from the keyboard: Shift+B opens B's flags, 2 toggles the second flag, Escape closes.
    second = shown(page)
    ids = labels(second)
    page.keyboard.press("Shift+B")
    assert page.locator("#cards .response[data-label='B'] .flags.open").count() == 1
    page.keyboard.press("2")
    page.keyboard.press("Escape")
    assert page.locator("#cards .flags.open").count() == 0
    assert page.is_checked("#cards .response[data-label='B'] input[data-flag='factually_wrong']")
    for key in "dcab":
        page.keyboard.press(key)
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    wait_for_other(page, second)
    stored = Ranking.objects.get(assignment=second)
    assert stored.flags == {str(ids["B"]): ["factually_wrong"]} and stored.rating == 5

    # S asks for a reason; the next task shows at once; U brings the skipped one back: nothing sent.
    third = shown(page)
    page.keyboard.press("a")
    page.keyboard.press("s")
    assert page.locator("#skip-dialog").is_visible()
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    wait_for_other(page, third)
    page.wait_for_selector("#toast:not([hidden])")
    page.keyboard.press("u")
    page.wait_for_function("id => document.querySelector('#task').dataset.assignment === String(id)", arg=third.pk)
    assert page.inner_text("#ranking .tier >> nth=0") == "A"  # the draft came back with it
    assert not page.locator("#toast").is_visible()
    time.sleep(8)  # longer than the undo window: an undone skip is never sent
    assert Assignment.objects.get(pk=third.pk).status == AssignmentStatus.LEASED
    # Skipped for real: sent when the undo window closes, with the chosen reason.
    page.keyboard.press("s")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    wait_for_other(page, third)
    page.wait_for_selector("#toast", state="hidden", timeout=30_000)
    wait_until(lambda: Assignment.objects.get(pk=third.pk).status == AssignmentStatus.SKIPPED)
    assert Assignment.objects.get(pk=third.pk).skip_reason == "Outside my expertise"

    # A place in the ranking moves with Alt+arrows when focused (keyboard drag and drop).
    fourth = shown(page)
    ids = labels(fourth)
    for key in "abc":
        page.keyboard.press(key)
    page.focus("#ranking .tier >> nth=0")
    page.keyboard.press("Alt+ArrowRight")
    assert page.locator("#ranking .tier").all_inner_texts() == ["B", "A", "C"]
    assert page.evaluate("document.activeElement.textContent") == "A"
    page.keyboard.press("Delete")
    assert page.locator("#ranking .tier").all_inner_texts() == ["B", "C"]
    page.keyboard.press("Escape")
    for key in "ad":
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    wait_for_other(page, fourth)
    assert Ranking.objects.get(assignment=fourth).tiers == [[ids["B"]], [ids["C"]], [ids["A"]], [ids["D"]]]
    assert_clean(page, problems)


def touch_drag(page, source: str, target: str, *, steps: int = 12) -> None:
    """Drag with a finger: CDP touch events from the middle of `source` to the middle of `target`."""
    cdp = page.context.new_cdp_session(page)
    a, b = page.locator(source).bounding_box(), page.locator(target).bounding_box()
    x0, y0 = a["x"] + a["width"] / 2, a["y"] + a["height"] / 2
    x1, y1 = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for i in range(1, steps + 1):
        point = {"x": x0 + (x1 - x0) * i / steps, "y": y0 + (y1 - y0) * i / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        page.wait_for_timeout(30)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_timeout(200)


def test_drag_and_drop_by_touch_and_by_mouse(browser_page, live_server):
    project, annotator = setup_project(username="touch")
    phone = browser_page.context.browser.new_context(viewport={"width": PHONE[0], "height": PHONE[1]}, has_touch=True, is_mobile=True)
    page = phone.new_page()
    try:
        problems = open_page(page, live_server, project, annotator.username)
        page.keyboard.press("i")
        first = shown(page)
        ids = labels(first)
        touch_drag(page, "#pool .chip[data-id] >> text=C", "#ranking")
        assert page.locator("#ranking .tier").all_inner_texts() == ["C"]
        touch_drag(page, "#pool .chip >> text=A", "#ranking .tier >> nth=0")  # before C
        assert page.locator("#ranking .tier").all_inner_texts() == ["A", "C"]
        touch_drag(page, "#ranking .tier >> text=A", "#pool")  # back out of the ranking
        assert page.locator("#ranking .tier").all_inner_texts() == ["C"]
        for key in "abd":
            page.keyboard.press(key)
        page.locator("#submit").tap()
        wait_for_other(page, first)
        assert Ranking.objects.get(assignment=first).tiers == [[ids["C"]], [ids["A"]], [ids["B"]], [ids["D"]]]
        assert_clean(page, problems)
    finally:
        phone.close()

    # With a mouse: a card dragged onto the bar, and a place dragged to another (the next task has 3 responses).
    page = browser_page
    problems = open_page(page, live_server, project, annotator.username)
    second = shown(page)
    ids = labels(second)
    assert len(ids) == 3
    page.drag_and_drop("#cards .response[data-label='C']", "#ranking")
    page.keyboard.press("b")
    page.keyboard.press("a")
    assert page.locator("#ranking .tier").all_inner_texts() == ["C", "B", "A"]
    end = page.locator("#ranking .tier >> nth=2").bounding_box()
    start = page.locator("#ranking .tier >> nth=0").bounding_box()
    page.mouse.move(start["x"] + 5, start["y"] + 5)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(start["x"] + 5 + (end["x"] + end["width"] - start["x"]) * i / 10, start["y"] + 5)
        page.wait_for_timeout(20)
    page.mouse.up()
    page.wait_for_timeout(200)
    assert page.locator("#ranking .tier").all_inner_texts() == ["B", "A", "C"]
    page.keyboard.press("Enter")
    wait_for_other(page, second)
    assert Ranking.objects.get(assignment=second).tiers == [[ids["B"]], [ids["A"]], [ids["C"]]]
    assert_clean(page, problems)
