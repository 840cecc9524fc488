"""Browser tests run against real processes (tests/services.py); failures show their logs."""

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


@pytest.fixture
def context(browser: Any, stack: Stack) -> Iterator[Any]:
    ctx = browser.new_context(
        base_url=stack.base_url,
        accept_downloads=True,
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
    )
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()
