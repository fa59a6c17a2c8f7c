"""Visual coherence against hand-computed cosines (over the seed's training images, as in the paper,
or all images), its on-disk cache, and the 2-D embeddings."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core import geometry, questions
from core.base import ConfigError
from core.data.datasets import Category, Concept, Dataset, ImageItem
from tiny_concepts import tiny_dataset


def three_images() -> Dataset:
    """x (category K) has images a, b; y (categories K and L) has image c."""
    cats = {"K": Category("K", "kay", None), "L": Category("L", "ell", None)}
    concepts = {"x": Concept("x", "x", None, ("K",)), "y": Concept("y", "y", None, ("K", "L"))}
    images = [ImageItem("a", "x", "s", Path("/a.png")), ImageItem("b", "x", "s", Path("/b.png")),
              ImageItem("c", "y", "s", Path("/c.png"))]
    return Dataset(name="three", root=Path("/"), concepts=concepts, categories=cats, images=images)


# a = (1, 0), b = (0, 1), c = (1, 1): cos(a,b) = 0, cos(a,c) = cos(b,c) = 1/sqrt(2)
FEATURES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def test_coherence_by_hand():
    ds = three_images()
    result = geometry.coherence(ds, FEATURES)
    assert result["K"] == pytest.approx((0 + 2 / math.sqrt(2)) / 3)   # 3 pairs, self-pairs excluded
    assert math.isnan(result["L"])                                     # one image: undefined
    # labelled the other way round, x's two images are in L: their cosine is 0
    swapped = geometry.coherence(ds, FEATURES, {"x": "y", "y": "x"})
    assert swapped["L"] == pytest.approx(0.0)
    assert swapped["K"] == pytest.approx(result["K"])


def test_coherence_is_scale_invariant_and_pools_tokens():
    ds = three_images()
    scaled = FEATURES * torch.tensor([[3.0], [0.5], [10.0]])
    assert geometry.coherence(ds, scaled)["K"] == pytest.approx(geometry.coherence(ds, FEATURES)["K"])
    # (N, T, D) grids are mean-pooled over tokens first
    grid = torch.stack([FEATURES, FEATURES * 2], dim=1)
    assert geometry.coherence(ds, grid)["K"] == pytest.approx(geometry.coherence(ds, FEATURES)["K"])


def test_coherence_zero_vector_and_shape_checks():
    ds = three_images()
    feats = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    assert geometry.coherence(ds, feats)["K"] == pytest.approx((0 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="2 feature rows for 3 images"):
        geometry.coherence(ds, FEATURES[:2])


def test_coherence_matches_brute_force():
    ds = tiny_dataset(images_per_concept=3)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(ds.images), 6))
    result = geometry.coherence(ds, feats)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    idx = [i for i, it in enumerate(ds.images) if "mammal" in ds.concepts[it.concept].categories]
    sims = [unit[i] @ unit[j] for i in idx for j in idx if i != j]
    assert result["mammal"] == pytest.approx(np.mean(sims))


def test_coherence_over_some_of_the_images_by_hand():
    ds = three_images()
    # only a and c: K holds the one pair (a, c), cos 1/sqrt(2); b's row is not passed
    result = geometry.coherence(ds, FEATURES[[0, 2]], indices=[0, 2])
    assert result["K"] == pytest.approx(1 / math.sqrt(2))
    assert math.isnan(result["L"])
    assert geometry.coherence(ds, FEATURES[[0, 1]], indices=[0, 1])["K"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="3 feature rows for 2 images"):
        geometry.coherence(ds, FEATURES, indices=[0, 2])


def brute_force(ds, feats, indices, category, labeling=None):
    """Mean over ordered pairs i != j of the cosine, among the images in `indices` shown in `category`."""
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    shown = labeling or {c: c for c in ds.concepts}
    idx = [i for i in indices if category in ds.concepts[shown[ds.images[i].concept]].categories]
    return float(np.mean([unit[i] @ unit[j] for i in idx for j in idx if i != j]))


def patch_features(monkeypatch, feats, calls=None):
    monkeypatch.setattr(geometry, "pooled_features", lambda ds_, enc, device=None, progress=None:
                        (calls.append(enc) if calls is not None else None) or feats)


def test_coherence_table_is_over_the_seeds_training_images_by_default(tmp_path, monkeypatch):
    """The paper's coherence: among a category's TRAIN images under the seed's split. Training
    images of a category point one way, held-out ones anywhere: the train table is 1 where the
    all-images table is not."""
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = tiny_dataset(images_per_concept=5)
    split = questions.split_images(ds, 0)
    train = [i for i, it in enumerate(ds.images) if split[it.id] == "train"]
    assert geometry.image_indices(ds, 0) == train and 0 < len(train) < len(ds.images)
    assert geometry.image_indices(ds, 0, "all") == list(range(len(ds.images)))
    rng = np.random.default_rng(3)
    direction = {cat: rng.normal(size=6) for cat in ds.categories}
    feats = rng.normal(size=(len(ds.images), 6))
    for i in train:                   # a training image: its broadest category's direction, scaled
        feats[i] = direction[ds.concepts[ds.images[i].concept].categories[0]] * (1 + i)
    patch_features(monkeypatch, feats)

    table = geometry.coherence_table(ds, "enc", seed=0)
    everything = geometry.coherence_table(ds, "enc", seed=0, images="all")
    for cat in ("animal", "fruit", "vehicle"):
        assert table.loc[cat, "original"] == pytest.approx(1.0)
        assert table.loc[cat, "original"] == pytest.approx(brute_force(ds, feats, train, cat))
        assert everything.loc[cat, "original"] == pytest.approx(brute_force(ds, feats, range(len(ds.images)), cat))
        assert everything.loc[cat, "original"] < 0.9
    cross = geometry.labelings(ds, 0)[0]["cross"]
    assert table.loc["animal", "cross"] == pytest.approx(brute_force(ds, feats, train, "animal", cross))
    np.testing.assert_allclose(table["within"], table["original"])     # same images per category

    meta = {m: json.loads((geometry.cache_dir(ds, "enc", 0, m) / "meta.json").read_text()) for m in ("train", "all")}
    assert meta["train"]["image_set"] == "train" and meta["train"]["images"] == len(train)
    assert meta["all"]["image_set"] == "all" and meta["all"]["images"] == len(ds.images)
    assert meta["train"]["dataset_images"] == meta["all"]["dataset_images"] == len(ds.images)


def test_a_subset_without_a_within_shuffle_still_gets_its_table(tmp_path, monkeypatch):
    """A walk-through: the coherence table of a 15-concept subset (the size of the setting's runs)
    was refused, "within-category shuffle: no two concepts ... share a category set", so the page's
    offer and the command it named could only fail. Original and cross come out; within is empty and
    the meta says why."""
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = three_images()                         # x and y have different category sets: no within shuffle
    with pytest.raises(ConfigError, match="within-category shuffle"):
        from core.conditions import parse_condition
        parse_condition("within").apply(ds, 0)
    patch_features(monkeypatch, FEATURES.numpy())
    table = geometry.coherence_table(ds, "enc", seed=0, images="all")
    assert list(table.columns) == ["original", "cross", "within"]
    assert table["within"].isna().all() and not table["original"].isna().all()
    meta = json.loads((geometry.cache_dir(ds, "enc", 0, "all") / "meta.json").read_text())
    assert "within-category shuffle" in meta["not_possible"]["within"] and "cross" not in meta["not_possible"]


def test_labelings_leave_out_a_shuffle_the_dataset_cannot_have_with_its_reason():
    """The Geometry page's maps and clusters' trees read these: a dataset with no within shuffle
    used to raise out of them (the page failed after its coherence table came out)."""
    ds = three_images()
    shown, impossible = geometry.labelings(ds, 0)
    assert list(shown) == ["original", "cross"] and shown["original"] == {c: c for c in ds.concepts}
    assert sorted(shown["cross"]) == sorted(ds.concepts) and shown["cross"] != shown["original"]
    assert list(impossible) == ["within"] and "within-category shuffle" in impossible["within"]


def test_coherence_table_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = tiny_dataset(images_per_concept=5)
    feats = np.random.default_rng(1).normal(size=(len(ds.images), 5))
    calls = []
    patch_features(monkeypatch, feats, calls)
    seen = []
    table = geometry.coherence_table(ds, "enc", seed=0, progress=lambda f, m: seen.append(f))
    train = geometry.image_indices(ds, 0, "train")
    assert list(table.columns) == ["original", "cross", "within"]
    assert table.index[-1] == "all" and len(table) == 8 + 1
    assert table.loc["mammal", "original"] == pytest.approx(
        geometry.coherence(ds, feats[train], indices=train)["mammal"])
    assert table.loc["all", "cross"] == pytest.approx(table["cross"].iloc[:-1].mean())
    np.testing.assert_allclose(table["within"], table["original"])   # same images per category
    assert not np.allclose(table["cross"], table["original"])
    assert seen[-1] == 1.0
    out = geometry.cache_dir(ds, "enc", 0)
    assert out == geometry.cache_dir(ds, "enc", 0, "train") != geometry.cache_dir(ds, "enc", 0, "all")
    assert out.parent == tmp_path / "runs" / "coherence"
    assert (out / "coherence.csv").is_file() and (out / "meta.json").is_file()

    again = geometry.coherence_table(ds, "enc", seed=0)
    assert calls == ["enc"]                                           # second call read the cache
    assert geometry.is_cached(ds, "enc", 0) and not geometry.is_cached(ds, "enc", 1)
    assert not geometry.is_cached(ds, "enc", 0, "all")
    np.testing.assert_allclose(again.to_numpy(), table.to_numpy())

    changed = tiny_dataset(images_per_concept=4)                      # same name, other contents
    feats = feats[: len(changed.images)]
    patch_features(monkeypatch, feats, calls)
    geometry.coherence_table(changed, "enc", seed=0)
    assert calls == ["enc", "enc"]
    assert geometry.cache_dir(changed, "enc", 0) != out and (out / "meta.json").is_file()


def test_the_cache_never_serves_an_old_or_all_images_table_as_a_train_one(tmp_path, monkeypatch):
    """A table cached before the images choice (its meta has no "image_set"; it was over all
    images), an "all" table, or a train table of another split is recomputed, not served."""
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = tiny_dataset(images_per_concept=5)
    feats = np.random.default_rng(2).normal(size=(len(ds.images), 5))
    calls = []
    patch_features(monkeypatch, feats, calls)
    everything = geometry.coherence_table(ds, "enc", seed=0, images="all")
    assert calls == ["enc"] and not geometry.is_cached(ds, "enc", 0)
    train = geometry.coherence_table(ds, "enc", seed=0)                # not the "all" table
    assert calls == ["enc", "enc"]
    assert not np.allclose(train["original"].dropna(), everything.loc[train["original"].dropna().index, "original"])

    out = geometry.cache_dir(ds, "enc", 0, "train")
    meta = json.loads((out / "meta.json").read_text())
    planted = train * 0 + 42.0
    old = {k: meta[k] for k in ("dataset", "encoder", "seed", "fingerprint", "concepts", "within_singletons")}
    old["images"] = len(ds.images)                                    # what the old code wrote
    for stale in (old, {**meta, "image_set": "all"}, {**meta, "images_fingerprint": "0" * 16}):
        geometry._save(out, planted, stale)
        assert not geometry.is_cached(ds, "enc", 0)
        served = geometry.coherence_table(ds, "enc", seed=0)
        np.testing.assert_allclose(served.to_numpy(), train.to_numpy())   # recomputed, not 42
        assert json.loads((out / "meta.json").read_text())["image_set"] == "train"
    assert len(calls) == 5


def test_a_bad_images_choice_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = tiny_dataset()
    for call in (lambda: geometry.coherence_table(ds, "enc", 0, images="test"),
                 lambda: geometry.cache_dir(ds, "enc", 0, "val"),
                 lambda: geometry.image_indices(ds, 0, None),
                 lambda: geometry.is_cached(ds, "enc", 0, "everything")):
        with pytest.raises(ConfigError, match="images must be 'train' or 'all', got"):
            call()
    assert geometry.IMAGE_SETS == ("train", "all")


def test_embed_2d_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 8)) * np.array([5, 3, 1, 1, 1, 1, 1, 1])
    y = geometry.embed_2d(x, method="pca")
    assert y.shape == (30, 2)
    np.testing.assert_allclose(geometry.embed_2d(-x, method="pca"), y, atol=1e-9)  # signs fixed
    assert y[:, 0].var() > y[:, 1].var()
    assert geometry.embed_2d(x[:1], method="pca").shape == (1, 2)
    with pytest.raises(ValueError, match="umap' or 'pca"):
        geometry.embed_2d(x, method="tsne")


def test_embed_2d_umap_arguments(monkeypatch):
    """UMAP itself is exercised in tests/integration (its numba JIT takes ~20-40 s); here a stand-in
    records what embed_2d asks of it."""
    import sys
    import types

    made = []

    class FakeUMAP:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def fit_transform(self, x):
            return x[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    x = np.arange(24.0).reshape(6, 4)
    y = geometry.embed_2d(torch.tensor(x), method="umap", seed=7)
    np.testing.assert_allclose(y, x[:, :2] * 2)
    assert made == [{"n_components": 2, "n_neighbors": 5, "metric": "cosine", "n_jobs": 1,
                     "random_state": 7, "init": "random"}]
    with pytest.raises(ValueError, match="at least 4"):
        geometry.embed_2d(x[:3], method="umap")


def test_labelings_and_the_categories_images_are_shown_under():
    ds = tiny_dataset(images_per_concept=2)
    lab, impossible = geometry.labelings(ds, seed=0)
    assert list(lab) == list(geometry.LABELINGS) and impossible == {} and lab["original"] == {c: c for c in ds.concepts}
    for name in ("cross", "within"):
        assert sorted(lab[name]) == sorted(lab[name].values()) == sorted(ds.concepts)   # a permutation
    assert any(lab["cross"][c] != c for c in ds.concepts)
    assert all(ds.concepts[c].categories == ds.concepts[lab["within"][c]].categories for c in ds.concepts)
    broad = geometry.shown_categories(ds, lab["original"], broadest=True)
    narrow = geometry.shown_categories(ds, lab["original"], broadest=False)
    dog = [i for i, im in enumerate(ds.images) if im.concept == "dog"]
    assert {broad[i] for i in dog} == {"animal"} and {narrow[i] for i in dog} == {"mammal"}
    swapped = geometry.shown_categories(ds, lab["original"] | {"dog": "car"}, broadest=True)
    assert {swapped[i] for i in dog} == {"vehicle"}


def test_projector_outputs_are_the_trained_image_tokens(tmp_path, monkeypatch):
    import fake_vlm
    from core import train
    from core.config import TrainConfig
    from core.models import checkpoint

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    fake_vlm.install(monkeypatch)
    run_dir = train.train(TrainConfig(dataset="tiny", epochs=1, batch_size=8, device="cpu"))
    ds = tiny_dataset()
    out = geometry.projector_outputs(ds, run_dir)
    _, vlm = checkpoint.load_trained(run_dir)
    grid = fake_vlm.FakeCache(vlm.encoder).get(list(ds.images))
    with torch.no_grad():
        expected = vlm.prefix(grid).float().mean(dim=1).numpy()
    assert out.shape == (len(ds.images), fake_vlm.HIDDEN)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():                                  # the TRAINED projector, not a fresh one
        untrained = fake_vlm.FakeVLM(TrainConfig(dataset="tiny")).prefix(grid).float().mean(dim=1).numpy()
    assert not np.allclose(out, untrained, atol=1e-4)
