"""Browser tests: Debian's Chromium driven by Playwright (never Playwright's own browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("NETRA_TEST_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() == "true"


def chromium_path() -> str:
    """Where Chromium is; skips locally without it, fails under CI (`make test` installs it)."""
    if CHROMIUM.exists() or shutil.which(str(CHROMIUM)):
        return str(CHROMIUM)
    if IN_CI:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI runs these tests")


@pytest.fixture(scope="session")
def browser_path() -> str:
    return chromium_path()


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where a test's screenshots go (printed, so a failing run says where to look)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    print(f"\nscreenshots: {folder}")
