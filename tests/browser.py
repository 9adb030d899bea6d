"""What the browser tests share: where Chromium is, its flags, the viewports, serving the app, opening a page."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 1024, "height": 768}  # landscape: the till and the statements
TABLET_PORTRAIT = {"width": 820, "height": 1180}  # the back office and the console
DESKTOP = {"width": 1280, "height": 800}
SERVER_START_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}:\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"the server did not answer /healthz within {SERVER_START_S} s:\n{log_path.read_text()}")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # its own process group: the granian workers it started
        server.wait(timeout=5)


@contextlib.asynccontextmanager
async def new_page(
    base_url: str, viewport: dict[str, int], *, accept_dialogs: bool = False, **context_options: Any
) -> AsyncIterator[Any]:
    """A fresh Chromium page on `base_url`, in Chinese; the browser closes when the block ends."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=viewport, base_url=base_url, locale="zh-CN", **context_options)
            tab = await context.new_page()
            if accept_dialogs:
                tab.on("dialog", lambda dialog: dialog.accept())
            yield tab
        finally:
            await browser.close()
