"""Visual coherence of categories, and 2-D maps of image embeddings.

    coherence_table(ds, encoder, seed, images="train") / is_cached(...)  per category, per labeling
    image_indices(ds, seed, images)         the images a table is over: the seed's train split or all
    labelings(ds, seed)                     original / cross / within: concept -> concept it is shown as,
                                            and why a shuffle the dataset cannot have is left out
    shown_categories(ds, labeling, broadest) per image: the category label it is shown under
    pooled_features(ds, encoder)            (N, D) encoder embeddings;  projector_outputs(ds, run_dir)
    embed_2d(X, "umap" | "pca", seed)       (N, 2) maps

Coherence of a category = mean pairwise cosine similarity between the (pooled) encoder embeddings
of its images, excluding each image paired with itself. As in the paper, the images are by default
the TRAINING images of the seed's split (core.questions.split_images(ds, seed) == "train": what a
run with that seed trains on); images="all" takes every image of the dataset (or subset) instead,
for exploration. Computed under the original labels and under the cross / within counterfactual
labelings: the paper's explanation for why within-category shuffles still generalise and
cross-category ones do not is that only the former keep categories visually coherent. (A
within-shuffle only permutes concepts that share their category set, so every category keeps
exactly its images: its column equals "original" by construction, a check rather than a finding.
Cross-shuffles mix categories and lower it.)
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from core import files, paths, questions
from core.base import ConfigError, Progress, whole_number
from core.config import SPLIT_PERCENT, canonical_split_percent, parse_split_percent

LABELINGS = ("original", "cross", "within")
# which images a category's coherence is over: its training images under the seed's split (the
# paper's definition, the default everywhere), or all of its images
IMAGE_SETS = ("train", "all")


def pool(features) -> np.ndarray:
    """(N, D) or (N, T, D) token grids -> (N, D) float64, mean over tokens (pooled to 1 token)."""
    x = features.detach().cpu().float().numpy() if hasattr(features, "detach") else np.asarray(features)
    x = x.astype(np.float64, copy=False)
    if x.ndim == 3:
        x = x.mean(axis=1)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D) or (N, T, D), got shape {tuple(x.shape)}")
    return x


def coherence(ds, features, labeling: Mapping[str, str] | None = None,
              indices: Sequence[int] | None = None) -> dict[str, float]:
    """category -> mean pairwise cosine of its images' embeddings under `labeling`.

    features: (N, D) or (N, T, D); row k belongs to ds.images[indices[k]] (indices None: row i to
    ds.images[i], every image). An image counts for the categories of the concept it is labelled
    as. Categories with fewer than 2 of these images get NaN.
    """
    x = pool(features)
    items = ds.images if indices is None else [ds.images[int(i)] for i in indices]
    if x.shape[0] != len(items):
        raise ValueError(f"{x.shape[0]} feature rows for {len(items)} images")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 0, norms, 1.0)          # a zero vector has cosine 0 with everything
    self_sim = (unit * unit).sum(axis=1)                # 1, or 0 for zero vectors

    members: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        shown = questions.shown_concept(item.concept, labeling)
        for cat in dict.fromkeys(ds.concepts[shown].categories):
            members.setdefault(cat, []).append(i)

    result: dict[str, float] = {}
    for cat in sorted({k for c in ds.concepts.values() for k in c.categories}):
        idx = members.get(cat, [])
        n = len(idx)
        if n < 2:
            result[cat] = float("nan")
            continue
        # sum over ordered pairs i != j of u_i.u_j = |sum u|^2 - sum |u_i|^2, in O(n D)
        total = unit[idx].sum(axis=0)
        result[cat] = float((total @ total - self_sim[idx].sum()) / (n * (n - 1)))
    return result


def check_images(images: str) -> str:
    """`images` if it names one of IMAGE_SETS, else ConfigError."""
    if not isinstance(images, str) or images not in IMAGE_SETS:
        raise ConfigError(f"images must be {' or '.join(repr(v) for v in IMAGE_SETS)}, got {images!r}")
    return images


def image_indices(ds, seed: int, images: str = "train", split_percent: str = SPLIT_PERCENT) -> list[int]:
    """Indices into ds.images of the images a coherence table is over: those the seed's split
    (questions.split_images at split_percent, as a run with that seed and split trains) puts in
    "train", or all of them."""
    if check_images(images) == "all":
        return list(range(len(ds.images)))
    split = questions.split_images(ds, seed, parse_split_percent(split_percent))
    return [i for i, item in enumerate(ds.images) if split[item.id] == "train"]


def coherence_table(ds, encoder_id: str, seed: int, progress: Progress | None = None,
                    device: str | None = None, images: str = "train", split_percent: str = SPLIT_PERCENT):
    """pandas DataFrame: one row per category plus an "all" row (macro mean over categories),
    columns original / cross / within, over the category's training images under the seed's split
    (images="train", the paper's; split at split_percent, TrainConfig's) or all its images
    (images="all"). ds: a Dataset or a dataset's name. Cached under runs/coherence/ by (dataset,
    encoder, seed, images, split), and recomputed if the dataset's contents or the chosen images
    changed. The features of every image are read (and cached) either way: the maps need them, and
    encoding them takes minutes on a CPU the first time (pass `progress` to watch)."""
    import pandas as pd

    if isinstance(ds, str):
        from core.data.datasets import load_dataset
        ds = load_dataset(ds)
    seed = whole_number(seed, "seed")      # "1" would compute and cache a table of its own
    report = progress or (lambda fraction, message: None)
    split_percent = canonical_split_percent(split_percent) if images == "train" else SPLIT_PERCENT
    out_dir = cache_dir(ds, encoder_id, seed, images, split_percent)
    fingerprint = dataset_fingerprint(ds)
    chosen = image_indices(ds, seed, images, split_percent)
    chosen_fingerprint = images_fingerprint(ds, chosen)
    cached = _load_cached(out_dir, fingerprint, images, chosen_fingerprint)
    if cached is not None:
        report(1.0, "coherence loaded from cache")
        return cached

    shuffles, impossible = shuffled_labelings(ds, seed)
    labelings = {"original": None, **{name: d.labeling for name, d in shuffles.items()}}

    features = pooled_features(ds, encoder_id, device=device,
                               progress=lambda f, m: report(0.95 * f, m))
    report(0.95, f"computing coherence over {len(chosen)} {'training ' if images == 'train' else ''}images")
    pooled = pool(features)
    if pooled.shape[0] != len(ds.images):
        raise ValueError(f"{pooled.shape[0]} feature rows for {len(ds.images)} images")
    rows = pooled[chosen]
    columns = {name: coherence(ds, rows, lab, indices=chosen) for name, lab in labelings.items()}
    table = pd.DataFrame(columns).reindex(columns=list(LABELINGS))     # a shuffle not possible here: NaN
    table.loc["all"] = table.mean(axis=0, skipna=True)
    table.index.name = "category"

    meta = {"dataset": ds.name, "encoder": encoder_id, "seed": seed, "fingerprint": fingerprint,
            "image_set": images, "split_percent": split_percent if images == "train" else None,
            "images": len(chosen), "images_fingerprint": chosen_fingerprint,
            "dataset_images": len(ds.images), "concepts": len(ds.concepts),
            "within_singletons": shuffles["within"].report.get("singletons", []) if "within" in shuffles else [],
            "not_possible": impossible}
    _save(out_dir, table, meta)
    report(1.0, "coherence done")
    return table


def shuffled_labelings(ds, seed: int) -> tuple[dict, dict[str, str]]:
    """({shuffle: its Deprivation} for cross and within, {shuffle: why it is not possible}) for
    coherence_table. A shuffle that cannot be applied to `ds` (a small subset where no two concepts
    share a category set has no within-category shuffle) is left out with its reason, so the
    table's other columns still come out."""
    from core.base import ConfigError
    from core.conditions import parse_condition

    done, impossible = {}, {}
    for name in LABELINGS[1:]:
        try:
            done[name] = parse_condition(name).apply(ds, seed)
        except ConfigError as exc:
            impossible[name] = str(exc)
    return done, impossible


def pooled_features(ds, encoder_id: str, device: str | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """(N, D) pooled embeddings of ds.images through the on-disk feature cache."""
    from core.features import FeatureCache
    from core.models import checkpoint, registry

    encoder = registry.create_encoder(encoder_id, device=device or checkpoint.resolve_device("auto"))
    # pool=1 at load time: the full grids of a whole dataset would not fit comfortably in memory
    return pool(FeatureCache(encoder).get(list(ds.images), progress=progress, pool=1))


def projector_outputs(ds, run_dir: str | Path) -> np.ndarray:
    """(N, H): a trained run's image tokens for every image of `ds`, mean-pooled over tokens -- where
    the projector puts each picture in the LM's embedding space."""
    import torch
    from core.features import FeatureCache
    from core.models import checkpoint

    _, vlm = checkpoint.load_trained(run_dir)
    grid = FeatureCache(vlm.encoder).get(list(ds.images))
    out = []
    with torch.no_grad():
        for start in range(0, grid.shape[0], 256):
            tokens = vlm.prefix(grid[start:start + 256])
            out.append(tokens.float().mean(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def labelings(ds, seed: int) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """({labeling: concept -> the concept its images are shown as} for original (itself) and each
    shuffle `ds` allows, {shuffle: why it is not possible}), as shuffled_labelings leaves them out."""
    done, impossible = shuffled_labelings(ds, seed)
    shown = {"original": {c: c for c in ds.concepts}}
    return shown | {name: d.labeling for name, d in done.items()}, impossible


def shown_categories(ds, labeling: Mapping[str, str], broadest: bool) -> list[str]:
    """Per image of `ds`: the label of the category it is shown under (its labelled concept's
    broadest or most specific category; "(none)" for a concept without one)."""
    out = []
    for item in ds.images:
        cats = ds.concepts[labeling[item.concept]].categories
        out.append(ds.categories[cats[0] if broadest else cats[-1]].label if cats else "(none)")
    return out


def is_cached(ds, encoder_id: str, seed: int, images: str = "train", split_percent: str = SPLIT_PERCENT) -> bool:
    """Whether coherence_table(ds, encoder_id, seed, images=images, split_percent=...) has been
    computed for these contents and these images (its cache is on disk and current)."""
    meta = read_meta(cache_dir(ds, encoder_id, seed, images, split_percent))
    chosen = image_indices(ds, seed, images, split_percent)
    return meta is not None and _current(meta, dataset_fingerprint(ds), images, images_fingerprint(ds, chosen))


def embed_2d(X, method: str = "umap", seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with UMAP (cosine metric) or PCA; deterministic for a given seed."""
    x = pool(X)
    n = x.shape[0]
    if method == "pca":
        return _pca_2d(x)
    if method != "umap":
        raise ValueError(f"method must be 'umap' or 'pca', got {method!r}")
    if n < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {n}; use method='pca'")
    import umap  # slow to import (numba); only when asked for

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine", n_jobs=1,
                        random_state=seed, init="spectral" if n > 10 else "random")
    return np.asarray(reducer.fit_transform(x), dtype=np.float64)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    out = np.zeros((n, 2))
    if n < 2:
        return out
    centered = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    k = min(2, s.shape[0])
    scores = u[:, :k] * s[:k]
    # SVD signs are arbitrary; fix them so the largest-magnitude score of each axis is positive
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    out[:, :k] = scores * np.where(signs == 0, 1.0, signs)
    return out


# --- cache -------------------------------------------------------------------------------------

def cache_dir(ds, encoder_id: str, seed: int, images: str = "train", split_percent: str = SPLIT_PERCENT) -> Path:
    """runs/coherence/<dataset>__<encoder>__seed<seed>__<images>[-<split>]__<content hash>: a subset
    of a dataset keeps the dataset's name, so the contents are part of the key; a train table of
    another split than SPLIT_PERCENT names it (train-70-5-25). An encoder id may hold a checkpoint
    path, so the name goes through paths.safe_name (slug + hash unless already plain). (Tables from
    before the images choice, over all images, sit in folders without it: never read.)"""
    chosen = check_images(images)
    if chosen == "train" and canonical_split_percent(split_percent) != SPLIT_PERCENT:
        chosen += "-" + canonical_split_percent(split_percent).replace("/", "-")
    name = f"{ds.name}__{encoder_id}__seed{int(seed)}__{chosen}__{dataset_fingerprint(ds)[:8]}"
    return paths.runs_dir() / "coherence" / paths.safe_name(name)


def dataset_fingerprint(ds) -> str:
    """Hash of what coherence depends on: images (id, concept) and concept categories."""
    h = hashlib.sha256()
    for item in sorted(ds.images, key=lambda it: it.id):
        h.update(f"{item.id}:{item.concept}\n".encode())
    for name in sorted(ds.concepts):
        h.update(f"{name}:{'+'.join(ds.concepts[name].categories)}\n".encode())
    return h.hexdigest()[:16]


def images_fingerprint(ds, indices: Sequence[int]) -> str:
    """Hash of the ids of the images a table is over: a train table is stale once the split
    (questions.split_images) puts other images in train."""
    h = hashlib.sha256()
    for image_id in sorted(ds.images[int(i)].id for i in indices):
        h.update(f"{image_id}\n".encode())
    return h.hexdigest()[:16]


def read_meta(out_dir: Path) -> dict | None:
    """A coherence table's meta.json (what it is over, what it could not compute); None if unreadable."""
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def _current(meta: dict, fingerprint: str, images: str, chosen_fingerprint: str) -> bool:
    """A cached table's meta matches: same contents, same images choice, same images. A meta without
    "image_set" comes from before the choice (over all images) and matches nothing."""
    return (meta.get("fingerprint") == fingerprint and meta.get("image_set") == images
            and meta.get("images_fingerprint") == chosen_fingerprint)


def _load_cached(out_dir: Path, fingerprint: str, images: str, chosen_fingerprint: str):
    import pandas as pd

    table_path = out_dir / "coherence.csv"
    meta = read_meta(out_dir)
    if meta is None or not table_path.is_file() or not _current(meta, fingerprint, images, chosen_fingerprint):
        return None
    return pd.read_csv(table_path, index_col="category")


def _save(out_dir: Path, table, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    files.write_atomic(out_dir / "coherence.csv", table.to_csv())
    files.write_atomic(out_dir / "meta.json", json.dumps(meta, indent=2))  # last: marks the cache complete


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined coherence (fewer than 2 images) is written as null."""
    return None if value is None or math.isnan(value) else float(value)
