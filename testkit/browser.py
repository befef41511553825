"""Headless Chromium for the page tests (Debian's ``chromium`` and ``chromium-driver``, driven by Selenium),
and the screenshot helper that made the README's picture.

:func:`missing_browser` says why no browser can run here (for a visible skip); ``make test`` installs the
two packages first where apt is available.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401 (only whether it is installed)
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            return (
                f"{path} is missing (apt-get install chromium chromium-driver; make test does where it can)"
            )
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, its console kept (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[str]:
    """The page's console messages at level SEVERE (errors, failed loads) since the last call."""
    return [str(entry["message"]) for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver: Any, path: Path, width: int = 1200, height: int = 760) -> Path:
    """A PNG of the page at ``width`` x ``height`` CSS pixels, written to ``path``."""
    driver.set_window_size(width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    return path
