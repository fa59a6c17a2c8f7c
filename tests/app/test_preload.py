"""ui.common.preload_predictor: `make app` loads Predict's checkpoint in the background once per
server, the one Predict preselects, and nothing happens without TAXOLENS_PRELOAD (tests, bare runs)."""
from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from core import runs
from ui import app_runner, common


@pytest.fixture()
def preload(monkeypatch):
    """A fresh once-per-process flag, fake runs, and a fake cached predictor that records its calls."""
    monkeypatch.setattr(common, "_preload", {"started": False})
    newest, preferred = SimpleNamespace(path=Path("/runs/b")), SimpleNamespace(path=Path("/runs/a"))
    monkeypatch.setattr(common, "trained_runs", lambda: [newest, preferred])
    monkeypatch.setattr(common, "preferred_checkpoint", lambda: (Path("/runs/a"), "default"))
    monkeypatch.setattr(runs, "checkpoint_stamp", lambda path: f"stamp-of-{Path(path).name}")
    calls, done = [], threading.Event()

    def fake_predictor(run_dir, stamp):
        calls.append(("load", run_dir, stamp))
        done.set()
        return object()

    monkeypatch.setattr(common, "predictor", fake_predictor)
    return SimpleNamespace(calls=calls, done=done)


def test_preload_loads_the_preselected_checkpoint_once(preload, monkeypatch):
    monkeypatch.setenv(app_runner.PRELOAD_ENV, "1")
    common.preload_predictor()
    common.preload_predictor()          # a second page view: nothing more
    assert preload.done.wait(10)
    threading.Event().wait(0.2)
    assert preload.calls == [("load", "/runs/a", "stamp-of-a")]


def test_no_preload_without_the_app_runners_variable(preload, monkeypatch):
    monkeypatch.delenv(app_runner.PRELOAD_ENV, raising=False)
    common.preload_predictor()
    assert not preload.done.wait(0.5) and preload.calls == []


def test_a_failing_preload_is_logged_and_leaves_the_page_to_load(preload, monkeypatch, caplog):
    monkeypatch.setenv(app_runner.PRELOAD_ENV, "1")
    failed = threading.Event()

    def broken(run_dir, stamp):
        failed.set()
        raise OSError("weights missing")

    monkeypatch.setattr(common, "predictor", broken)
    seen = []
    monkeypatch.setattr(common.log, "exception", lambda msg, *args: seen.append(msg % args))
    common.preload_predictor()
    assert failed.wait(10)
    for _ in range(100):
        if seen:
            break
        threading.Event().wait(0.05)
    assert seen == ["preloading the checkpoint /runs/a failed"]


def test_preselected_run_is_the_preferred_one_when_listed_else_the_newest(monkeypatch):
    kept = SimpleNamespace(lm_init="pretrained", condition="none")     # the newest of these is b
    a, b = SimpleNamespace(path=Path("/runs/a"), config=kept), SimpleNamespace(path=Path("/runs/b"), config=kept)
    monkeypatch.setattr(common, "preferred_checkpoint", lambda: (Path("/runs/a"), "default"))
    assert common.preselected_run([b, a]) is a
    monkeypatch.setattr(common, "preferred_checkpoint", lambda: (Path("/runs/gone"), "default"))
    assert common.preselected_run([b, a]) is b
    monkeypatch.setattr(common, "preferred_checkpoint", lambda: (None, None))
    assert common.preselected_run([b, a]) is b and common.preselected_run([]) is None
