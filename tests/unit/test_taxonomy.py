"""core.taxonomy on the real WordNet 3.0 files (fetched by `make assets`): chains, ancestry,
display names, articles, errors (chain order across interpreters: tests/integration/test_taxonomy_hashseed.py)."""
import json

import pytest

from core import taxonomy


def test_synset_and_aliases():
    assert taxonomy.synset("dog.n.01").name() == "dog.n.01"
    assert taxonomy.synset("Dog.n.01").name() == "dog.n.01"
    assert taxonomy.canonical_name("domestic_dog.n.01") == "dog.n.01"


@pytest.mark.parametrize("bad", ["dog", "dog.n.99", "zzzqqq.n.01", "", "dog.x.01", None])
def test_unknown_synset_raises_taxonomy_error(bad):
    with pytest.raises(taxonomy.TaxonomyError, match="unknown WordNet synset"):
        taxonomy.synset(bad)


def test_chains_run_leaf_to_root_and_are_sorted():
    chains = taxonomy.hypernym_chains("dog.n.01")
    assert len(chains) == 2
    for chain in chains:
        assert chain[0] == "dog.n.01" and chain[-1] == "entity.n.01"
    assert chains == sorted(chains, key=lambda c: (len(c), c))
    assert "domestic_animal.n.01" in chains[0]           # the shorter path comes first
    assert "mammal.n.01" in chains[1]
    # Callers may mutate what they get; the cache must not change.
    chains[0].clear()
    assert taxonomy.hypernym_chains("dog.n.01")[0][0] == "dog.n.01"


def test_instance_hypernyms_are_followed():
    chain = taxonomy.hypernym_chains("paris.n.01")[0]      # an instance of national_capital.n.01
    assert chain[1] == "national_capital.n.01" and chain[-1] == "entity.n.01"


def test_is_ancestor():
    assert taxonomy.is_ancestor("mammal.n.01", "squirrel.n.01")
    assert taxonomy.is_ancestor("animal.n.01", "dog.n.01")
    assert not taxonomy.is_ancestor("fish.n.01", "dog.n.01")
    assert not taxonomy.is_ancestor("dog.n.01", "dog.n.01")
    assert not taxonomy.is_ancestor("dog.n.01", "mammal.n.01")
    assert taxonomy.is_ancestor("mammal.n.01", "domestic_dog.n.01")   # aliases resolve
    with pytest.raises(taxonomy.TaxonomyError):
        taxonomy.is_ancestor("notathing.n.01", "dog.n.01")


def test_lemmas():
    assert taxonomy.lemma_names("ice_cream.n.01")[0] == "ice cream"


@pytest.mark.parametrize("name, words", [("dog.n.01", "dog"), ("ice_cream.n.01", "ice cream"),
                                         ("musical_instrument", "musical instrument"),
                                         ("item of clothing", "item of clothing")])
def test_display_name(name, words):
    assert taxonomy.display_name(name) == words


@pytest.mark.parametrize("noun, phrase", [
    ("apple", "an apple"), ("dog", "a dog"), ("item of clothing", "an item of clothing"),
    ("unicorn", "a unicorn"), ("umbrella", "an umbrella"), ("hour", "an hour"), ("owl", "an owl"),
    ("ukulele", "a ukulele"), ("European robin", "a European robin"), ("ice_cream.n.01", "an ice cream"),
    ("horse", "a horse"), ("onion", "an onion"), ("one-man band", "a one-man band"), ("utensil", "a utensil"),
])
def test_with_article(noun, phrase):
    assert taxonomy.with_article(noun) == phrase


def test_with_article_rejects_empty():
    with pytest.raises(taxonomy.TaxonomyError):
        taxonomy.with_article("  ")


def test_the_reader_skips_nltks_version_map_but_keeps_english_lookups():
    reader = taxonomy.wn()
    assert reader.map30 is None                       # the multilingual-only map, not built
    assert reader.get_version() == "3.0"
    assert reader.morphy("geese", "n") == "goose"     # the exception lists are still read
    assert [s.name() for s in reader.synsets("dogs")][:1] == ["dog.n.01"]


def test_missing_wordnet_says_run_make_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    with pytest.raises(taxonomy.TaxonomyError, match="make assets"):
        taxonomy.wn()
    with pytest.raises(taxonomy.TaxonomyError, match="make assets"):
        taxonomy.synset("cat.n.01")


def test_a_hard_linked_wordnet_folder_is_named_with_the_way_out(tmp_path, monkeypatch):
    """Reported: a data folder copied with `cp -al` failed deep in an import with nltk's "Security
    Violation [pathsec.open]: refusing multiply-linked file", while `assets status` said ready."""
    import os
    import shutil
    source = taxonomy.wordnet_dir()                                   # the real one, before the switch
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    copy = tmp_path / "data" / "nltk_data" / "corpora" / "wordnet"
    shutil.copytree(source, copy)
    os.link(copy / "lexnames", tmp_path / "lexnames.link")          # a second name for one file
    taxonomy._reader.cache_clear()
    with pytest.raises(taxonomy.TaxonomyError, match=r"hard links \(lexnames\), which nltk refuses to read: "
                                                     r"copy that folder \(cp -r\)"):
        taxonomy.wn()
    (tmp_path / "lexnames.link").unlink()
    taxonomy._reader.cache_clear()
    assert taxonomy.wn().synset("dog.n.01").name() == "dog.n.01"
    taxonomy._reader.cache_clear()


@pytest.fixture
def chains_file(tmp_path, monkeypatch):
    """CHAINS_FILE in a folder of its own (the WordNet files themselves stay the real ones)."""
    monkeypatch.setattr(taxonomy, "chains_path", lambda: tmp_path / taxonomy.CHAINS_FILE)
    taxonomy._known_chains.cache_clear()
    yield tmp_path / taxonomy.CHAINS_FILE
    taxonomy._known_chains.cache_clear()


def _without_wordnet(monkeypatch):
    """From here on, any WordNet lookup fails (as a process that never loaded it, and cannot)."""
    taxonomy._known_chains.cache_clear()
    monkeypatch.setattr(taxonomy, "_chains", lambda name: pytest.fail(f"WordNet was read for {name}"))
    monkeypatch.setattr(taxonomy, "wn", lambda: pytest.fail("WordNet was loaded"))


def test_remembered_chains_come_back_without_loading_wordnet(chains_file, monkeypatch):
    chains = taxonomy.remember_chains(["dog.n.01", "cat.n.01"])
    assert chains["dog.n.01"] == taxonomy.hypernym_chains("dog.n.01", remembered=False)
    assert set(json.loads(chains_file.read_text())) == {"dog.n.01", "cat.n.01"}
    _without_wordnet(monkeypatch)
    got = taxonomy.hypernym_chains("dog.n.01")
    assert got == chains["dog.n.01"]
    got[0].clear()                                              # callers may mutate what they get
    assert taxonomy.hypernym_chains("dog.n.01") == chains["dog.n.01"]


def test_a_new_synset_is_added_to_the_remembered_ones(chains_file):
    taxonomy.remember_chains(["dog.n.01"])
    taxonomy._known_chains.cache_clear()
    taxonomy.hypernym_chains("paris.n.01")
    assert set(json.loads(chains_file.read_text())) == {"dog.n.01", "paris.n.01"}


@pytest.mark.parametrize("content", ["{not json", '{"dog.n.01": "entity.n.01"}', "[1, 2]", '{"dog.n.01": [[]]}'])
def test_a_damaged_chains_file_is_ignored_and_written_again(chains_file, content):
    chains_file.write_text(content)
    assert taxonomy.hypernym_chains("dog.n.01")[0][-1] == "entity.n.01"
    assert json.loads(chains_file.read_text())["dog.n.01"][0][0] == "dog.n.01"


def test_an_unknown_synset_is_not_remembered(chains_file):
    with pytest.raises(taxonomy.TaxonomyError, match="unknown WordNet synset"):
        taxonomy.remember_chains(["dog.n.01", "zzzqqq.n.01"])
    assert not chains_file.exists()
