"""Questions (wording, yes/no balance, determinism) and the within-concept image split."""
from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from core.questions import Question, build_questions, question_text, split_images
from tiny_concepts import CONCEPTS, tiny_dataset


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


@pytest.mark.parametrize("label, text", [
    ("dog", "Is there a dog in the image?"),
    ("apple", "Is there an apple in the image?"),
    ("umbrella", "Is there an umbrella in the image?"),
    ("musical instrument", "Is there a musical instrument in the image?"),
    ("clothing", "Is there an item of clothing in the image?"),
    ("footwear", "Is there a piece of footwear in the image?"),
    ("sports equipment", "Is there a piece of sports equipment in the image?"),
    ("furniture", "Is there a piece of furniture in the image?"),
    ("item of clothing", "Is there an item of clothing in the image?"),   # already counted
    ("scissors", "Is there a pair of scissors in the image?"),
    ("sunglasses", "Is there a pair of sunglasses in the image?"),
    ("cherries", "Are there cherries in the image?"),
    ("french fries", "Are there french fries in the image?"),
    ("bus", "Is there a bus in the image?"),
    ("glass", "Is there a glass in the image?"),
    ("octopus", "Is there an octopus in the image?"),
    ("rhinoceros", "Is there a rhinoceros in the image?"),
    ("baked goods", "Are there baked goods in the image?"),
    ("electronic equipment", "Is there a piece of electronic equipment in the image?"),
    ("briefs", "Is there a pair of briefs in the image?"),
    ("champagne", "Is there champagne in the image?"),
    ("rice", "Is there rice in the image?"),
    ("ice cream", "Is there ice cream in the image?"),
    ("food", "Is there food in the image?"),
    ("  hot   dog ", "Is there a hot dog in the image?"),
])
def test_question_text(label, text):
    assert question_text(label) == text


def test_question_text_rejects_empty():
    with pytest.raises(ValueError):
        question_text("  ")


def by_image(questions):
    grouped = defaultdict(list)
    for q in questions:
        grouped[q.image_id].append(q)
    return grouped


@pytest.mark.parametrize("negatives", [0, 1, 3])
def test_question_structure(ds, negatives):
    questions = build_questions(ds, ds.images, None, seed=0, negatives=negatives)
    grouped = by_image(questions)
    assert len(grouped) == len(ds.images)
    for item in ds.images:
        qs = grouped[item.id]
        cats = set(CONCEPTS[item.concept])
        assert all(q.concept == item.concept for q in qs)
        leaf_yes = [q.target for q in qs if q.kind == "leaf" and q.answer]
        leaf_no = [q.target for q in qs if q.kind == "leaf" and not q.answer]
        hyp_yes = [q.target for q in qs if q.kind == "hypernym" and q.answer]
        hyp_no = [q.target for q in qs if q.kind == "hypernym" and not q.answer]
        assert leaf_yes == [item.concept]
        assert len(leaf_no) == negatives and len(set(leaf_no)) == negatives
        assert item.concept not in leaf_no
        assert sorted(hyp_yes) == sorted(cats)
        assert len(hyp_no) == len(set(hyp_no)) == min(negatives * len(cats), 8 - len(cats))
        assert not cats & set(hyp_no)


def test_question_texts(ds):
    item = ds.images_of("shirt")[0]
    qs = build_questions(ds, [item], None, seed=0, negatives=0)
    assert [(q.kind, q.text, q.answer) for q in qs] == [
        ("leaf", "Is there a shirt in the image?", True),
        ("hypernym", "Is there an item of clothing in the image?", True)]
    violin = build_questions(ds, ds.images_of("violin")[:1], None, seed=0, negatives=0)
    assert violin[1].text == "Is there a musical instrument in the image?"


def test_negatives_depend_only_on_seed_and_image(ds):
    everything = build_questions(ds, ds.images, None, seed=7, negatives=2)
    item = ds.images[13]
    alone = build_questions(ds, [item], None, seed=7, negatives=2)
    assert alone == [q for q in everything if q.image_id == item.id]
    assert build_questions(ds, ds.images, None, seed=7, negatives=2) == everything
    others = [build_questions(ds, ds.images, None, seed=s, negatives=2) for s in range(8, 12)]
    assert any(o != everything for o in others)


def test_negatives_are_spread_over_concepts(ds):
    questions = build_questions(ds, ds.images, None, seed=0, negatives=2)
    asked = Counter(q.target for q in questions if q.kind == "leaf" and not q.answer)
    assert len(asked) == len(CONCEPTS)         # every concept serves as a negative somewhere


def test_labeling_changes_targets_not_true_concept(ds):
    labeling = {c: c for c in CONCEPTS} | {"dog": "car", "car": "dog"}
    qs = build_questions(ds, ds.images_of("dog")[:1], labeling, seed=0)
    assert all(isinstance(q, Question) and q.concept == "dog" for q in qs)
    assert [q.target for q in qs if q.answer] == ["car", "vehicle"]
    assert "car" not in [q.target for q in qs if not q.answer]
    with pytest.raises(KeyError):
        build_questions(ds, ds.images_of("dog")[:1], {"dog": "unicorn"}, seed=0)


def test_bad_negatives(ds):
    with pytest.raises(ValueError):
        build_questions(ds, ds.images, None, seed=0, negatives=-1)
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="hard_negatives"):
            build_questions(ds, ds.images, None, seed=0, hard_negatives=bad)


def test_hard_negatives_are_siblings_added_after_the_same_questions(ds):
    plain = by_image(build_questions(ds, ds.images, None, seed=3))
    hard = by_image(build_questions(ds, ds.images, None, seed=3, hard_negatives=2))
    for image_id, qs in hard.items():
        extra = [q for q in qs if q not in plain[image_id]]
        assert qs[:len(plain[image_id])] == plain[image_id]        # the other questions unchanged
        concept = qs[0].concept
        random_negative = {q.target for q in plain[image_id] if q.kind == "leaf" and not q.answer}
        assert all(q.kind == "leaf" and not q.answer and q.target != concept for q in extra)
        assert not {q.target for q in extra} & random_negative     # never the same question twice
        assert len({q.target for q in extra}) == len(extra)
        shares = [set(ds.concepts[q.target].categories) & set(ds.concepts[concept].categories) for q in extra]
        assert all(shares)                                         # a sibling: some category in common
        if concept in ("dog", "cat", "squirrel"):                  # 2 siblings in 'mammal' (most specific)
            assert len(extra) + len(random_negative & {"dog", "cat", "squirrel"}) >= 2
            assert {q.target for q in extra} <= {"dog", "cat", "squirrel", "crow", "parrot", "salmon"}
        if concept == "violin":                                    # alone in its only category
            assert extra == []


def test_hard_negatives_prefer_the_most_specific_category(ds):
    qs = build_questions(ds, ds.images_of("crow"), None, seed=0, negatives=0, hard_negatives=1)
    # 'bird' (2 members) is more specific than 'animal' (6): crow's one hard negative is parrot
    assert {q.target for q in qs if q.kind == "leaf" and not q.answer} == {"parrot"}


def test_hard_negatives_are_siblings_only_by_the_categories_a_run_is_told(ds):
    from core.conditions import Deprivation
    from core.questions import known_categories

    def hard_targets(known):
        plain = by_image(build_questions(ds, ds.images_of("dog"), None, seed=0, negatives=0))
        hard = by_image(build_questions(ds, ds.images_of("dog"), None, seed=0, negatives=0,
                                        hard_negatives=2, known=known))
        return {q.target for image_id, qs in hard.items() for q in qs if q not in plain[image_id]}

    everything = known_categories(ds, Deprivation({c: c for c in ds.concepts}, frozenset()))
    assert hard_targets(everything) == hard_targets(None) == {"cat", "squirrel"}   # 'mammal' first
    # with the cat's and the squirrel's mammal and animal questions withheld, nothing the run is told
    # makes them the dog's siblings: its hard negatives are the other animals
    hidden = Deprivation({c: c for c in ds.concepts},
                         frozenset((c, k) for c in ("cat", "squirrel") for k in ("mammal", "animal")))
    assert hard_targets(known_categories(ds, hidden)) <= {"crow", "parrot", "salmon"}


# --- splits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("per_concept", [3, 5, 10])
def test_split_disjoint_covering_and_within_concept(per_concept):
    ds = tiny_dataset(images_per_concept=per_concept)
    splits = split_images(ds, seed=0)
    assert set(splits) == {item.id for item in ds.images}            # covering, one split each
    assert set(splits.values()) == {"train", "val", "test"}
    for concept in CONCEPTS:
        counts = Counter(splits[item.id] for item in ds.images_of(concept))
        assert counts["test"] >= 1 and counts["val"] >= 1 and counts["train"] >= 1
    if per_concept == 10:
        assert Counter(splits.values()) == {"train": 72, "val": 24, "test": 24}


def test_split_small_concepts():
    ds = tiny_dataset(images_per_concept=2)
    splits = split_images(ds, seed=0)
    for concept in CONCEPTS:
        assert sorted(splits[i.id] for i in ds.images_of(concept)) == ["test", "train"]
    ds1 = tiny_dataset(images_per_concept=1)
    assert set(split_images(ds1, seed=0).values()) == {"train"}


def test_split_is_seeded():
    ds = tiny_dataset(images_per_concept=6)
    first = split_images(ds, seed=0)
    assert split_images(ds, seed=0) == first
    assert split_images(ds, seed=1) != first
    reordered = tiny_dataset(images_per_concept=6)
    reordered.images.reverse()
    assert split_images(reordered, seed=0) == first                  # independent of listing order


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.6, 0.3, 0.3), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_split_bad_fractions(fractions):
    with pytest.raises(ValueError):
        split_images(tiny_dataset(), seed=0, fractions=fractions)


def test_split_without_val():
    splits = split_images(tiny_dataset(images_per_concept=5), seed=0, fractions=(0.8, 0.0, 0.2))
    assert Counter(splits.values()) == {"train": 48, "test": 12}


def test_a_new_draw_changes_only_the_random_leaf_negatives(ds):
    first = by_image(build_questions(ds, ds.images, None, seed=3))
    again = by_image(build_questions(ds, ds.images, None, seed=3, draw=2))
    assert again == by_image(build_questions(ds, ds.images, None, seed=3, draw=2))    # deterministic
    changed = 0
    for image_id, qs in first.items():
        fixed = [q for q in qs if q.kind == "hypernym" or q.answer]
        assert [q for q in again[image_id] if q.kind == "hypernym" or q.answer] == fixed
        old = [q for q in qs if q.kind == "leaf" and not q.answer]
        new = [q for q in again[image_id] if q.kind == "leaf" and not q.answer]
        assert len(new) == len(old) and all(q.target != q.concept for q in new)
        changed += old != new
    assert changed > len(first) // 3          # a new draw, not the same negatives again


def test_ranked_leaf_texts_put_the_shown_concept_first(ds):
    import random

    from core.questions import ranked_leaf_texts
    item = ds.images_of("dog")[0]
    texts = ranked_leaf_texts(ds, item, None, 4, random.Random(0))
    assert texts[0] == question_text(ds.concepts["dog"].label) and len(set(texts)) == 5
    shuffled = ranked_leaf_texts(ds, item, {c: ("cat" if c == "dog" else c) for c in ds.concepts}, 50,
                                 random.Random(0))
    assert shuffled[0] == question_text(ds.concepts["cat"].label)        # the label it is shown as
    assert len(shuffled) == len(ds.concepts) and len(set(shuffled)) == len(shuffled)   # all others, once


def test_sibling_ranking_negatives_come_from_known_categories_only(ds):
    import random

    from core.conditions import Deprivation
    from core.questions import known_categories, ranked_leaf_texts
    text = {c: question_text(ds.concepts[c].label) for c in ds.concepts}
    everything = known_categories(ds, Deprivation({c: c for c in ds.concepts}, frozenset()))
    assert everything["dog"] == {"animal", "mammal"} and everything["apple"] == {"fruit"}
    item = ds.images_of("dog")[0]
    for seed in range(5):
        texts = ranked_leaf_texts(ds, item, None, 2, random.Random(seed), everything, sibling_share=1.0)
        assert set(texts[1:]) == {text["cat"], text["squirrel"]}       # the most specific category first
        four = ranked_leaf_texts(ds, item, None, 4, random.Random(seed), everything, sibling_share=1.0)
        assert set(four[1:3]) == {text["cat"], text["squirrel"]}        # then its wider one
        assert set(four[3:]) <= {text["crow"], text["parrot"], text["salmon"]}
        half = ranked_leaf_texts(ds, item, None, 4, random.Random(seed), everything, sibling_share=0.5)
        assert len(set(half)) == 5 and set(half[1:3]) <= {text[c] for c in ("cat", "squirrel")}
    # a removed (concept, category) pair makes no siblings: the cat is not known to be a mammal or an
    # animal, so the dog's siblings are the squirrel, then the other animals, never the cat
    hidden = Deprivation({c: c for c in ds.concepts}, frozenset({("cat", "mammal"), ("cat", "animal")}))
    known = known_categories(ds, hidden)
    assert known["cat"] == frozenset() and known["dog"] == {"animal", "mammal"}
    for seed in range(5):
        texts = ranked_leaf_texts(ds, item, None, 4, random.Random(seed), known, sibling_share=1.0)
        assert text["cat"] not in texts[1:] and texts[1] == text["squirrel"]
    # under a shuffle the shown concept's categories count, through the true concept it labels
    swap = {**{c: c for c in ds.concepts}, "dog": "apple", "apple": "dog"}
    known = known_categories(ds, Deprivation(swap, frozenset({("dog", "fruit")})))
    assert known["apple"] == frozenset() and known["dog"] == {"animal", "mammal"}


def test_a_runs_split_percent_decides_its_split():
    """The paper's 70/5/25 (THINGS, ~14 images per concept) against the default 60/20/20, through
    the one place a run's split comes from (rundata.prepare / image_split)."""
    from collections import Counter

    from core import rundata
    from core.config import TrainConfig
    from core.data import datasets

    ds = tiny_dataset(images_per_concept=20)
    counts = {}
    for text in ("60/20/20", "70/5/25"):
        cfg = TrainConfig(dataset="tiny", split_percent=text)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(datasets, "load_dataset", lambda name="concepts": ds)
            split = rundata.image_split(cfg)
            data = rundata.prepare(cfg)
        assert data.split == split
        per_concept = Counter((im.concept, split[im.id]) for im in ds.images)
        counts[text] = {(name, per_concept[(c, name)]) for c in ds.concepts for name in ("train", "val", "test")}
    assert counts["60/20/20"] == {("train", 12), ("val", 4), ("test", 4)}
    assert counts["70/5/25"] == {("train", 14), ("val", 1), ("test", 5)}
