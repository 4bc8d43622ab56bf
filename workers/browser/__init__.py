"""Browser runtime: the thread that owns Playwright and all Chromium profiles of a worker."""

from workers.browser.runtime import BrowserRuntime, RuntimeNotRunning, RuntimeTimeout, find_chromium

__all__ = ["BrowserRuntime", "RuntimeNotRunning", "RuntimeTimeout", "find_chromium"]
