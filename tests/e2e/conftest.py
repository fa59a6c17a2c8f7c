"""Fixtures for the browser tests: a data directory with a tiny trained checkpoint, the app started
by ui.app_runner on a free port (Streamlit + job worker), and Debian's Chromium driven by
Playwright. Screenshots go to artifacts/e2e/ (git-ignored)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core import paths

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from app_data import build_data_dir  # noqa: E402 - shared with tests/app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = paths.ROOT / "artifacts" / "e2e"
START_TIMEOUT_S = 90


def tiny_config(**kw):
    from core.config import TrainConfig
    return TrainConfig(**{"max_concepts": 6, "images_per_concept": 3, "epochs": 1, "batch_size": 16, **kw})


@pytest.fixture(scope="session")
def e2e_data(tmp_path_factory):
    """Data dir with a dataset subset and one tiny trained + evaluated checkpoint."""
    root = build_data_dir(tmp_path_factory.mktemp("e2e-data"))
    old = os.environ.get("TAXOLENS_DATA")
    os.environ["TAXOLENS_DATA"] = str(root)
    try:
        from core.evaluate import evaluate
        from core.train import train
        run_dir = train(tiny_config())
        evaluate(run_dir, split="test")
    finally:
        if old is None:
            os.environ.pop("TAXOLENS_DATA", None)
        else:
            os.environ["TAXOLENS_DATA"] = old
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url(e2e_data):
    """The app as `make app` runs it (without the first-run job: the fixture has a checkpoint)."""
    port = _free_port()
    log = open(e2e_data / "app_runner.log", "w")
    env = dict(os.environ, TAXOLENS_DATA=str(e2e_data), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ui.app_runner", "--host", "127.0.0.1", "--port", str(port),
                             "--no-first-run"], cwd=paths.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the app did not start: {(e2e_data / 'app_runner.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield url
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.set_default_timeout(60_000)
    yield p
    context.close()


@pytest.fixture(scope="session")
def shots():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
