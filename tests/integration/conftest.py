"""Fixtures shared by the job-system integration tests."""
import os
from pathlib import Path

import pytest

from core import paths

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A fresh data dir, with the test-only job kinds importable here and in spawned children."""
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TAXOLENS_JOB_PLUGINS", "jobkinds_testonly")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(paths.ROOT), str(HERE)]))
    monkeypatch.syspath_prepend(str(HERE))
    return tmp_path
