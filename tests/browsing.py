"""Headless Chromium for the browser tests: found on the system (Debian's `chromium`
package; CI installs it), launched once per test module (`conftest.browser`). Without
it the browser tests are skipped, except under CI=true, where they fail instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    candidates = [os.environ.get("CHARLM_CHROMIUM", "")]
    candidates += [shutil.which(n) or "" for n in ("chromium", "chromium-browser", "google-chrome")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def launch() -> Iterator[object]:
    """Chromium through Playwright, closed when the generator is."""
    exe = find_chromium()
    if exe is None:
        message = "Chromium not found: install it (apt-get install chromium) or set CHARLM_CHROMIUM"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()
