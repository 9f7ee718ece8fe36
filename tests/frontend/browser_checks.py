"""Watching a Chromium page for what must never happen: a Content-Security-Policy violation, a
script error, a failed request, a console error."""
from __future__ import annotations

WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def watch(page) -> list[str]:
    """Start collecting problems on `page` (call before the first goto); check with `assert_clean`."""
    problems: list[str] = []
    page.add_init_script(WATCH_CSP)
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    # A request cut short by leaving the page (a prefetch during a reload) is not a failure.
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}")
            if request.failure != "net::ERR_ABORTED" else None)
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" or "Content Security Policy" in msg.text else None)
    return problems


def assert_clean(page, problems: list[str]) -> None:
    violations = page.evaluate("window.__csp || []")
    assert not violations, f"CSP violations: {violations}"
    assert not problems, problems
