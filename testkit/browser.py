"""A real browser for the UI test: Debian's Chromium (/usr/bin/chromium; Playwright downloads no
browser here) driven by Playwright, headless at 1440x1000 with a fresh profile, and kept on one
origin: every request elsewhere is aborted and recorded, so nothing reaches the internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Locator, Page, Route, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

__all__ = ["CHROMIUM", "UiBrowser", "chromium", "follow"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 1000}
# Long enough for a page of the UI on a busy 2-core machine; a missing element fails in this time.
TIMEOUT_MS = 30_000
# How long a click on a link has to start its navigation before it is tried once more.
NAVIGATION_MS = 10_000


@dataclass
class UiBrowser:
    """One browser profile for a test module: pages open as tabs, screenshots go to a folder."""

    context: BrowserContext
    origin: str  # scheme://host:port, the only place requests may go
    screenshots: Path
    blocked: list[str] = field(default_factory=list)  # requests elsewhere, aborted
    _taken: int = 0

    def open(self, url: str) -> Page:
        """A new tab on `url`."""
        page = self.context.new_page()
        page.goto(url)
        return page

    def screenshot(self, page: Page, name: str, full_page: bool = False) -> Path:
        """A PNG of what the tab shows (the whole page with `full_page`), numbered in the order
        taken: `03-run-page.png`."""
        self._taken += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.screenshots / f"{self._taken:02d}-{slug}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    def loopback_elsewhere(self) -> list[str]:
        """Blocked requests to another server on this machine (another Prefect, say)."""
        return [
            url
            for url in self.blocked
            if urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
        ]

    def _route(self, route: Route) -> None:
        url = route.request.url
        if url.startswith((f"{self.origin}/", "data:", "blob:")) or url == self.origin:
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def follow(page: Page, link: Locator, url_part: str) -> None:
    """Click a link as a person does and wait until the page's URL holds `url_part`; click once
    more if the list it was in re-rendered under the click (the UI redraws as data arrives)."""
    pattern = re.compile(re.escape(url_part))
    for attempt in range(2):
        link.click()
        try:
            page.wait_for_url(pattern, timeout=NAVIGATION_MS)
            return
        except PlaywrightTimeoutError:
            if attempt:
                raise


@contextmanager
def chromium(origin: str, profile: Path, screenshots: Path) -> Iterator[UiBrowser]:
    """Headless Chromium with a fresh profile in `profile` that may reach `origin` only."""
    screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            expect.set_options(timeout=TIMEOUT_MS)
            browser = UiBrowser(context=context, origin=origin, screenshots=screenshots)
            context.route("**/*", browser._route)
            yield browser
        finally:
            context.close()
