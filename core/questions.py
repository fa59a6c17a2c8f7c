"""Yes/no questions about images, and the train/val/test split of images.

Every image gets leaf questions ("Is there a dog in the image?" -> yes, plus `negatives` questions
about other concepts -> no) and hypernym questions (one per category of its concept -> yes, and as
many about categories it is NOT in -> no). Under counterfactual shuffles an image is asked about the
concept it is *labelled* as (`labeling`), and inherits that concept's categories.

Everything is a pure function of (dataset, images, labeling, seed): negatives are drawn from a
random generator seeded by (seed, image id), so the same image always gets the same questions no
matter which other images are in the batch or split.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from core.taxonomy import with_article

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Question:
    image_id: str
    concept: str        # the image's TRUE concept
    kind: str           # "leaf" | "hypernym"
    target: str         # concept name (leaf) or category name (hypernym) asked about
    text: str           # "Is there a dog in the image?"
    answer: bool


# --- wording -----------------------------------------------------------------------------------

# Mass nouns cannot take "a"/"an" ("Is there a clothing ...?" is wrong); they are counted with a
# measure phrase instead. Keyed by the head (last) word so "sports equipment" is covered too.
MEASURE_PHRASES = {
    "clothing": "item of", "apparel": "item of", "underwear": "item of",
    "footwear": "piece of", "headwear": "piece of", "furniture": "piece of", "equipment": "piece of",
    "jewelry": "piece of", "jewellery": "piece of", "decor": "piece of", "luggage": "piece of",
    "cutlery": "piece of", "tableware": "piece of", "cookware": "piece of", "kitchenware": "piece of",
    "hardware": "piece of", "stationery": "piece of", "sportswear": "piece of",
}
# Food and drink mass nouns read naturally bare: "Is there rice in the image?".
BARE_MASS_NOUNS = frozenset({
    "food", "seafood", "rice", "bread", "cheese", "butter", "honey", "meat", "bacon", "popcorn",
    "spaghetti", "pasta", "sushi", "chocolate", "corn", "broccoli", "lettuce", "garlic", "ginger",
    "salt", "sugar", "water", "milk", "coffee", "tea", "wine", "beer", "sake", "soup", "curry",
    "cream", "candy", "ice", "money", "mail", "trash", "champagne", "custard", "tempura", "fondue",
})
# Plural-only nouns name one object as "a pair of ...".
PAIR_NOUNS = frozenset({
    "scissors", "pants", "jeans", "shorts", "trousers", "glasses", "eyeglasses", "sunglasses",
    "goggles", "binoculars", "pliers", "tongs", "tweezers", "headphones", "earphones", "earmuffs",
    "chopsticks", "skis", "socks", "gloves", "mittens", "boots", "shoes", "sandals", "slippers",
    "briefs", "maracas",
})
# Words ending in -s that are singular; other -s heads are read as plurals ("Are there cherries").
SINGULAR_S = frozenset({"lens", "chess", "gas", "bus", "dice", "news", "series", "species", "ibis",
                        "mantis", "iris", "octopus", "platypus", "walrus", "cactus", "hibiscus",
                        "lotus", "canvas", "atlas", "compass", "bass", "harness", "mattress",
                        "rhinoceros"})
_COUNTING_PREFIXES = ("a ", "an ", "the ", "item of ", "items of ", "piece of ", "pieces of ",
                      "pair of ", "pairs of ")


def question_text(label: str) -> str:
    """'dog' -> 'Is there a dog in the image?'; handles mass nouns, pairs and plurals."""
    label = " ".join(label.strip().split())
    if not label:
        raise ValueError("cannot ask about an empty label")
    lower = label.lower()
    head = lower.split()[-1]
    if lower.startswith(("a ", "an ", "the ")):
        return f"Is there {label} in the image?"           # the label already carries its article
    if lower.startswith(_COUNTING_PREFIXES):
        return f"Is there {with_article(label)} in the image?"
    if head in PAIR_NOUNS:
        return f"Is there a pair of {label} in the image?"
    if head in MEASURE_PHRASES:
        return f"Is there {with_article(MEASURE_PHRASES[head] + ' ' + label)} in the image?"
    if head in BARE_MASS_NOUNS:
        return f"Is there {label} in the image?"
    if _looks_plural(head):
        return f"Are there {label} in the image?"
    return f"Is there {with_article(label)} in the image?"


def _looks_plural(word: str) -> bool:
    if word in SINGULAR_S or not word.endswith("s"):
        return False
    return not word.endswith(("ss", "us", "is", "ous"))


# --- questions ---------------------------------------------------------------------------------

def shown_concept(concept: str, labeling: Mapping[str, str] | None) -> str:
    """The concept an image of `concept` is shown (named and categorised) as under a labeling."""
    return labeling[concept] if labeling is not None else concept


def build_questions(ds, images: Iterable, labeling: Mapping[str, str] | None, seed: int,
                    negatives: int = 1, hard_negatives: int = 0, draw: int = 0,
                    known: Mapping[str, frozenset] | None = None) -> list[Question]:
    """Leaf and hypernym questions for `images` (ImageItems of `ds`).

    labeling: concept -> concept whose name and categories the image is given (None = identity).
    negatives: "no" leaf questions per image, and "no" hypernym questions per "yes" one (capped by
    how many other concepts / categories exist). Categories without any concept are never asked.
    hard_negatives: further "no" leaf questions per image about its siblings (concepts in the shown
    concept's most specific category; then any category it shares), drawn from their own seeded
    generator so the other questions are the same with or without them.
    known: shown concept -> the categories the run is told it belongs to (known_categories); hard
    negatives are siblings by these only, so they hand a run no taxonomy its condition withholds
    (None: the dataset's own categories).
    draw: which draw of the random "no" leaf questions (0: the usual one). Draw d > 0 takes them
    from a generator seeded by (seed, image id, d), so training can ask new ones every epoch while
    every other question, and the count of each kind, stays the same.
    """
    for name, value in (("negatives", negatives), ("hard_negatives", hard_negatives)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    concepts = sorted(ds.concepts)
    used_categories = sorted({k for c in ds.concepts.values() for k in c.categories})
    leaf_text = {name: question_text(ds.concepts[name].label) for name in concepts}
    category_text = {name: question_text(ds.categories[name].label) for name in used_categories}
    sibling_categories = known if known is not None else \
        {name: frozenset(ds.concepts[name].categories) for name in concepts}
    members: dict[str, list[str]] = {}
    for name in concepts:
        for cat in sibling_categories.get(name, ()):
            members.setdefault(cat, []).append(name)

    questions: list[Question] = []
    for item in images:
        shown = shown_concept(item.concept, labeling)
        if shown not in ds.concepts:
            raise KeyError(f"labeling maps {item.concept!r} to unknown concept {shown!r}")
        rng = random.Random(f"{seed}:{item.id}")
        shown_label = ds.concepts[shown].label
        questions.append(Question(item.id, item.concept, "leaf", shown, leaf_text[shown], True))
        others = [c for c in concepts if c != shown and ds.concepts[c].label != shown_label]
        drawn = rng.sample(others, min(negatives, len(others)))
        if draw:    # after the usual draw, so the hypernym negatives below do not change with it
            drawn = random.Random(f"{seed}:{item.id}:draw{draw}").sample(others, len(drawn))
        for other in drawn:
            questions.append(Question(item.id, item.concept, "leaf", other, leaf_text[other], False))

        positives = list(dict.fromkeys(ds.concepts[shown].categories))
        for cat in positives:
            questions.append(Question(item.id, item.concept, "hypernym", cat, category_text[cat], True))
        positive_labels = {ds.categories[k].label for k in positives}
        outside = [k for k in used_categories
                   if k not in positives and ds.categories[k].label not in positive_labels]
        for cat in rng.sample(outside, min(negatives * len(positives), len(outside))):
            questions.append(Question(item.id, item.concept, "hypernym", cat, category_text[cat], False))
        if hard_negatives:
            hard_rng = random.Random(f"{seed}:{item.id}:hard")
            for other in _siblings(sibling_categories.get(shown, ()), members, others, set(drawn),
                                   hard_negatives, hard_rng):
                questions.append(Question(item.id, item.concept, "leaf", other, leaf_text[other], False))
    return questions


def naming_text(ds, item, labeling: Mapping[str, str] | None) -> str:
    """'Is there a dog': the yes leaf question of `item` (the concept it is shown as) up to its
    name, what the naming term (TrainConfig.name_loss) trains the LM to say about the image."""
    question = question_text(ds.concepts[shown_concept(item.concept, labeling)].label)
    return question.removesuffix(" in the image?")


def ranked_leaf_texts(ds, item, labeling: Mapping[str, str] | None, k: int, rng: random.Random,
                      known: Mapping[str, frozenset] | None = None, sibling_share: float = 0.0) -> list[str]:
    """The leaf question about the concept `item` is shown as, then k about other concepts drawn by
    `rng` (never one with the same label): what a listwise ranking loss puts in one softmax.
    sibling_share: that share of the k (rounded) are drawn from the shown concept's siblings by
    `known` (known_categories: concepts sharing its most specific known category first, then any
    known category), the rest at random."""
    shown = shown_concept(item.concept, labeling)
    label = ds.concepts[shown].label
    others = [c for c in sorted(ds.concepts) if c != shown and ds.concepts[c].label != label]
    drawn: list[str] = []
    n_siblings = round(sibling_share * min(k, len(others))) if known is not None else 0
    if n_siblings:
        mine = known.get(shown, frozenset())
        size = {}
        for c in others:
            for cat in known.get(c, frozenset()) & mine:
                size[cat] = size.get(cat, 0) + 1
        for cat in sorted(size, key=lambda x: (size[x], x)):       # most specific shared category first
            pool = [c for c in others if cat in known.get(c, frozenset()) and c not in drawn]
            drawn += rng.sample(pool, min(n_siblings - len(drawn), len(pool)))
            if len(drawn) == n_siblings:
                break
    rest = [c for c in others if c not in drawn]
    drawn += rng.sample(rest, min(k - len(drawn), len(rest)))
    return [question_text(ds.concepts[c].label) for c in [shown, *drawn]]


def known_categories(ds, deprivation) -> dict[str, frozenset]:
    """Shown concept -> the categories a run is told it belongs to: its categories minus those whose
    hypernym questions the condition removes (for the true concept the shown one labels). Sibling
    ranking negatives come from these, so they tell a run no more taxonomy than its own training
    questions do (a withheld pair never makes two concepts siblings)."""
    labeling = deprivation.labeling or {}
    true_of = {labeling.get(c, c): c for c in ds.concepts}
    return {shown: frozenset(k for k in ds.concepts[shown].categories
                             if (true_of.get(shown, shown), k) not in deprivation.removed)
            for shown in ds.concepts}


def _siblings(categories: Iterable[str], members: Mapping[str, list[str]], others: list[str],
              asked: set, k: int, rng: random.Random) -> list[str]:
    """Up to k concepts (from `others`, not yet `asked`) that share the shown concept's most specific
    of `categories` (fewest members), then any of them: the negatives that teach fine distinctions."""
    allowed = set(others) - asked
    cats = sorted(categories, key=lambda c: (len(members[c]), c))
    chosen: list[str] = []
    for tier in ([cats[0]] if cats else [], cats[1:]):
        pool = sorted({c for cat in tier for c in members[cat]} & allowed - set(chosen))
        chosen += rng.sample(pool, min(k - len(chosen), len(pool)))
        if len(chosen) == k:
            break
    return chosen


# --- splits ------------------------------------------------------------------------------------

def split_images(ds, seed: int, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> dict[str, str]:
    """image id -> "train" | "val" | "test", split WITHIN each concept so every concept is seen in
    training and tested on other images of it. A concept with >= 3 images gets >= 1 val and test
    image (when those fractions are > 0); with 2 images one goes to test, with 1 it trains."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0,
                                                                             abs_tol=1e-6):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if fractions[0] <= 0:
        raise ValueError("the train fraction must be > 0")
    by_concept: dict[str, list] = {}
    for item in ds.images:
        by_concept.setdefault(item.concept, []).append(item)

    splits: dict[str, str] = {}
    for concept in sorted(by_concept):
        items = sorted(by_concept[concept], key=lambda it: it.id)
        random.Random(f"split:{seed}:{concept}").shuffle(items)
        n_val, n_test = _held_out_counts(len(items), fractions[1], fractions[2])
        for i, item in enumerate(items):
            splits[item.id] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return splits


def _held_out_counts(n: int, f_val: float, f_test: float) -> tuple[int, int]:
    if n == 1:
        return 0, 0
    if n == 2:
        return 0, int(f_test > 0)
    n_test = max(int(f_test > 0), math.floor(n * f_test + 0.5))
    n_val = max(int(f_val > 0), math.floor(n * f_val + 0.5))
    while n_test + n_val > n - 1:              # keep at least one training image
        if n_val > int(f_val > 0):
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test
