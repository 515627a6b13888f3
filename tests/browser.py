"""Shared helpers of the browser tests: Debian's headless Chromium driven by Selenium.

The tests use the distribution's ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``
(installed by ``scripts/install_system_deps.sh``), never a downloaded browser.
This machine's network is closed, so the browser starts with a new empty
profile and every background-networking feature off.

Where Chromium is missing the tests skip, except under ``CI=true``, where the
install script must have run and a missing browser is a failure.

Screenshots go to the test's temporary directory; with ``TR_UPDATE_DOCS_IMAGES=1``
the ones meant for the README are copied to ``docs/images/`` as well.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Flags for a headless browser on a machine without network access.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def require_chromium() -> None:
    """Skip when Chromium or its driver is missing; fail instead when ``CI=true``."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install 'selenium>=4.20')")
    if not missing:
        return
    message = (f"browser test needs {', '.join(missing)}; run scripts/install_system_deps.sh "
               "and pip install -e '.[dev]'")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def chromium(download_dir: Path | None = None) -> Iterator[Any]:
    """A headless Chromium WebDriver with a new empty profile, quit and removed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    profile = tempfile.mkdtemp(prefix="tr-chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # Debian's driver matches Debian's browser: never let Selenium Manager look online.
    service = Service(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def page_text(driver: Any) -> str:
    """The rendered text of the page (what a reader sees, no markup)."""
    return str(driver.execute_script("return document.body ? document.body.innerText : ''"))


def wait_for_text(driver: Any, *texts: str, timeout: float = 30.0) -> str:
    """Wait until every one of ``texts`` is rendered; return the page text.

    Raises ``AssertionError`` naming the missing texts (and showing the start of
    the page) when they do not all appear within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = page_text(driver)
        if all(t in text for t in texts):
            return text
        time.sleep(0.2)
    missing = [t for t in texts if t not in text]
    raise AssertionError(f"not rendered within {timeout:.0f} s: {missing!r} at "
                         f"{driver.current_url}; page text starts: {text[:600]!r}")


def wait_for(driver: Any, script: str, *, timeout: float = 30.0, what: str = "") -> Any:
    """Wait until the JavaScript expression ``script`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what or script} not true within {timeout:.0f} s at "
                         f"{driver.current_url}")


def loaded_images(driver: Any, selector: str = "img") -> list[dict[str, Any]]:
    """``src`` (first 80 characters), alt and natural size of the matching images."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(i => ({"
        "src: (i.currentSrc || i.src).slice(0, 80), alt: i.alt, complete: i.complete,"
        "width: i.naturalWidth, height: i.naturalHeight}));", selector))


def save_screenshot(driver: Any, path: Path, *, docs_name: str | None = None,
                    full_page: bool = False, max_height: int = 8000) -> Path:
    """Save a PNG of the window (or the whole page) to ``path``; return ``path``.

    ``docs_name``: also copy it to ``docs/images/<docs_name>`` when
    ``TR_UPDATE_DOCS_IMAGES=1`` (how the README's screenshots are refreshed).
    """
    size = driver.get_window_size()
    if full_page:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.set_window_size(size["width"], min(max(height, 200), max_height))
    try:
        if not driver.save_screenshot(str(path)):
            raise AssertionError(f"could not save a screenshot to {path}")
    finally:
        if full_page:
            driver.set_window_size(size["width"], size["height"])
    if docs_name and os.environ.get("TR_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / docs_name)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, read from its header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, *, process: subprocess.Popen | None = None, log: Path | None = None,
              timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200; fail early (with the log's tail) if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise AssertionError(f"server exited with {process.returncode} before {url} "
                                 f"answered:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def stop_process(process: subprocess.Popen) -> None:
    """Terminate ``process`` and its children (it was started in its own session)."""
    import signal

    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
