"""Deprivation conditions: parsing, validation, and that each removes exactly what it should."""
from __future__ import annotations

from collections import Counter

import pytest

from core.conditions import Condition, Deprivation, parse_condition
from core.config import ConfigError
from core.questions import build_questions
from tiny_concepts import CONCEPTS, SINGLETONS, tiny_dataset


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset()


def members(category):
    return [c for c, cats in CONCEPTS.items() if category in cats]


# --- parsing / checking ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("none", Condition("none")),
    ("random:0.5", Condition("random", ratio=0.5)),
    ("random:0", Condition("random", ratio=0.0)),
    ("random:1", Condition("random", ratio=1.0)),
    (" Random:0.25 ", Condition("random", ratio=0.25)),
    ("pairs:0.5", Condition("pairs", ratio=0.5)),
    ("cross+random:0.5", Condition("random", ratio=0.5, shuffle="cross")),
    ("Within+Random:1", Condition("random", ratio=1.0, shuffle="within")),
    ("within+pairs:0.25", Condition("pairs", ratio=0.25, shuffle="within")),
    ("cross+systematic:10", Condition("systematic", count=10, shuffle="cross")),
    ("cross+systematic:mammal+fish", Condition("systematic", categories=("mammal", "fish"), shuffle="cross")),
    ("systematic:2", Condition("systematic", count=2)),
    ("systematic:mammal+fish", Condition("systematic", categories=("mammal", "fish"))),
    ("cross", Condition("cross")),
    ("within", Condition("within")),
])
def test_parse(spec, expected):
    assert parse_condition(spec) == expected
    assert parse_condition(expected.spec) == expected       # spec round-trips
    assert parse_condition(expected.spec).spec == expected.spec


def test_spec_is_canonical():
    assert parse_condition(" Cross+Random:0.50 ").spec == "cross+random:0.5"
    assert parse_condition("within+systematic:mammal+fish").spec == "within+systematic:mammal+fish"


@pytest.mark.parametrize("spec, fragment", [
    ("random:1.5", "[0, 1]"), ("random:-0.1", "[0, 1]"), ("random:nan", "[0, 1]"),
    ("random:abc", "ratio"), ("random", "ratio"), ("systematic:0", "N >= 1"),
    ("systematic:-1", "N >= 1"), ("systematic:", "count or categories"),
    ("systematic:mammal+", "empty category"), ("systematic:fish+fish", "twice"),
    ("cross:3", "no argument"), ("shuffle", "unknown condition"), ("", "condition must be"),
    ("pairs:2", "pair ablation ratio r must be in [0, 1]"), ("pairs:x", "pair ablation needs a ratio"),
    ("cross+", "name an ablation after '+'"), ("cross+within", "combines with an ablation"),
    ("within+none", "combines with an ablation"), ("random:0.5+cross", "put the shuffle first"),
    ("within+random:1.5", "[0, 1]"), ("none+cross", "unknown condition"),
])
def test_parse_errors_are_one_line(spec, fragment):
    with pytest.raises(ConfigError) as err:
        parse_condition(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_check_against_dataset(ds):
    parse_condition("systematic:8").check(ds)                 # exactly as many as exist: fine
    with pytest.raises(ConfigError, match="more categories than dataset 'tiny' has \\(8\\)"):
        parse_condition("systematic:9").check(ds)
    with pytest.raises(ConfigError, match="unknown category 'mamal'.*did you mean mammal"):
        parse_condition("systematic:mamal+fish").check(ds)
    with pytest.raises(ConfigError, match="\\[0, 1\\]"):
        Condition("random", ratio=2.0).check(ds)              # built directly, not parsed
    with pytest.raises(ConfigError, match="N >= 1"):
        Condition("systematic", count=0).check(ds)
    with pytest.raises(ConfigError, match="more categories than"):
        parse_condition("cross+systematic:9").check(ds)
    with pytest.raises(ConfigError, match="unknown category 'reptile'"):
        parse_condition("within+systematic:reptile").check(ds)


def test_within_needs_a_group():
    lonely = tiny_dataset()
    for name in ("cat", "squirrel", "parrot", "cherry", "bus"):
        del lonely.concepts[name]
    with pytest.raises(ConfigError, match="no two concepts"):
        parse_condition("within").check(lonely)
    with pytest.raises(ConfigError, match="no two concepts"):
        parse_condition("within+random:0.5").check(lonely)



def test_within_on_a_subset_names_the_subset_not_the_whole_dataset():
    """Reported: `--max-concepts 20` on a collection with 4 fruits and 4 reptiles said "no two
    concepts of 'mycoll' share a category set"; the seed's 20-concept subset was what had none."""
    whole = tiny_dataset()
    parse_condition("within").check(whole)                  # the whole dataset has groups
    small = whole.subset(max_concepts=7, seed=3)            # one concept per category set
    with pytest.raises(ConfigError) as refused:
        parse_condition("within").check(small)
    assert str(refused.value) == (f"within-category shuffle: no two concepts of the 7-concept subset of "
                                  f"'{whole.name}' (seed 3) share a category set")
    with pytest.raises(ConfigError, match=f"no two concepts of '{whole.name}' share"):
        lonely = whole.subset(max_concepts=50)              # no limit reached: the dataset itself
        for name in ("cat", "squirrel", "parrot", "cherry", "bus"):
            del lonely.concepts[name]
        parse_condition("within").check(lonely)


# --- ablations ---------------------------------------------------------------------------------

def test_none_is_identity(ds):
    dep = parse_condition("none").apply(ds, seed=3)
    assert dep.labeling == {c: c for c in CONCEPTS}
    assert dep.removed == frozenset()


def removed_counts(dep: Deprivation, category: str) -> tuple[int, int]:
    gone = {c for c, k in dep.removed if k == category}
    inside = set(members(category))
    return len(gone & inside), len(gone - inside)


# pairs:<r> — (members removed, other concepts removed) per category, by hand: round(r * n), at
# least 1 when r > 0.
# Members: animal 6, mammal 3, bird 2, fish 1, fruit 2, vehicle 2, clothing 1, instrument 1 (of 12).
@pytest.mark.parametrize("ratio, expected", [
    (0.0, {k: (0, 0) for k in ("animal", "mammal", "bird", "fish", "fruit", "vehicle", "clothing",
                                "musical_instrument")}),
    (0.1, {"animal": (1, 1), "mammal": (1, 1), "bird": (1, 1), "fish": (1, 1), "fruit": (1, 1),
           "vehicle": (1, 1), "clothing": (1, 1), "musical_instrument": (1, 1)}),
    (0.5, {"animal": (3, 3), "mammal": (2, 5), "bird": (1, 5), "fish": (1, 6), "fruit": (1, 5),
           "vehicle": (1, 5), "clothing": (1, 6), "musical_instrument": (1, 6)}),
    (1.0, {"animal": (6, 6), "mammal": (3, 9), "bird": (2, 10), "fish": (1, 11), "fruit": (2, 10),
           "vehicle": (2, 10), "clothing": (1, 11), "musical_instrument": (1, 11)}),
])
def test_pair_ablation_counts_per_category(ds, ratio, expected):
    dep = parse_condition(f"pairs:{ratio}").apply(ds, seed=0)
    assert {k: removed_counts(dep, k) for k in expected} == expected
    assert dep.labeling == {c: c for c in CONCEPTS}
    per_category = dep.report["per_category"]
    assert {k: (v["members_removed"], v["others_removed"]) for k, v in per_category.items()} == expected


@pytest.mark.parametrize("kind", ["random", "pairs"])
def test_ablations_are_seeded(ds, kind):
    a = parse_condition(f"{kind}:0.5").apply(ds, seed=0).removed
    assert a == parse_condition(f"{kind}:0.5").apply(ds, seed=0).removed
    assert any(parse_condition(f"{kind}:0.5").apply(ds, seed=s).removed != a for s in range(1, 6))


# random:<r> (the paper's) — concepts sampled per category, by hand: max(1, int(n * r)), 0 at r = 0.
# Members: animal 6, mammal 3, bird 2, fish 1, fruit 2, vehicle 2, clothing 1, instrument 1.
ALL_CATEGORIES = ("animal", "mammal", "bird", "fish", "fruit", "vehicle", "clothing", "musical_instrument")


@pytest.mark.parametrize("ratio, expected", [
    (0.0, dict.fromkeys(ALL_CATEGORIES, 0)),
    (0.25, dict.fromkeys(ALL_CATEGORIES, 1)),                      # animal int(1.5) = 1, others max(1, 0)
    (0.5, {"animal": 3, "mammal": 1, "bird": 1, "fish": 1, "fruit": 1, "vehicle": 1, "clothing": 1,
           "musical_instrument": 1}),
    (0.7, {"animal": 4, "mammal": 2, "bird": 1, "fish": 1, "fruit": 1, "vehicle": 1, "clothing": 1,
           "musical_instrument": 1}),
    (1.0, {"animal": 6, "mammal": 3, "bird": 2, "fish": 1, "fruit": 2, "vehicle": 2, "clothing": 1,
           "musical_instrument": 1}),
])
def test_random_ablation_samples_concepts_per_category(ds, ratio, expected):
    dep = parse_condition(f"random:{ratio}").apply(ds, seed=0)
    per_category = dep.report["per_category"]
    assert {k: v["sampled"] for k, v in per_category.items()} == expected
    assert {k: v["members"] for k, v in per_category.items()} == {k: len(members(k)) for k in ALL_CATEGORIES}
    sampled = set()
    for k, v in per_category.items():
        assert set(v["concepts"]) <= set(members(k)) and len(v["concepts"]) == v["sampled"]
        sampled |= set(v["concepts"])
    assert dep.report["removed_concepts"] == sorted(sampled)
    # a sampled concept loses every hypernym pair, about every category; no one else loses any
    assert dep.removed == frozenset((c, k) for c in sampled for k in ALL_CATEGORIES)
    assert dep.labeling == {c: c for c in CONCEPTS}


def test_random_ablation_removes_all_questions_of_sampled_concepts_and_nothing_else(ds):
    dep = parse_condition("random:0.5").apply(ds, seed=2)
    gone = set(dep.report["removed_concepts"])
    # fish, clothing and musical instrument have one member each: salmon, shirt, violin always go
    assert {"salmon", "shirt", "violin"} <= gone and gone < set(CONCEPTS)
    questions = build_questions(ds, ds.images, dep.labeling, seed=2, negatives=2)
    for q in questions:
        assert dep.keeps(q) == (q.kind == "leaf" or q.concept not in gone)
    unseen = [q for q in questions if dep.is_unseen(q)]
    assert {q.answer for q in unseen} == {True, False}               # yes AND no questions go
    hyper = [q for q in questions if q.kind == "hypernym"]
    assert len(unseen) / len(hyper) > 0.5                              # the unseen share exceeds r


def test_random_1_leaves_only_leaf_questions(ds):
    for spec in ("random:1", "cross+random:1", "within+random:1"):
        dep = parse_condition(spec).apply(ds, seed=0)
        questions = build_questions(ds, ds.images, dep.labeling, seed=0)
        kept = [q for q in questions if dep.keeps(q)]
        assert {q.kind for q in kept} == {"leaf"}, spec
        assert len(kept) == sum(q.kind == "leaf" for q in questions)


def test_sample_size_is_max_1_int_n_r():
    from core.conditions import sample_size
    assert [sample_size(r, 10) for r in (0, 0.01, 0.1, 0.29, 0.5, 0.7, 0.99, 1)] == [0, 1, 1, 2, 5, 7, 9, 10]
    assert sample_size(0.5, 0) == 0
    # products float arithmetic puts just below a whole number count as that number (n * r exactly)
    assert [sample_size(0.7, 90), sample_size(0.29, 100), sample_size(0.58, 50)] == [63, 29, 29]


@pytest.mark.parametrize("spec", ["random:0", "random:0.3", "random:0.5", "random:1", "pairs:0.3",
                                  "pairs:1", "systematic:mammal+fish", "systematic:3",
                                  "cross+random:0.5", "within+pairs:0.5"])
def test_ablation_removes_exactly_the_removed_pairs(ds, spec):
    dep = parse_condition(spec).apply(ds, seed=1)
    questions = build_questions(ds, ds.images, dep.labeling, seed=1)
    kept = [q for q in questions if dep.keeps(q)]
    dropped = [q for q in questions if not dep.keeps(q)]
    assert all(q.kind == "hypernym" and (q.concept, q.target) in dep.removed for q in dropped)
    assert all(q.kind == "leaf" or (q.concept, q.target) not in dep.removed for q in kept)
    # leaf questions are never touched
    assert Counter(q.kind for q in kept)["leaf"] == Counter(q.kind for q in questions)["leaf"]
    if spec == "random:0":
        assert kept == questions
    if spec in ("random:1", "pairs:1"):
        assert [q for q in kept if q.kind == "hypernym"] == []


def test_systematic_named_removes_every_question_about_those_categories(ds):
    dep = parse_condition("systematic:mammal+fish").apply(ds, seed=0)
    assert dep.report["categories"] == ["mammal", "fish"]
    questions = build_questions(ds, ds.images, dep.labeling, seed=0, negatives=3)
    kept = [q for q in questions if dep.keeps(q)]
    about = [q for q in questions if q.kind == "hypernym" and q.target in ("mammal", "fish")]
    assert {q.answer for q in about} == {True, False}           # both yes and no existed ...
    assert not [q for q in kept if q.kind == "hypernym" and q.target in ("mammal", "fish")]  # ... all gone
    assert len(kept) == len(questions) - len(about)              # and nothing else


def test_systematic_count_draws_categories_by_seed(ds):
    chosen = [tuple(parse_condition("systematic:2").apply(ds, seed=s).report["categories"])
              for s in range(8)]
    assert all(len(set(c)) == 2 for c in chosen)
    assert chosen[0] == tuple(parse_condition("systematic:2").apply(ds, seed=0).report["categories"])
    assert len(set(chosen)) > 1


# --- shuffles ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_cross_shuffle_is_a_derangement(ds, seed):
    dep = parse_condition("cross").apply(ds, seed)
    assert sorted(dep.labeling) == sorted(CONCEPTS)
    assert sorted(dep.labeling.values()) == sorted(CONCEPTS)  # one-to-one
    assert all(a != b for a, b in dep.labeling.items())         # no fixed points
    assert dep.removed == frozenset()


@pytest.mark.parametrize("seed", range(5))
def test_within_shuffle_keeps_category_sets(ds, seed):
    dep = parse_condition("within").apply(ds, seed)
    assert sorted(dep.labeling.values()) == sorted(CONCEPTS)
    for a, b in dep.labeling.items():
        assert set(CONCEPTS[a]) == set(CONCEPTS[b])
        assert (a == b) == (a in SINGLETONS)                     # only singletons stay put
    assert set(dep.report["singletons"]) == SINGLETONS
    assert dep.report["moved"] == len(CONCEPTS) - len(SINGLETONS)
    assert dep.removed == frozenset()


def test_shuffles_are_seeded(ds):
    for kind in ("cross", "within"):
        first = parse_condition(kind).apply(ds, 0).labeling
        assert first == parse_condition(kind).apply(ds, 0).labeling
        # only 2 within-labelings exist for the tiny set, so look over enough seeds
        assert any(parse_condition(kind).apply(ds, s).labeling != first for s in range(1, 20))


def test_shuffled_questions_use_the_counterfactual_label(ds):
    dep = parse_condition("cross").apply(ds, 0)
    questions = build_questions(ds, ds.images_of("squirrel")[:1], dep.labeling, seed=0)
    shown = dep.labeling["squirrel"]
    leaf_yes = [q for q in questions if q.kind == "leaf" and q.answer]
    assert [(q.concept, q.target) for q in leaf_yes] == [("squirrel", shown)]
    assert {q.target for q in questions if q.kind == "hypernym" and q.answer} == set(CONCEPTS[shown])


# --- shuffles combined with ablations ----------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_cross_then_random_ablation_samples_by_the_shuffled_labels(ds, seed):
    dep = parse_condition("cross+random:0.5").apply(ds, seed)
    assert dep.labeling == parse_condition("cross").apply(ds, seed).labeling
    shown = {c: set(CONCEPTS[dep.labeling[c]]) for c in CONCEPTS}      # categories its images carry
    per_category = dep.report["per_category"]
    for k, v in per_category.items():
        assert v["members"] == sum(k in cats for cats in shown.values())
        assert all(k in shown[c] for c in v["concepts"])              # sampled among relabelled members
    gone = set(dep.report["removed_concepts"])
    # removed holds TRUE concepts, so is_unseen (question.concept) finds them
    assert dep.removed == frozenset((c, k) for c in gone for k in ALL_CATEGORIES)
    questions = build_questions(ds, ds.images, dep.labeling, seed=seed)
    unseen = {(q.concept, q.target) for q in questions if dep.is_unseen(q)}
    assert unseen == {(q.concept, q.target) for q in questions if q.kind == "hypernym" and q.concept in gone}
    # the questions that go are about the shuffled labels' categories
    for q in questions:
        if q.kind == "hypernym" and q.answer:
            assert q.target in shown[q.concept]


def test_cross_shuffle_changes_who_is_sampled(ds):
    """Somewhere over a few seeds a sampled concept is a member only under its shuffled label."""
    def only_shuffled(seed):
        dep = parse_condition("cross+random:0.5").apply(ds, seed)
        return [c for k, v in dep.report["per_category"].items() for c in v["concepts"]
                if k not in CONCEPTS[c]]
    assert any(only_shuffled(seed) for seed in range(5))


def test_within_then_random_ablation(ds):
    dep = parse_condition("within+random:0.5").apply(ds, 1)
    assert dep.labeling == parse_condition("within").apply(ds, 1).labeling
    assert dep.report["singletons"] == sorted(SINGLETONS)
    # a within shuffle keeps category sets, so members are the true members
    for k, v in dep.report["per_category"].items():
        assert set(v["concepts"]) <= set(members(k))
    assert {c for c, _ in dep.removed} == set(dep.report["removed_concepts"])


def test_cross_then_systematic_and_pairs(ds):
    dep = parse_condition("cross+systematic:mammal+fish").apply(ds, 0)
    assert all(a != b for a, b in dep.labeling.items())
    assert dep.removed == frozenset((c, k) for c in CONCEPTS for k in ("mammal", "fish"))
    pairs = parse_condition("cross+pairs:1").apply(ds, 0)
    shown = {c: set(CONCEPTS[pairs.labeling[c]]) for c in CONCEPTS}
    assert pairs.removed == frozenset((c, k) for c in CONCEPTS for k in ALL_CATEGORIES)
    one = parse_condition("cross+pairs:0.5").apply(ds, 0)
    for k, v in one.report["per_category"].items():
        assert v["members"] == sum(k in cats for cats in shown.values())


def test_reports_are_json(ds):
    import json
    for spec in ("random:0.5", "pairs:0.5", "cross+random:0.5", "within+systematic:2", "within"):
        report = parse_condition(spec).apply(ds, 0).report
        assert json.loads(json.dumps(report)) == report
        assert report["condition"] == spec


def test_legacy_random_runs_are_recognised(ds):
    from core.conditions import legacy_spec
    old = parse_condition("pairs:0.5").apply(ds, 0)
    # what a checkpoint of a run trained under the former random:0.5 recorded
    assert legacy_spec("random:0.5", {**old.report, "condition": "random:0.5"}) == "pairs:0.5"
    new = parse_condition("random:0.5").apply(ds, 0)
    assert legacy_spec("random:0.5", new.report) == "random:0.5"
    assert legacy_spec("random:0.5", None) == "random:0.5"
    assert legacy_spec("cross", {}) == "cross" and legacy_spec("bogus", {}) == "bogus"


def test_one_spelling_per_condition():
    """Reported: `--condition RANDOM:0.5` trained and stored the string as typed, so the run fell off
    the ratio axis (results.ratio_of) and was reported apart from random:0.5."""
    from core.conditions import canonical, legacy_spec
    from core.results import ratio_of
    for typed, one in (("RANDOM:0.50", "random:0.5"), (" random:.5", "random:0.5"), ("random:1.0", "random:1"),
                       ("Cross+Random:0.5", "cross+random:0.5"), ("WITHIN", "within"),
                       ("systematic:mammal+fish", "systematic:mammal+fish")):
        assert canonical(typed) == one
        assert legacy_spec(typed, None) == one                     # runs stored before: read as one
    assert ratio_of(legacy_spec("RANDOM:0.50", None)) == 0.5
    with pytest.raises(ConfigError):
        canonical("random:")


def test_the_cli_and_job_specs_store_the_canonical_condition(data_dir):
    from core.cli import build_parser
    from core.cli.common import config_from
    from core.jobs import kinds
    args = build_parser().parse_args(["train", "--dataset", "tiny", "--condition", "RANDOM:0.50"])
    assert config_from(args).condition == "random:0.5"
    assert kinds._config({"config": {"dataset": "tiny", "condition": "Cross+Random:.5"}}, "train").condition \
        == "cross+random:0.5"
    with pytest.raises(kinds.JobSpecError, match="condition"):
        kinds._config({"config": {"condition": 3}}, "train")


def test_signed_ratios_are_one_setting_and_a_fractional_count_is_named():
    """Reported: `random:-0` was stored as its own setting beside `random:0`, `random:+0.5` was told
    to put the shuffle first, and `systematic:1.5` was an unknown category."""
    from core.conditions import canonical
    assert canonical("random:-0") == "random:0" and canonical("pairs:-0") == "pairs:0"
    assert canonical("cross+random:-0") == "cross+random:0" and canonical("random:+0.5") == "random:0.5"
    with pytest.raises(ConfigError, match="put the shuffle first"):
        canonical("random:0.5+cross")
    with pytest.raises(ConfigError, match="whole number of categories, got '1.5'"):
        canonical("systematic:1.5")
