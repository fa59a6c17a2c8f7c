"""WordNet 3.0 through nltk: synsets, deterministic hypernym chains, display names and articles.

The WordNet files live in `paths.nltk_dir()/corpora/wordnet/` (put there by `make assets`). nltk's own
`hypernym_paths()` order changes with PYTHONHASHSEED, so every chain list here is sorted (shortest
first, then by the synset names leaf→root) and the same on every run.
"""
from __future__ import annotations

import functools
import json
import re
import warnings
from pathlib import Path

from core import files, paths

_SYNSET_NAME = re.compile(r"^[^.\s]([^\s]*[^.\s])?\.[nvasr]\.\d+$")
_REQUIRED_FILES = ("data.noun", "index.noun", "lexnames")

# Words spelt with a vowel letter but spoken with a consonant first ("a unicorn", "a one-way ...")
# and words spelt with a consonant but spoken with a vowel first ("an hour"). Prefix matches.
_CONSONANT_SOUND_VOWELS = ("uni", "use", "usu", "uti", "ute", "ura", "ure", "uro", "uku", "eu", "ewe",
                           "one", "once", "ouija")
_VOWEL_SOUND_CONSONANTS = ("hour", "honest", "honor", "honour", "heir")


class TaxonomyError(LookupError):
    """WordNet is missing or a synset name is unknown/malformed; the message is user-facing."""


def wordnet_dir():
    return paths.nltk_dir() / "corpora" / "wordnet"


def wn():
    """The nltk WordNet reader over `paths.nltk_dir()` (one per data dir, built on first use)."""
    return _reader(str(paths.nltk_dir()))


@functools.lru_cache(maxsize=4)
def _reader(nltk_root: str):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _EnglishOnly(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            # On start nltk maps another WordNet version onto this one for the multilingual (OMW)
            # functions, which TaxoLens never calls -- and for 3.0 it maps 3.0 onto itself (it
            # compares "3.0" with the corpus name), reading index.sense twice: 6 of the 10 s
            # WordNet took to load on 2 cores.
            return None

    corpus = Path(nltk_root) / "corpora" / "wordnet"
    missing = [f for f in _REQUIRED_FILES if not (corpus / f).is_file()]
    if missing:
        raise TaxonomyError(f"WordNet 3.0 not found in {corpus} (missing {', '.join(missing)}): "
                            f"run `make assets` (or `python -m core.assets fetch --only wordnet`)")
    # nltk refuses to open a file with more than one hard link (its path sandbox, CWE-59): a data
    # folder copied with `cp -al` fails deep inside a command, so say it here, with the way out.
    linked = sorted(f.name for f in corpus.iterdir() if f.is_file() and f.stat().st_nlink > 1)
    if linked:
        raise TaxonomyError(f"WordNet's files in {corpus} are hard links ({', '.join(linked[:3])}"
                            f"{' and more' if len(linked) > 3 else ''}), which nltk refuses to read: copy "
                            f"that folder (cp -r) instead of linking it, or run `make assets` in a fresh data folder")
    # nltk refuses corpus roots outside nltk.data.path (its path sandbox), so register ours.
    if nltk_root not in nltk.data.path:
        nltk.data.path.append(nltk_root)
    with warnings.catch_warnings():
        # No Open Multilingual Wordnet: fine, TaxoLens is English-only.
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        reader = _EnglishOnly(str(corpus), None)
    version = reader.get_version()
    if version != "3.0":
        raise TaxonomyError(f"expected WordNet 3.0 in {corpus}, found version {version}: "
                            f"delete it and run `make assets`")
    return reader


def synset(name: str):
    """The nltk Synset for a name like 'dog.n.01' (case-insensitive; aliases such as
    'domestic_dog.n.01' resolve to the canonical synset, whose .name() may differ)."""
    if not isinstance(name, str) or not _SYNSET_NAME.match(name.strip()):
        raise TaxonomyError(f"unknown WordNet synset {name!r} (expected a name like 'dog.n.01')")
    from nltk.corpus.reader.wordnet import WordNetError

    try:
        return wn().synset(name.strip())
    except (WordNetError, ValueError, KeyError):
        raise TaxonomyError(f"unknown WordNet synset {name.strip()!r}") from None


def canonical_name(name: str) -> str:
    """The synset's own name ('domestic_dog.n.01' → 'dog.n.01')."""
    return synset(name).name()


def hypernym_chains(name: str, remembered: bool = True) -> list[list[str]]:
    """Every hypernym path from `name` (leaf, first) to the root ('entity.n.01', last), following
    hypernyms and instance hypernyms; sorted shortest first, then lexicographically by names.
    `remembered`: read from (and add to) CHAINS_FILE first, so a process asked about a synset
    before gets its chains without loading WordNet (seconds: Predict needs only its leaf's)."""
    if not remembered:
        return [list(chain) for chain in _chains(canonical_name(name))]
    return remember_chains([name])[name]


CHAINS_FILE = "taxolens-chains.json"   # beside the WordNet files: as valid as they are


def chains_path() -> Path:
    return wordnet_dir() / CHAINS_FILE


def remember_chains(names) -> dict[str, list[list[str]]]:
    """{name: hypernym_chains(name)} for each name, through CHAINS_FILE: the names it lacks are
    chained from WordNet and written back in one atomic write (a read-only data dir just skips
    it). Keyed by the name as given ('Dog.n.01' and 'dog.n.01' are two entries of one chain)."""
    path = chains_path()
    known = _known_chains(str(path))
    todo = [n for n in dict.fromkeys(names) if n not in known]
    if todo:
        known.update({n: [list(chain) for chain in _chains(canonical_name(n))] for n in todo})
        try:
            on_disk = _read_chains(path)
            files.write_atomic(path, json.dumps({**on_disk, **known}, sort_keys=True).encode())
        except OSError:
            pass
    return {n: [list(chain) for chain in known[n]] for n in names}


@functools.lru_cache(maxsize=4)
def _known_chains(path: str) -> dict[str, list[list[str]]]:
    return _read_chains(Path(path))


def _read_chains(path: Path) -> dict:
    """CHAINS_FILE's entries; {} when it is missing or not what this module writes."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(data, dict) and all(
        isinstance(chains, list) and all(isinstance(c, list) and c and all(isinstance(s, str) for s in c)
                                         for c in chains) for chains in data.values())
    return data if ok else {}


@functools.lru_cache(maxsize=4096)
def _chains(canonical: str) -> tuple[tuple[str, ...], ...]:
    chains = {tuple(s.name() for s in reversed(path)) for path in synset(canonical).hypernym_paths()}
    return tuple(sorted(chains, key=lambda chain: (len(chain), chain)))


def ancestors(name: str) -> set[str]:
    """All proper ancestors (over every chain) of a synset, by canonical name."""
    leaf = canonical_name(name)
    return {s for chain in _chains(leaf) for s in chain[1:]}


def is_ancestor(ancestor: str, name: str) -> bool:
    """True when `ancestor` lies on any hypernym chain of `name` above it (a synset is not its
    own ancestor)."""
    return canonical_name(ancestor) in ancestors(name)


def lemma_names(name: str) -> list[str]:
    """The synset's lemmas as words, in WordNet's order ('dog.n.01' → ['dog', 'domestic dog', ...])."""
    return [lemma.replace("_", " ") for lemma in synset(name).lemma_names()]


def display_name(name: str) -> str:
    """Words for a synset name without touching WordNet: 'ice_cream.n.01' → 'ice cream'.
    A plain word ('ice_cream') is accepted too."""
    if not isinstance(name, str) or not name.strip():
        raise TaxonomyError(f"cannot make a display name from {name!r}")
    word = name.strip()
    if _SYNSET_NAME.match(word):
        word = word.rsplit(".", 2)[0]
    return word.replace("_", " ")


def article(noun: str) -> str:
    """'a' or 'an' for a noun phrase, by the sound of its first word (small exception lists)."""
    words = noun.strip().split()
    if not words:
        raise TaxonomyError("cannot choose an article for an empty noun")
    first = words[0].lower()
    if first.startswith(_VOWEL_SOUND_CONSONANTS):
        return "an"
    if first.startswith(_CONSONANT_SOUND_VOWELS):
        return "a"
    return "an" if first[0] in "aeiou" else "a"


def with_article(noun: str) -> str:
    """'apple' → 'an apple', 'item of clothing' → 'an item of clothing', 'unicorn' → 'a unicorn'."""
    noun = display_name(noun) if _SYNSET_NAME.match(noun.strip()) else noun.strip()
    return f"{article(noun)} {noun}"


# --- distances and walking down (core.clusters, the open-vocabulary chain in core.predict) -------

@functools.lru_cache(maxsize=65536)
def path_distance(a: str, b: str) -> int:
    """Edges on the shortest hypernym/hyponym path between two noun synsets (0 for the same one);
    WordNet's noun hierarchy has one root, so every pair is connected."""
    ca, cb = canonical_name(a), canonical_name(b)
    if ca == cb:
        return 0
    if cb < ca:
        return path_distance(cb, ca)
    d = synset(ca).shortest_path_distance(synset(cb))
    if d is None:
        raise TaxonomyError(f"no WordNet path between {ca} and {cb}")
    return int(d)


def lowest_common_hypernym(names) -> str:
    """The deepest synset that is (or is an ancestor of) every name in `names`; ties broken by
    name. One name is its own answer."""
    names = [canonical_name(n) for n in names]
    if not names:
        raise TaxonomyError("no synsets to find a common hypernym of")
    common = None
    for name in names:
        mine = ancestors(name) | {name}
        common = mine if common is None else common & mine
    if not common:
        raise TaxonomyError(f"no common hypernym of {', '.join(names)}")
    return min(common, key=lambda s: (-depth(s), s))


@functools.lru_cache(maxsize=65536)
def depth(name: str) -> int:
    """Edges from the root on the longest hypernym chain (WordNet's max_depth)."""
    return int(synset(name).max_depth())


@functools.lru_cache(maxsize=16384)
def hyponyms(name: str) -> tuple[str, ...]:
    """Direct hyponyms of a synset (no instances such as named people or places), sorted by name."""
    return tuple(sorted(s.name() for s in synset(name).hyponyms()))


@functools.lru_cache(maxsize=65536)
def usage(name: str) -> int:
    """How often the synset's lemmas occur in WordNet's sense-tagged corpus (SemCor counts; 0
    when WordNet has no counts)."""
    try:
        return int(sum(lemma.count() for lemma in synset(name).lemmas()))
    except Exception:          # no cntlist.rev in this WordNet copy
        return 0
