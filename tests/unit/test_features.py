"""core.features.FeatureCache: encode once per image content, read from disk afterwards, pool at load."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from core import paths
from core.features import FeatureCache, file_sha256
from test_models import FakeEncoder


@dataclass(frozen=True)
class Item:
    id: str
    path: Path


def make_items(folder: Path, n: int) -> list[Item]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGBA", (20, 20), (40 * i % 256, 90, 200 - 30 * i % 256, 255 if i % 2 else 120)).save(path)
        items.append(Item(f"img{i}", path))
    return items


def test_second_get_reads_the_disk_and_never_calls_the_encoder(tmp_path):
    items = make_items(tmp_path / "images", 5)
    enc = FakeEncoder()
    first = FeatureCache(enc, root=tmp_path / "cache", batch_size=2)
    feats = first.get(items)
    assert feats.shape == (5, 16, 8) and feats.dtype == torch.float32
    assert enc.calls == 5 and first.encoded == 5
    again = FeatureCache(enc, root=tmp_path / "cache").get(items[::-1])
    assert enc.calls == 5                                     # all hits
    assert torch.equal(again, feats.flip(0))
    direct = enc(torch.stack([enc.preprocess(Image.open(i.path)) for i in items]))
    assert torch.allclose(feats, direct, atol=2e-3)           # fp16 storage


def test_only_missing_images_are_encoded_and_duplicates_once(tmp_path):
    items = make_items(tmp_path / "images", 4)
    enc = FakeEncoder()
    cache = FeatureCache(enc, root=tmp_path / "cache")
    cache.get(items[:2])
    copy = tmp_path / "images" / "copy.png"
    copy.write_bytes(items[2].path.read_bytes())
    feats = cache.get(items + [Item("copy", copy)])
    assert enc.calls == 2 + 2                                 # items 2, 3; the copy shares item 2's bytes
    assert torch.equal(feats[2], feats[4])
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_pool_at_load_and_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    items = make_items(tmp_path / "images", 3)
    enc = FakeEncoder()
    cache = FeatureCache(enc)
    assert cache.root.parent == paths.features_dir() and cache.root.name.startswith("fake-")
    full = cache.get(items)
    pooled = cache.get(items, pool=4)
    assert pooled.shape == (3, 4, 8) and enc.calls == 3
    assert torch.allclose(pooled[:, 0], full.reshape(3, 4, 4, 8)[:, :2, :2].mean(dim=(1, 2)))
    assert cache.get(items, pool=1).shape == (3, 1, 8)
    sha = file_sha256(items[0].path)
    assert cache.path_of(sha).is_file() and cache.path_of(sha).parent.name == sha[:2]
    other = FakeEncoder(transform_id="fake-16px-other")
    assert FeatureCache(other).root != cache.root             # other preprocessing, other features


def test_progress_reports_encoding_and_loading(tmp_path):
    items = make_items(tmp_path / "images", 3)
    seen = []
    FeatureCache(FakeEncoder(), root=tmp_path / "cache", batch_size=2).get(items, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)
    assert any("encoding images with fake: 2/3" in m for _, m in seen)


def test_empty_and_broken_inputs(tmp_path):
    cache = FeatureCache(FakeEncoder(), root=tmp_path / "cache")
    assert cache.get([]).shape == (0, 0, 8)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    from core.images import ImageError
    with pytest.raises(ImageError):
        cache.get([Item("bad", bad)])
    assert not list((tmp_path / "cache").rglob("*.safetensors"))
