"""Notebook 07's prediction browser in a real browser: Voilà serves it, headless Chromium moves the slider.

The widget tests elsewhere check the Python side; only a browser shows that the page renders and that the
slider reaches the kernel and brings a new image back. FGBG_SKIP_BROWSER=1 skips this test (and `make test`'s
install of Debian's chromium) on machines without apt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, sync_playwright

from fgbg_utils.store import write_bytes_atomic

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "07_visualize.ipynb"
ARTIFACT = ROOT / "runs" / "test-artifacts" / "browser_07.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_S = 60
RENDER_S = 300
"""Voilà runs the whole notebook in a fresh kernel before the widgets appear: smoke takes seconds, this is a cap."""
UPDATE_S = 60
IMAGE = ".fgbg-browser .fgbg-image"
SLIDER = ".fgbg-browser .fgbg-sample"
CELL_ERROR = "Error at server while executing cell"
"""What Voilà logs when a cell raises; it then stops executing, so waiting longer is pointless."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("FGBG_SKIP_BROWSER") == "1", reason="FGBG_SKIP_BROWSER=1 is set"),
]


class Server(NamedTuple):
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Voilà exited with code {server.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"Voilà did not listen on port {port} within {SERVER_START_S} s:\n{log.read_text()}")


@pytest.fixture
def voila(tmp_path: Path) -> Iterator[Server]:
    """Voilà serving notebook 07 in the smoke profile on a free loopback port, stopped (with its kernel) after."""
    port = free_port()
    log = tmp_path / "voila.log"
    command = [
        sys.executable, "-m", "voila", NOTEBOOK.name,
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        f"--port={port}",
        "--Voila.port_retries=0",
        "--VoilaExecutor.kernel_name=python3",
        f"--VoilaExecutor.timeout={RENDER_S}",
        "--show_tracebacks=True",
        # jupytext's JupyterLab extension has no part in a dashboard and fails to load in Voilà's page.
        "--VoilaConfiguration.extension_denylist=jupyterlab-jupytext",
    ]  # fmt: skip
    env = {**os.environ, "FGBG_PROFILE": "smoke"}
    with open(log, "wb") as output:
        server = subprocess.Popen(command, cwd=NOTEBOOK.parent, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, server, log)
        yield Server(f"http://127.0.0.1:{port}/", log)
    finally:
        server.terminate()  # Voilà shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def stay_on_loopback(route: Route) -> None:
    """The page asks a CDN for icon fonts; this machine has no internet, so fail those requests at once."""
    if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A page in headless Debian Chromium with a fresh profile, closed (with the browser) after."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium; FGBG_SKIP_BROWSER=1 skips")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1200},
        )
        try:
            context.route("**/*", stay_on_loopback)
            yield context.new_page()
        finally:
            context.close()


def picture_changed(page: Page, previous_src: str | None) -> bool:
    """Whether the browser's <img> shows a fully decoded picture whose src differs from `previous_src`."""
    return page.evaluate(
        """([selector, previous]) => {
            const img = document.querySelector(selector);
            return img !== null && img.src !== previous && img.complete && img.naturalWidth > 0;
        }""",
        [IMAGE, previous_src],
    )


def wait_for_picture(page: Page, server: Server, previous_src: str | None, timeout_s: float) -> None:
    """Wait for a new picture; fail at once when Voilà reports a cell error, showing the page and Voilà's log."""
    deadline = time.monotonic() + timeout_s
    while not picture_changed(page, previous_src):
        log = server.log.read_text()
        failed = CELL_ERROR in log
        if failed or time.monotonic() > deadline:
            reason = "a cell failed" if failed else f"no new picture within {timeout_s} s"
            excerpt = log[log.index(CELL_ERROR) :][:4000] if failed else log[-4000:]
            raise AssertionError(
                f"notebook 07's browser: {reason}\n--- page text ---\n{page.inner_text('body')[-3000:]}"
                f"\n--- Voilà log ---\n{excerpt}"
            )
        page.wait_for_timeout(250)


def test_slider_changes_the_shown_image(voila: Server, page: Page):
    page.goto(voila.url, wait_until="commit", timeout=SERVER_START_S * 1000)
    wait_for_picture(page, voila, None, RENDER_S)

    image = page.locator(IMAGE)
    handle = page.locator(f"{SLIDER} .noUi-handle")
    readout = page.locator(f"{SLIDER} .widget-readout")
    start, last = (round(float(handle.get_attribute(name))) for name in ("aria-valuenow", "aria-valuemax"))
    assert int(readout.inner_text()) == start
    key, expected = ("ArrowRight", start + 1) if start < last else ("ArrowLeft", start - 1)
    src_before, pixels_before = image.get_attribute("src"), image.screenshot()

    handle.focus()
    page.keyboard.press(key)
    wait_for_picture(page, voila, src_before, UPDATE_S)

    assert int(readout.inner_text()) == expected
    assert image.screenshot() != pixels_before, "the slider moved but the shown picture stayed the same"
    # The whole browser, however Voilà's page scrolls (its body does not grow with the content).
    write_bytes_atomic(ARTIFACT, page.locator(".fgbg-browser").screenshot())
    print(f"screenshot of notebook 07's browser: {ARTIFACT}")
