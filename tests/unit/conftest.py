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


@pytest.fixture
def tiny(data_dir, monkeypatch):
    """The unit data dir, whose dataset 'tiny' is the in-memory tiny dataset."""
    from core.data import datasets
    from tiny_concepts import tiny_dataset

    real_load = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda name="concepts": tiny_dataset() if name == "tiny" else real_load(name))
    return data_dir
