"""Headless Debian Chromium driven by Playwright, for the report and dashboard browser tests.

No browser download: Playwright launches /usr/bin/chromium (shutil.which) with a fresh profile.
Screenshots go to tests/artifacts/ (git ignores it), so a CI run keeps them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A persistent Chromium context on a fresh user-data-dir; skips when chromium is absent."""
    playwright = pytest.importorskip("playwright.sync_api")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    with (
        tempfile.TemporaryDirectory(prefix="dsprof-chromium-") as profile,
        playwright.sync_playwright() as p,
    ):
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()


class ConsoleErrors:
    """Collects console errors and uncaught page exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Full-page PNG in the pytest tmp dir and a copy under tests/artifacts/."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    return shot
