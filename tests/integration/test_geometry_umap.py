"""UMAP for real (numba-compiled, hence not a unit test): shape, separation, determinism by seed."""
from __future__ import annotations

import numpy as np
import pytest

from core import geometry


@pytest.mark.integration
def test_umap_separates_two_clusters_deterministically():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8)) + np.array([4, 0, 0, 0, 0, 0, 0, 0])
    b = rng.normal(size=(20, 8)) - np.array([4, 0, 0, 0, 0, 0, 0, 0])
    x = np.concatenate([a, b])
    y = geometry.embed_2d(x, method="umap", seed=3)
    assert y.shape == (40, 2) and np.isfinite(y).all()
    np.testing.assert_allclose(y, geometry.embed_2d(x, method="umap", seed=3))
    # every point is nearer its own cluster's centre than the other one's
    ca, cb = y[:20].mean(axis=0), y[20:].mean(axis=0)
    near_a = np.linalg.norm(y - ca, axis=1) < np.linalg.norm(y - cb, axis=1)
    assert near_a[:20].all() and not near_a[20:].any()
