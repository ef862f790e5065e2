"""The HTML report in a real browser: headless Chromium driven by Selenium.

Checks what only a browser can: every image decodes (``naturalWidth > 0``), the page makes no
request that leaves it (only ``data:`` and the report's own ``file:`` URL), and each navigation
link lands on its section. Needs Debian's ``chromium`` and ``chromium-driver`` and the
``selenium`` package (the ``dev`` extra); skips, naming what is missing, without them. Install
with ``apt-get install -y chromium chromium-driver`` (``.ci/run`` tries it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forgetir.report.write import write_report
from test_report import make_run_dir

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Flags that work in a container as root and keep Chromium from calling home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]
# Schemes that stay on this machine: inline images, the report file itself, and the browser's
# own pages (its blank new-tab page may log a chrome-untrusted: request before ours loads).
LOCAL_SCHEMES = ("data:", "file:", "about:", "chrome:", "chrome-untrusted:", "devtools:")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (DRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found (apt-get install -y {package})"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Path]]:
    """A Chromium session that has loaded a freshly written report (performance log on)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    root = tmp_path_factory.mktemp("browser")
    html = write_report(make_run_dir(root), quiet=True)["html"]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={root / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # An explicit driver path: Selenium Manager would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(html).resolve().as_uri())
        yield driver, Path(html)
    finally:
        driver.quit()


def test_every_image_decodes(page) -> None:
    driver, _ = page
    images = driver.execute_script(
        "return Array.from(document.images).map(i => "
        "({src: i.src.slice(0, 40), complete: i.complete, width: i.naturalWidth}))"
    )
    # The toy run has a quality chart, a grid, loss, sweep, relearning and membership plots.
    assert len(images) >= 4, images
    broken = [i for i in images if not (i["complete"] and i["width"] > 0)]
    assert not broken, f"images that did not decode: {broken}"


def test_no_request_leaves_the_page(page) -> None:
    driver, html = page
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert any(u.startswith("file:") for u in urls), urls  # the log did record the page load
    outside = [u[:80] for u in urls if not u.startswith(LOCAL_SCHEMES)]
    assert not outside, f"requests leaving the page: {outside}"
    # Resource Timing lists every fetched subresource; inline data: images are not fetched.
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [u for u in fetched if not u.startswith(LOCAL_SCHEMES)] == []


def test_navigation_links_land_on_their_sections(page) -> None:
    from selenium.webdriver.common.by import By

    driver, _ = page
    links = driver.find_elements(By.CSS_SELECTOR, "nav a")
    targets = [a.get_attribute("href").rsplit("#", 1)[1] for a in links]
    assert {"quality", "grids", "verify", "audit"} <= set(targets)
    for target in targets:
        driver.execute_script("window.scrollTo(0, 0)")
        driver.find_element(By.CSS_SELECTOR, f'nav a[href="#{target}"]').click()
        state = driver.execute_script(
            "const el = document.getElementById(arguments[0]);"
            "return {hash: location.hash, found: el !== null,"
            " top: el ? el.getBoundingClientRect().top : null,"
            " bottom: window.scrollY + window.innerHeight,"
            " height: document.documentElement.scrollHeight};",
            target,
        )
        assert state["hash"] == f"#{target}" and state["found"], state
        # The section's heading is at the top of the window, unless the page ended first.
        at_top = abs(state["top"]) <= 2
        page_end = state["bottom"] >= state["height"] - 2 and 0 <= state["top"] < 900
        assert at_top or page_end, (target, state)
