"""Headless Chromium for the portal's browser tests: Debian's chromium and chromedriver, started
so that it reaches nothing but the portal (no background networking, no component updates)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def browser_missing() -> bool:
    return not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))


def skip_unless_browser(what: str = "chromium and chromium-driver") -> None:
    """Skip where the browser is missing, except in CI, which must install it."""
    if browser_missing() and not os.environ.get("CI"):
        pytest.skip(f"needs {what}")
    assert not browser_missing(), f"CI must install {what}"


@contextmanager
def chromium(profile: Path, *, console_log: bool = False) -> Iterator[Any]:
    """A headless Chromium with a fresh profile in *profile*; its console log kept when asked."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
