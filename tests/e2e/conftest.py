"""Fixtures for the browser tests: a data directory with a tiny trained checkpoint, the app started
by ui.app_runner on a free port (Streamlit + job worker), and Debian's Chromium driven by
Playwright. Screenshots go to artifacts/e2e/ (git-ignored)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from core import paths

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from app_data import build_data_dir  # noqa: E402 - shared with tests/app
from app_server import AppDidNotStart, running_app  # noqa: E402

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


@pytest.fixture(scope="session")
def app_url(e2e_data):
    """The app as `make app` runs it (without the first-run job: the fixture has a checkpoint)."""
    try:
        with running_app(e2e_data, e2e_data / "app_runner.log", START_TIMEOUT_S) as url:
            yield url
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


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
    # Waits are for the app's answer, not a speed goal (bench/ times it): with 60 s, the Train
    # form's job test failed on a 2-core machine busy with a training run.
    p.set_default_timeout(180_000)
    yield p
    context.close()


@pytest.fixture(scope="session")
def shots():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
