"""Fixtures of the dashboard's browser tests: one Chromium per test process, one fresh
browser context per test, failing on console errors and failed requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, Watched, screenshot_name


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an
    event loop running on this thread while it is open, and a later test of another
    package that calls ``asyncio.run`` (the backtest) would fail in the same worker."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def watched(browser: Any, request: pytest.FixtureRequest) -> Iterator[Watched]:
    """A new page (its own cookies); the test fails on any JavaScript error or failed
    request seen on it. A screenshot of the last state goes to .test-output/ui/."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    seen = Watched(page)
    yield seen
    try:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / screenshot_name(request.node.nodeid)),
                        full_page=True)
    finally:
        context.close()
    assert not seen.problems, "problems on the page:\n" + "\n".join(seen.problems)


@pytest.fixture
def page(watched: Watched) -> Any:
    """The watched page itself (``watched.expect_status`` for deliberate errors)."""
    return watched.page
