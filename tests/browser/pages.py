"""What browser tests share: Debian's chromium, logging in, screenshots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.services import STAFF

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("PRESSROOM_SHOTS", "/tmp/pressroom-shots"))


def log_in(page: Any, email: str = STAFF[0], password: str = STAFF[1]) -> None:
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("input[name=password]").press("Enter")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
