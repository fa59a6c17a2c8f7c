"""EfficientNet-Lite2 sees concepts: pooled embeddings of two styles of the same concept are, on
average over 24 concepts, more similar (cosine) than embeddings of unrelated concepts (no shared
category) in the same two styles."""
import pytest
import torch
import torch.nn.functional as F

from core.data import datasets
from core.models import registry
from core.images import load_image


def pairs(ds: datasets.Dataset, n: int = 24):
    """(concept, unrelated concept, style a, style b) for n concepts spread over the dataset."""
    concepts = sorted(c for c in ds.concepts if len(ds.images_of(c)) >= 2)
    step = max(1, len(concepts) // n)
    chosen = concepts[::step][:n]
    out = []
    for i, c in enumerate(chosen):
        styles = sorted(im.style for im in ds.images_of(c))[:2]
        for other in chosen[i + 1:] + chosen[:i]:
            other_styles = {im.style for im in ds.images_of(other)}
            if not set(ds.concepts[c].categories) & set(ds.concepts[other].categories) and set(styles) <= other_styles:
                out.append((c, other, *styles))
                break
    return out


@pytest.mark.integration
def test_same_concept_across_styles_is_closer_than_unrelated_concepts():
    ds = datasets.load_dataset("concepts")
    chosen = pairs(ds)
    assert len(chosen) >= 20
    enc = registry.create_encoder("efficientnet-lite2")
    by_key = {(im.concept, im.style): im for im in ds.images}
    keys = sorted({(c, a) for c, _, a, _ in chosen} | {(c, b) for c, _, _, b in chosen}
                  | {(o, b) for _, o, _, b in chosen})
    x = torch.stack([enc.preprocess(load_image(by_key[k].path)) for k in keys])
    with torch.inference_mode():
        emb = F.normalize(torch.cat([enc(x[i:i + 16]).mean(1) for i in range(0, len(x), 16)]), dim=-1)
    row = {k: i for i, k in enumerate(keys)}
    same = torch.stack([emb[row[(c, a)]] @ emb[row[(c, b)]] for c, _, a, b in chosen])
    unrelated = torch.stack([emb[row[(c, a)]] @ emb[row[(o, b)]] for c, o, a, b in chosen])
    print(f"mean cosine over {len(chosen)} concepts: same concept, two styles {same.mean():.3f}; "
          f"unrelated concepts, same two styles {unrelated.mean():.3f}")
    assert same.mean() > unrelated.mean()
