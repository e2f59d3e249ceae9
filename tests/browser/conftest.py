"""Browser tests: JupyterLab from the venv, served headless on localhost, driven by
Playwright in Debian's chromium (``/usr/bin/chromium``; no browser download).

``lab`` starts one ``jupyter lab`` per test module in a temp folder holding notebook 01
converted to ``.ipynb`` (jupytext), with ``$WORKBENCH_RELEASE`` set to the small release
and isolated Jupyter config, settings, runtime and IPython folders; it stops the server,
its kernels and anything else it started at the end. ``page`` is a fresh browser context
per test; on failure it saves a screenshot. Screenshots go to
``$WORKBENCH_TEST_ARTIFACTS/browser/`` (else ``outputs/test-artifacts/browser/``), with
the server's log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOKS_SERVED = ["01_quickstart"]
STARTUP_TIMEOUT = 120.0
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# JupyterLab user settings: every cell stays in the page (no virtual scrolling, so a
# widget below the fold can be found), no news or update pop-ups (no network either).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}

_FAILED = pytest.StashKey[bool]()


def _skip_reason() -> str | None:
    if not CHROMIUM.is_file():
        return ("no /usr/bin/chromium (the browser tests use Debian's chromium; as root: "
                "apt-get install -y chromium, or run env/bootstrap.sh as root)")
    for module, extra in (("playwright", "dev"), ("jupyterlab", "lab"), ("jupytext", "dev")):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module} is not installed (the {extra} extra)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    if ours and (reason := _skip_reason()):
        for item in ours:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    if rep.when == "call" and rep.failed:
        item.stash[_FAILED] = True
    return rep


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots and the server log go (kept after the run, gitignored); the
    screenshots of an earlier run are removed first."""
    base = os.environ.get("WORKBENCH_TEST_ARTIFACTS")
    out = (Path(base) if base else ROOT / "outputs" / "test-artifacts") / "browser"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    return out


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL, token and notebook folder."""

    url: str
    token: str
    root: Path

    def tree_url(self, name: str) -> str:
        """The URL that opens notebook ``name`` in a fresh workspace."""
        return f"{self.url}/lab/tree/{name}?reset&token={self.token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(lab_url: str, token: str, path: str, method: str = "GET") -> int:
    req = urllib.request.Request(f"{lab_url}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def _convert_notebooks(dest: Path) -> None:
    import jupytext

    for name in NOTEBOOKS_SERVED:
        nb = jupytext.read(NOTEBOOKS / f"{name}.py")
        nb.metadata.pop("jupytext", None)   # a plain .ipynb, not paired with a .py
        jupytext.write(nb, dest / f"{name}.ipynb")


def _stop(proc: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then make sure that it and
    every process it started are gone."""
    import psutil

    try:
        started = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    if proc.poll() is None:
        try:
            _api(url, token, "/api/shutdown", method="POST")
        except (urllib.error.URLError, OSError):
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
    _, alive = psutil.wait_procs(started, timeout=15)
    for p in alive:     # a kernel the server did not stop
        p.kill()
    psutil.wait_procs(alive, timeout=15)


@pytest.fixture(scope="module")
def lab(small_release: Path, artifacts: Path) -> Iterator[Lab]:
    """``jupyter lab`` (this venv) on a free localhost port, token-protected, serving the
    notebooks (as .ipynb) with ``$WORKBENCH_RELEASE`` = the small release."""
    with tempfile.TemporaryDirectory(prefix="wb-lab-") as tmp:
        tmp_path = Path(tmp)
        root, settings = tmp_path / "notebooks", tmp_path / "lab-settings"
        root.mkdir()
        _convert_notebooks(root)
        for rel, value in LAB_SETTINGS.items():
            f = settings / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        env = {**os.environ,
               "WORKBENCH_RELEASE": str(small_release),
               "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
               "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
               "IPYTHONDIR": str(tmp_path / "ipython"),
               "JUPYTER_PLATFORM_DIRS": "1"}
        env.pop("WORKBENCH_RUN_RECORD", None)
        port, token = _free_port(), secrets.token_hex(16)
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
               "--ServerApp.terminals_enabled=False",
               # nothing from the network: no update check, news or extension catalogue
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.news_url=", "--LabApp.extension_manager=readonly"]
        log_path = artifacts / "jupyter-server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + STARTUP_TIMEOUT
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"jupyter lab exited with {proc.returncode} "
                                           f"before answering; see {log_path}")
                    try:
                        if _api(url, token, "/api/status") == 200:
                            break
                    except (urllib.error.URLError, OSError):
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"jupyter lab did not answer on {url} within "
                                           f"{STARTUP_TIMEOUT:.0f} s; see {log_path}")
                    time.sleep(0.25)        # polling the server while it starts
                yield Lab(url=url, token=token, root=root)
            finally:
                _stop(proc, url, token)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's chromium, headless, launched by Playwright (a fresh profile)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A page in a fresh browser context; a screenshot is saved if the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        yield pg
    finally:
        if request.node.stash.get(_FAILED, False):
            try:
                pg.screenshot(path=artifacts / f"FAILED-{request.node.name}.png")
            except Exception as e:  # the page may be gone; the test's own error matters
                print(f"no failure screenshot: {e}", file=sys.stderr)
        context.close()
