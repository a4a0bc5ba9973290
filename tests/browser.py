"""Headless Chromium for the tests that render pages: where it is, and the flags every run uses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# No sandbox (tests run as root in CI), no GPU, and none of Chromium's own background traffic.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def find_chromium() -> Path:
    """The path of a Chromium binary. ``make test`` installs Debian's when it is missing (as root
    with apt-get); anywhere else the test says what to install rather than skipping."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "the browser tests (HTML report, API docs) need Chromium on the PATH: run `make browser` "
            "(Debian, as root) or install it (`apt-get install chromium`)",
            pytrace=False,
        )
    return Path(found)


def find_poppler(tool: str) -> Path:
    """A Poppler command (``pdftotext``, ``pdfinfo``) for the test that reads the printed report.
    ``make test`` installs Debian's ``poppler-utils`` when it is missing, as it does Chromium."""
    found = shutil.which(tool)
    if found is None:
        pytest.fail(
            f"the print test of the HTML report needs {tool} on the PATH: run `make browser` "
            "(Debian, as root) or install it (`apt-get install poppler-utils`)",
            pytrace=False,
        )
    return Path(found)
