"""Fixtures for the app tests: a small self-contained data directory per test session, and a fresh
job store per test (the data directory's dataset and links are shared, runs and jobs are not)."""
from __future__ import annotations

import shutil

import pytest

from app_data import build_data_dir


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory):
    return build_data_dir(tmp_path_factory.mktemp("taxolens-data"))


@pytest.fixture()
def data_dir(fixture_data, tmp_path, monkeypatch):
    """TAXOLENS_DATA for one test: the session's dataset and model links, its own runs and jobs."""
    root = tmp_path / "data"
    root.mkdir()
    (fixture_data / "features").mkdir(exist_ok=True)     # the feature cache is worth sharing
    for entry in fixture_data.iterdir():
        if entry.name in ("runs", "jobs") or entry.name.startswith("taxolens.db"):
            continue
        (root / entry.name).symlink_to(entry.resolve() if entry.is_symlink() else entry)
    monkeypatch.setenv("TAXOLENS_DATA", str(root))
    yield root
    shutil.rmtree(root / "runs", ignore_errors=True)
