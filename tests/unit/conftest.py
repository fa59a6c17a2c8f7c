"""Fixtures shared by the unit tests."""
import pytest

from core import paths, taxonomy


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data dir that still reads the real WordNet (loaded once per process, not per dir)."""
    wordnet = paths.nltk_dir()
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TAXOLENS_DATA", str(root))
    monkeypatch.setattr(paths, "nltk_dir", lambda: wordnet)
    monkeypatch.setattr(taxonomy, "chains_path", lambda: root / taxonomy.CHAINS_FILE)  # not the real one
    return root
