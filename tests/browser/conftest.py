"""Browser tests: JupyterLab 4 in headless Chromium, driven through Python Playwright.

The browser is Debian's `chromium` package (never `playwright install`): the setup installs it with
apt-get where it can (root, apt available) and otherwise skips every browser test with one line
saying why. JupyterLab serves a copy of notebooks/ (so the repository's notebooks keep no outputs),
with the kit on PYTHONPATH and KIT_QUICK=1. Every page collects JavaScript console errors and page
errors; a test fails on any of them, and on any Python traceback shown in an output. Screenshots
go to build/browser/.

    pytest tests/browser -q          # README: "Browser tests"
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "build" / "browser"
CHROMIUM = os.environ.get("KIT_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "kit-browser-tests"


def _install_chromium() -> str | None:
    """Install Debian's chromium with apt-get; returns why not, or None when it is there."""
    if Path(CHROMIUM).exists():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "chromium is not installed and apt-get (as root) is not available to install it"
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "fonts-wqy-microhei"]):
        done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            return f"`{' '.join(args)}` failed: {done.stderr.strip().splitlines()[-1:]}"
    return None if Path(CHROMIUM).exists() else f"apt-get installed chromium but {CHROMIUM} is missing"


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: playwright is not installed (pip install -e '.[test]')")
    why = _install_chromium()
    if why:
        pytest.skip(f"browser tests: {why}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server over a copy of notebooks/ and data/; yields its base URL."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "KIT_QUICK": "1", "KIT_WORK_DIR": str(root / "work"),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    log = open(root / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(root / 'jupyter.log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        server.terminate()
        raise RuntimeError("jupyter lab did not start within 120 s")
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module", autouse=True)
def stop_kernels_after_module(request):
    """The lab server lives for the whole session; the kernels its pages started (about 2 GB each) are
    shut down after each browser test module instead of idling through the rest of the suite."""
    yield
    try:
        url = request.getfixturevalue("lab")
    except pytest.FixtureLookupError:
        return
    import json

    kernels = json.loads(urllib.request.urlopen(f"{url}/api/kernels?token={TOKEN}", timeout=10).read())
    for kernel in kernels:
        delete = urllib.request.Request(f"{url}/api/kernels/{kernel['id']}?token={TOKEN}", method="DELETE")
        urllib.request.urlopen(delete, timeout=30)


class ConsoleLog:
    """JavaScript console errors and uncaught page errors of one page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console.error: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def check(self) -> None:
        if self.errors:
            raise AssertionError("JavaScript errors on the page:\n" + "\n".join(self.errors))


@pytest.fixture
def page(browser, request):
    """A 1100 px wide page whose JavaScript errors fail the test; a screenshot is saved at the end."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.console_log = ConsoleLog(pg)
    yield pg
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    pg.console_log.check()
