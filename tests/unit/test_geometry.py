"""Visual coherence against hand-computed cosines, its on-disk cache, and the 2-D embeddings."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core import geometry
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


def test_coherence_table_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    ds = tiny_dataset(images_per_concept=3)
    feats = np.random.default_rng(1).normal(size=(len(ds.images), 5))
    calls = []
    monkeypatch.setattr(geometry, "pooled_features",
                        lambda ds_, enc, device=None, progress=None: calls.append(enc) or feats)
    seen = []
    table = geometry.coherence_table(ds, "enc", seed=0, progress=lambda f, m: seen.append(f))
    assert list(table.columns) == ["original", "cross", "within"]
    assert table.index[-1] == "all" and len(table) == 8 + 1
    assert table.loc["mammal", "original"] == pytest.approx(geometry.coherence(ds, feats)["mammal"])
    assert table.loc["all", "cross"] == pytest.approx(table["cross"].iloc[:-1].mean())
    np.testing.assert_allclose(table["within"], table["original"])   # same images per category
    assert not np.allclose(table["cross"], table["original"])
    assert seen[-1] == 1.0
    out = geometry.cache_dir(ds, "enc", 0)
    assert out.parent == tmp_path / "runs" / "coherence"
    assert (out / "coherence.csv").is_file() and (out / "meta.json").is_file()

    again = geometry.coherence_table(ds, "enc", seed=0)
    assert calls == ["enc"]                                           # second call read the cache
    np.testing.assert_allclose(again.to_numpy(), table.to_numpy())

    changed = tiny_dataset(images_per_concept=2)                      # same name, other contents
    feats = feats[: len(changed.images)]
    geometry.coherence_table(changed, "enc", seed=0)
    assert calls == ["enc", "enc"]
    assert geometry.cache_dir(changed, "enc", 0) != out and (out / "meta.json").is_file()


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
