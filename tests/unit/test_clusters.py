"""core.clusters on a hand-made tiny taxonomy where the right answer is known: ten concepts in three
WordNet groups (animals, vehicles, fruits), vectors built to follow (or to ignore) that taxonomy, and
the real WordNet 3.0 for the reference tree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.cluster.hierarchy import cophenet

from core import clusters as cl
from core.data.datasets import Category, Concept, Dataset

SYNSETS = {"dog": "dog.n.01", "cat": "house_cat.n.01", "cow": "cow.n.01", "horse": "horse.n.01",
           "car": "car.n.01", "bus": "bus.n.01", "truck": "truck.n.01",
           "apple": "apple.n.01", "banana": "banana.n.02", "cherry": "cherry.n.03"}
GROUP = {"dog": "animal", "cat": "animal", "cow": "animal", "horse": "animal",
         "car": "vehicle", "bus": "vehicle", "truck": "vehicle",
         "apple": "fruit", "banana": "fruit", "cherry": "fruit"}
CATEGORY_SYNSETS = {"animal": "animal.n.01", "mammal": "mammal.n.01", "vehicle": "vehicle.n.01",
                    "motor_vehicle": "motor_vehicle.n.01", "fruit": "edible_fruit.n.01"}
CATEGORIES = {"dog": ("animal", "mammal"), "cat": ("animal", "mammal"), "cow": ("animal", "mammal"),
              "horse": ("animal", "mammal"), "car": ("vehicle", "motor_vehicle"), "bus": ("vehicle", "motor_vehicle"),
              "truck": ("vehicle", "motor_vehicle"), "apple": ("fruit",), "banana": ("fruit",), "cherry": ("fruit",)}
IMAGES = 3                                  # per concept


def tiny_dataset() -> Dataset:
    concepts = {n: Concept(n, n, s, CATEGORIES[n]) for n, s in SYNSETS.items()}
    categories = {k: Category(k, k.replace("_", " "), s) for k, s in CATEGORY_SYNSETS.items()}
    return Dataset("tiny", Path("."), concepts, categories, [])


def image_concepts() -> list[str]:
    return [c for c in sorted(SYNSETS) for _ in range(IMAGES)]


def taxonomy_vectors(seed: int = 0, noise: float = 0.2) -> np.ndarray:
    """Per image: a strong direction for its group, a weaker one for its concept, a little noise."""
    rng = np.random.default_rng(seed)
    dim = 48
    group = {g: rng.standard_normal(dim) for g in ("animal", "vehicle", "fruit")}
    own = {c: 0.5 * rng.standard_normal(dim) for c in SYNSETS}
    return np.stack([3 * group[GROUP[c]] + own[c] + noise * rng.standard_normal(dim) for c in image_concepts()])


IDENTITY = {c: c for c in SYNSETS}
# A cross-group derangement that mixes the groups: each group's images end up named by concepts of
# several other groups (a whole-group relabelling, dog -> car, cat -> bus, ..., would keep the tree).
CROSS = {"dog": "car", "cat": "apple", "cow": "bus", "horse": "cherry", "car": "banana", "bus": "dog",
         "truck": "cat", "apple": "truck", "banana": "horse", "cherry": "cow"}


def test_fowlkes_mallows_known_values():
    assert cl.fowlkes_mallows([0, 0, 1, 1], [5, 5, 7, 7]) == 1.0
    assert cl.fowlkes_mallows([0, 0, 1, 1], [0, 1, 0, 1]) == 0.0
    assert cl.fowlkes_mallows([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]) == pytest.approx(2 / np.sqrt(18))
    assert np.isnan(cl.fowlkes_mallows([0, 1, 2], [0, 0, 1]))       # all singletons: no pairs


def test_wordnet_reference_tree_of_the_tiny_taxonomy():
    names = sorted(SYNSETS)
    d = cl.wordnet_distances([SYNSETS[n] for n in names])
    assert d[names.index("car"), names.index("truck")] == 2           # car, truck: motor vehicles
    assert d[names.index("dog"), names.index("cat")] == 2             # both domestic animals
    three = cl.cuts(cl.linkage_from_distances(d))[3]
    groups = {}
    for n, k in zip(names, three):
        groups.setdefault(k, set()).add(GROUP[n])
    assert sorted(map(sorted, groups.values())) == [["animal"], ["fruit"], ["vehicle"]]


def test_a_tree_built_from_wordnet_itself_agrees_perfectly():
    names = sorted(SYNSETS)
    d = cl.wordnet_distances([SYNSETS[n] for n in names])
    z = cl.linkage_from_distances(d)
    score = cl.agreement(z, d, cl.cuts(z), n_perm=50)
    assert all(v == 1.0 for v in score["fm_by_k"].values()) and score["fm_mean"] == 1.0
    assert score["cophenetic"] == pytest.approx(cophenet(z, cl._condensed(d))[0])
    assert score["null"]["cophenetic_mean"] < score["cophenetic"]
    assert score["null"]["cophenetic_p"] <= 0.05


def test_concept_tree_follows_wordnet_and_a_cross_shuffle_breaks_it():
    ds = tiny_dataset()
    x = taxonomy_vectors()
    res = cl.level_result(ds, image_concepts(), {"encoder": x}, {"original": IDENTITY, "cross": CROSS},
                          "concept", n_perm=100)
    assert res["leaves"] == sorted(SYNSETS)
    original = res["labelings"]["original"]["scores"]
    cross = res["labelings"]["cross"]["scores"]
    assert original["encoder"]["fm_by_k"]["3"] == 1.0                 # the three groups, exactly
    assert original["encoder"]["cophenetic"] > 0.6
    assert original["encoder"]["null"]["cophenetic_p"] < 0.05
    assert cross["encoder"]["cophenetic"] < original["encoder"]["cophenetic"] - 0.5
    assert cross["encoder"]["fm_by_k"]["3"] < 0.5
    # concept leaves share no images: membership alone explains nothing
    assert abs(original["membership"]["cophenetic"]) < 0.35
    newick = res["labelings"]["original"]["trees"]["encoder"]["newick"]
    assert newick.endswith(";") and all(n in newick for n in SYNSETS)


def test_category_tree_membership_baseline_and_within_like_identity():
    ds = tiny_dataset()
    x = taxonomy_vectors()
    res = cl.level_result(ds, image_concepts(), {"encoder": x, "flat": np.ones_like(x)},
                          {"original": IDENTITY, "cross": CROSS}, "category", n_perm=50)
    assert res["leaves"] == sorted(CATEGORY_SYNSETS)
    scores = res["labelings"]["original"]["scores"]
    # mammal sits inside animal, motor vehicle inside vehicle: shared images pull them together
    assert scores["membership"]["cophenetic"] > 0.3
    assert scores["encoder"]["fm_by_k"]["3"] == 1.0
    assert scores["encoder"]["cophenetic"] > scores["membership"]["cophenetic"] - 0.1
    # identical vectors for every image: no structure, every distance equal -> no correlation
    assert scores["flat"]["cophenetic"] is None
    wordnet = res["wordnet"]
    assert set(wordnet["internal"].values()) >= {"animal.n.01", "vehicle.n.01"}
    assert "'motor vehicle'" in wordnet["newick"]                     # names with spaces are quoted


def test_leaves_without_a_synset_are_left_out_and_reported():
    ds = tiny_dataset()
    ds.concepts["thing"] = Concept("thing", "thing", None, ("fruit",))
    res = cl.level_result(ds, image_concepts() + ["thing"], {"encoder": np.vstack([taxonomy_vectors(), np.ones(48)])},
                          {"original": {**IDENTITY, "thing": "thing"}}, "concept", n_perm=10)
    assert "thing" not in res["leaves"] and res["left_out"] == ["thing"]


def test_newick_of_a_known_linkage():
    z = np.array([[0, 1, 1.0, 2], [2, 3, 3.0, 3]])
    assert cl.newick(z, ["a", "b", "c d"]) == "('c d':3,(a:1,b:1):2);"
    assert cl.newick(z, ["a", "b", "c"], {3: "ab", 4: "root"}) == "(c:3,(a:1,b:1)ab:2)root;"


def _compute_on(ds: Dataset, run_dir: Path, monkeypatch) -> dict:
    """clusters.compute on a run of `ds` whose test images are image_concepts() and whose encoder
    gives taxonomy_vectors(): the run, its data and its features faked, no model loaded."""
    import json
    from types import SimpleNamespace

    import torch

    from core import features, rundata, runs
    from core.config import TrainConfig
    from core.data.datasets import ImageItem

    images = [ImageItem(f"{c}{i}", c, f"style{i}", run_dir / f"{c}{i}.png")
              for c in sorted(SYNSETS) for i in range(IMAGES)]
    info = SimpleNamespace(config=TrainConfig(dataset=ds.name), run_id="run", path=run_dir)
    monkeypatch.setattr(runs, "load_run", lambda path: info)
    monkeypatch.setattr(rundata, "prepare", lambda cfg: SimpleNamespace(dataset=ds, images=lambda split: images))
    monkeypatch.setattr(cl, "_stamp", lambda path: "stamp")
    feats = torch.from_numpy(taxonomy_vectors()[:, None, :]).float()
    monkeypatch.setattr(features, "image_features", lambda vlm, ims, progress=None: (feats, None))
    result = cl.compute(run_dir, split="test", sources=("encoder",), n_perm=5, vlm=object())
    assert json.loads((cl.out_dir(run_dir, "test") / "clusters.json").read_text())["notes"] == result["notes"]
    return result


def test_trees_of_an_imported_dataset_say_why_there_is_no_category_tree(data_dir, tmp_path, monkeypatch):
    """Reported: `taxolens clusters RUN` on an imported dataset (no category has a WordNet synset)
    printed concept lines only, with "notes": [] and no category__*.nwk file, and never said why."""
    ds = tiny_dataset()
    imported = Dataset("mycoll", Path("."), ds.concepts,
                       {k: Category(k, c.label, None) for k, c in ds.categories.items()}, [])
    result = _compute_on(imported, tmp_path / "imported", monkeypatch)
    assert [n for n in result["notes"] if "WordNet" in n] == [
        "No category of mycoll has a WordNet synset (an imported dataset's categories have none), so there "
        "are no category trees; the concept trees are drawn."]
    names = sorted(p.name for p in cl.out_dir(tmp_path / "imported", "test").glob("*.nwk"))
    assert {"concept__wordnet.nwk", "concept__original__encoder.nwk"} <= set(names)
    assert not any(n.startswith("category__") for n in names)
    # the same images under WordNet categories: both levels drawn, nothing to explain
    drawn = _compute_on(ds, tmp_path / "wordnet", monkeypatch)
    assert not [n for n in drawn["notes"] if "WordNet" in n]
    assert drawn["levels"]["category"]["wordnet"] is not None


def test_missing_tree_notes_say_how_many_leaves_have_a_synset():
    one = {"leaves": ["animal"], "left_out": ["pet", "toy"], "wordnet": None}
    alone = {"leaves": ["dog"], "left_out": [], "wordnet": None}
    assert cl.missing_tree_notes("mycoll", {"category": one, "concept": alone}) == [
        "Only 1 of the 3 categories of these images has a WordNet synset, so there are no category trees.",
        "These images have only 1 concept, so there are no concept trees."]
    assert cl.missing_tree_notes("mycoll", {"category": {**one, "wordnet": {"newick": ";"}}}) == []
