"""Browser tests run against real processes (tests/services.py); failures show their logs.
Every browser context records what its pages print to the console and throw: a test whose pages
met a Content-Security-Policy violation, or an uncaught script error, fails (issue 9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.pages import ARGS, CHROMIUM
from tests.conftest import require
from tests.services import Stack, app_ctx, attach_logs, stack

__all__ = ["app_ctx", "stack"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    attach_logs(item, outcome.get_result())


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(Path(CHROMIUM).is_file(), f"Debian's chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        require(False, "the playwright package")
        raise
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


# Chromium prints "Executing inline script violates the following Content Security Policy
# directive …" (older ones: "Refused to execute …") for a blocked script, style, image, form or
# frame; the event below says it once more in words of our own, in case a message is not
# reported as console.
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy", "Refused to")
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("Content Security Policy violation: " + e.violatedDirective + " blocked "
    + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


class Console:
    """What the pages of one browser context said: every console message and uncaught error."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.errors: list[str] = []

    def on_console(self, message: Any) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def on_error(self, error: Any) -> None:
        self.errors.append(str(getattr(error, "error", error)))

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if any(word in m for word in CSP_WORDS)]

    def problems(self) -> list[str]:
        return self.csp_violations() + [f"uncaught: {e}" for e in self.errors]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser: Any, stack: Stack, console: Console) -> Iterator[Any]:
    ctx = browser.new_context(
        base_url=stack.base_url,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
    )
    ctx.set_default_timeout(15_000)
    ctx.add_init_script(REPORT_VIOLATIONS)
    ctx.on("console", console.on_console)
    ctx.on("weberror", console.on_error)
    yield ctx
    ctx.close()
    problems = console.problems()
    if problems:
        pytest.fail("the pages broke the Content-Security-Policy or threw:\n" + "\n".join(problems))


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()
