"""Category clustering as trees, against WordNet: does the model's category structure follow
WordNet, and does a label shuffle break it?

    result = compute(run_dir, split="test")     # scores + trees of one checkpoint, cached on disk
    result["levels"]["category"]["labelings"]["cross"]["scores"]["answers"]["cophenetic"]

For the images of a split, three per-image representations (SOURCES):

    encoder    the frozen encoder's pooled feature (what the image looks like to the encoder)
    projector  the trained projector's image token(s), mean over tokens (what the LM is given)
    answers    the answer profile: P(yes) of every category question ("Is there a mammal in the
               image?", ...), asked of the trained model about the image

Images are grouped into leaves, either categories (an image counts for every category of the concept
it is *labelled as*) or concepts (an image group is named by the concept it is labelled as), under
the original labels and under the cross / within shuffles of the run's seed (core.conditions). Each
leaf's vector is the mean of its images' vectors; vectors are centred over the leaves (the mean leaf
removed, so a component every image shares does not dominate) and compared by cosine distance;
average linkage (UPGMA) makes the tree.

The reference is WordNet: the shortest-path distance (edges) between the leaves' synsets, and its own
average-linkage tree (internal nodes named by their lowest common hypernym). Agreement of a model tree
with WordNet (`agreement`):

    cophenetic           Pearson correlation of the model tree's cophenetic distances with the
                         WordNet path distances over all leaf pairs (+ Spearman)
    fm_mean / fm_by_k    Fowlkes-Mallows index of the two trees cut into the same number k of
                         clusters, k = 2 .. n-1, and its mean over k
    null                 the same scores with the model tree's leaves randomly permuted (mean, sd,
                         and the share of permutations scoring at least as high: a p-value)

Categories overlap (every mammal is an animal), so category leaves share images and sit close in ANY
representation: the `membership` row scores random per-image vectors grouped the same way, the
agreement that membership alone explains. Under the within shuffle every category keeps exactly its
images (concepts are swapped only inside groups with the same category set), so category-level
trees equal the original ones by construction; concept leaves are where within-shuffles show.

Answer profiles cost one LM pass per image and category question (the prefix is shared), which on a
CPU is minutes for a few hundred images; they are cached in the run folder (`profiles_<split>.npz`)
and everything else is recomputed from them in seconds. Results: <run>/clusters/<split>/clusters.json
and one Newick file per tree.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from core.base import Progress

SOURCES = ("encoder", "projector", "answers")
LEVELS = ("category", "concept")
SPLITS = ("train", "val", "test", "all")
N_PERMUTATIONS = 200
MEMBERSHIP_SEEDS = 5
MEMBERSHIP_DIM = 64
FLAT_PROFILE_SD = 0.02                # answer profiles varying less than this say nothing
RESULT_FORMAT = 1


# ------------------------------------------------------------------ trees from vectors / distances

def linkage_from_vectors(x: np.ndarray, center: bool = True) -> np.ndarray:
    """Average-linkage tree of the rows of x by cosine distance (rows centred first when `center`).
    Zero rows (after centring) are at distance 1 from everything."""
    from scipy.cluster.hierarchy import linkage
    return linkage(_condensed(cosine_distances(x, center)), method="average")


def cosine_distances(x: np.ndarray, center: bool = True) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if center and x.shape[0] > 1:
        x = x - x.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 1e-12, norms, 1.0)
    d = 1.0 - unit @ unit.T
    zero = (norms[:, 0] <= 1e-12)
    d[zero, :] = 1.0
    d[:, zero] = 1.0
    np.fill_diagonal(d, 0.0)
    return np.clip((d + d.T) / 2, 0.0, 2.0)


def linkage_from_distances(d: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    return linkage(_condensed(d), method="average")


def _condensed(d: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import squareform
    d = np.asarray(d, dtype=np.float64)
    return squareform(d, checks=False)


def wordnet_distances(synsets: Sequence[str]) -> np.ndarray:
    """(n, n) WordNet shortest-path distances (edges) between synsets."""
    from core import taxonomy
    n = len(synsets)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = taxonomy.path_distance(synsets[i], synsets[j])
    return d


# ------------------------------------------------------------------ agreement

def fowlkes_mallows(a: Sequence[int], b: Sequence[int]) -> float:
    """Fowlkes-Mallows index of two flat clusterings of the same items: TP / sqrt((TP+FP)(TP+FN))
    over item pairs; 1 = identical partitions. NaN when either puts every item alone."""
    a, b = np.asarray(a), np.asarray(b)
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    pairs = lambda counts: float((counts * (counts - 1)).sum() / 2)
    tp, pa, pb = pairs(table), pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    if pa == 0 or pb == 0:
        return float("nan")
    return tp / math.sqrt(pa * pb)


def cuts(z: np.ndarray) -> dict[int, np.ndarray]:
    """k -> cluster of each leaf when the tree is cut into exactly k clusters, k = 2 .. n-1."""
    from scipy.cluster.hierarchy import cut_tree
    n = z.shape[0] + 1
    ks = list(range(2, n))
    if not ks:
        return {}
    table = cut_tree(z, n_clusters=ks)
    return {k: table[:, i] for i, k in enumerate(ks)}


def agreement(z_model: np.ndarray, d_ref: np.ndarray, ref_cuts: Mapping[int, np.ndarray],
              n_perm: int = N_PERMUTATIONS, seed: int = 0) -> dict:
    """Agreement of a model tree with the reference (WordNet) distances and tree cuts; see the module
    doc. Scores are None when there are too few leaves (< 3) or no variation to correlate."""
    from scipy.cluster.hierarchy import cophenet
    from scipy.stats import spearmanr

    n = z_model.shape[0] + 1
    out = {"n_leaves": n, "cophenetic": None, "cophenetic_spearman": None, "fm_mean": None,
           "fm_by_k": {}, "null": None}
    if n < 3:
        return out
    coph = cophenet(z_model)
    ref = _condensed(d_ref)
    out["cophenetic"] = _corr(coph, ref)
    rho = spearmanr(coph, ref).statistic if np.ptp(coph) > 0 and np.ptp(ref) > 0 else float("nan")
    out["cophenetic_spearman"] = _finite(rho)
    model_cuts = cuts(z_model)
    fm = {k: fowlkes_mallows(model_cuts[k], ref_cuts[k]) for k in model_cuts}
    out["fm_by_k"] = {str(k): _finite(v) for k, v in fm.items()}
    out["fm_mean"] = _nanmean(fm.values())

    # null: the same tree with its leaves shuffled (coph[perm] = cophenetic of the permuted tree)
    from scipy.spatial.distance import squareform
    rng = np.random.default_rng(seed)
    coph_sq = squareform(coph)
    null_c, null_fm = [], []
    for _ in range(n_perm):
        perm = rng.permutation(n)
        null_c.append(_corr(squareform(coph_sq[np.ix_(perm, perm)], checks=False), ref))
        null_fm.append(_nanmean(fowlkes_mallows(model_cuts[k][perm], ref_cuts[k]) for k in model_cuts))
    c = np.array([v for v in null_c if v is not None], dtype=float)
    f = np.array([v for v in null_fm if v is not None], dtype=float)
    out["null"] = {
        "permutations": n_perm,
        "cophenetic_mean": _finite(c.mean()) if c.size else None,
        "cophenetic_sd": _finite(c.std()) if c.size else None,
        "cophenetic_p": (float(((c >= out["cophenetic"] - 1e-12).sum() + 1) / (c.size + 1))
                         if c.size and out["cophenetic"] is not None else None),
        "fm_mean": _finite(f.mean()) if f.size else None,
        "fm_p": (float(((f >= out["fm_mean"] - 1e-12).sum() + 1) / (f.size + 1))
                 if f.size and out["fm_mean"] is not None else None),
    }
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return _finite(float(np.corrcoef(a, b)[0, 1]))


def _finite(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _nanmean(values) -> float | None:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else None


# ------------------------------------------------------------------ leaves and groups

def leaf_groups(ds, image_concepts: Sequence[str], labeling: Mapping[str, str], level: str,
                leaves: Sequence[str]) -> list[list[int]]:
    """Per leaf, the rows (images, by their TRUE concept in image_concepts) that belong to it when
    each image is shown as labeling[its concept]."""
    index = {name: i for i, name in enumerate(leaves)}
    groups: list[list[int]] = [[] for _ in leaves]
    for row, concept in enumerate(image_concepts):
        shown = labeling.get(concept, concept)
        names = ds.concepts[shown].categories if level == "category" else (shown,)
        for name in dict.fromkeys(names):
            if name in index:
                groups[index[name]].append(row)
    return groups


MIN_TREE_LEAVES = 2           # a tree needs two leaves with synsets: below that a level has none


def drawable_leaves(ds) -> dict[str, tuple[int, int]]:
    """Per level, (leaves with a WordNet synset, leaves) over the dataset's concepts, by leaves_of:
    what can be drawn is known before anything is computed (an imported dataset's categories have
    no synsets, so it has concept trees only)."""
    out = {}
    for level in LEVELS:
        kept, _, _, left_out = leaves_of(ds, list(ds.concepts), level)
        out[level] = (len(kept), len(kept) + len(left_out))
    return out


def drawable_levels(counts: dict[str, tuple[int, int]]) -> list[str]:
    """The levels of drawable_leaves' counts with enough leaves for a tree."""
    return [level for level, (kept, _) in counts.items() if kept >= MIN_TREE_LEAVES]


def leaves_of(ds, image_concepts: Sequence[str], level: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """(leaf names, their labels, their synsets, names left out for having no WordNet synset) at a
    level, over the concepts present among the images. Sorted by name. The leaf set is the same
    under every labeling (shuffles permute concepts among themselves)."""
    present = sorted(set(image_concepts))
    if level == "category":
        names = sorted({k for c in present for k in ds.concepts[c].categories})
        items = [(k, ds.categories[k].label, ds.categories[k].synset) for k in names]
    elif level == "concept":
        items = [(c, ds.concepts[c].label, ds.concepts[c].synset) for c in present]
    else:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    kept = [it for it in items if it[2]]
    return [n for n, _, _ in kept], [lab for _, lab, _ in kept], [s for _, _, s in kept], \
        [n for n, _, s in items if not s]


def group_means(x: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    return np.stack([x[list(g)].mean(axis=0) if len(g) else np.zeros(x.shape[1]) for g in groups])


# ------------------------------------------------------------------ Newick and drawing data

_PLAIN = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _newick_name(name: str) -> str:
    return name if _PLAIN.match(name) else "'" + name.replace("'", "''") + "'"


def newick(z: np.ndarray, labels: Sequence[str], internal: Mapping[int, str] | None = None) -> str:
    """A scipy linkage as Newick, branch lengths = differences of merge heights. `internal` names
    internal nodes by their linkage id (n + row)."""
    from scipy.cluster.hierarchy import to_tree

    if len(labels) == 1:
        return f"{_newick_name(labels[0])};"
    root = to_tree(z)

    def walk(node, parent_height: float) -> str:
        length = max(0.0, parent_height - node.dist)
        if node.is_leaf():
            return f"{_newick_name(labels[node.id])}:{length:.6g}"
        name = _newick_name(internal[node.id]) if internal and node.id in internal else ""
        return f"({walk(node.left, node.dist)},{walk(node.right, node.dist)}){name}:{length:.6g}"

    inner = walk(root, root.dist)
    return inner.rsplit(":", 1)[0] + ";"


def internal_hypernyms(z: np.ndarray, synsets: Sequence[str]) -> dict[int, str]:
    """Each internal node (by linkage id) -> the lowest common hypernym of its leaves' synsets."""
    from core import taxonomy
    n = len(synsets)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    out = {}
    for row, (a, b, _, _) in enumerate(z):
        node = n + row
        members[node] = members[int(a)] + members[int(b)]
        out[node] = taxonomy.lowest_common_hypernym([synsets[i] for i in members[node]])
    return out


def tree_dict(z: np.ndarray, leaves: Sequence[str], labels: Sequence[str], synsets: Sequence[str],
              wordnet: bool = False) -> dict:
    """JSON-able tree: the linkage, the leaves, Newick, and (WordNet trees) internal node names."""
    internal = internal_hypernyms(z, synsets) if wordnet and len(leaves) > 1 else {}
    return {"leaves": list(leaves), "labels": list(labels), "linkage": np.asarray(z).tolist(),
            "internal": {str(k): v for k, v in internal.items()},
            "newick": newick(z, labels, internal)}


# ------------------------------------------------------------------ scores of one set of vectors

def level_result(ds, image_concepts: Sequence[str], vectors: Mapping[str, np.ndarray],
                 labelings: Mapping[str, Mapping[str, str]], level: str,
                 n_perm: int = N_PERMUTATIONS, seed: int = 0) -> dict:
    """Trees and agreement scores at one level for every labeling and source in `vectors`
    ({source: (N, D) per-image vectors, rows aligned with image_concepts}), plus the membership
    baseline (random per-image vectors, grouped the same way)."""
    leaves, labels, synsets, no_synset = leaves_of(ds, image_concepts, level)
    result = {"leaves": leaves, "labels": labels, "synsets": synsets, "left_out": no_synset,
              "wordnet": None, "labelings": {}}
    if len(leaves) < MIN_TREE_LEAVES:
        return result
    d_ref = wordnet_distances(synsets)
    z_ref = linkage_from_distances(d_ref)
    ref_cuts = cuts(z_ref)
    result["wordnet"] = tree_dict(z_ref, leaves, labels, synsets, wordnet=True)
    rng = np.random.default_rng(seed)
    membership_x = [rng.standard_normal((len(image_concepts), MEMBERSHIP_DIM)) for _ in range(MEMBERSHIP_SEEDS)]
    for name, labeling in labelings.items():
        groups = leaf_groups(ds, image_concepts, labeling, level, leaves)
        entry = {"trees": {}, "scores": {}, "empty_leaves": [leaves[i] for i, g in enumerate(groups) if not g]}
        for source, x in vectors.items():
            z = linkage_from_vectors(group_means(np.asarray(x, dtype=np.float64), groups))
            entry["trees"][source] = tree_dict(z, leaves, labels, synsets)
            entry["scores"][source] = agreement(z, d_ref, ref_cuts, n_perm=n_perm, seed=seed)
        runs_ = [agreement(linkage_from_vectors(group_means(x, groups)), d_ref, ref_cuts, n_perm=0)
                 for x in membership_x]
        entry["scores"]["membership"] = {
            "n_leaves": len(leaves), "seeds": MEMBERSHIP_SEEDS,
            "cophenetic": _nanmean(r["cophenetic"] for r in runs_),
            "cophenetic_spearman": _nanmean(r["cophenetic_spearman"] for r in runs_),
            "fm_mean": _nanmean(r["fm_mean"] for r in runs_)}
        result["labelings"][name] = entry
    return result


# ------------------------------------------------------------------ one checkpoint

def out_dir(run_dir: str | Path, split: str) -> Path:
    return Path(run_dir) / "clusters" / split


def images_of_split(data, split: str) -> list:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    ims = data.dataset.images if split == "all" else data.images(split)
    return sorted(ims, key=lambda im: (im.concept, im.style, im.id))


def load_cached(run_dir: str | Path, split: str = "test") -> dict | None:
    """The stored result of `compute`, or None (also when it is for another checkpoint version)."""
    from core import runs
    return runs.read_cached_result(out_dir(run_dir, split) / "clusters.json", RESULT_FORMAT, run_dir)


def cached_profiles(run_dir: str | Path, split: str) -> tuple[list[str], np.ndarray] | None:
    path = out_dir(run_dir, split) / "profiles.npz"
    if not path.is_file():
        return None
    try:
        z = np.load(path, allow_pickle=False)
        if str(z["stamp"]) != _stamp(run_dir):
            return None
        return [str(i) for i in z["image_ids"]], np.asarray(z["p_yes"], dtype=np.float64)
    except (OSError, KeyError, ValueError):
        return None


def _stamp(run_dir) -> str:
    from core import runs
    return runs.checkpoint_stamp(run_dir)


def question_count(run_dir: str | Path, split: str = "test") -> tuple[int, int, int]:
    """(images, category questions per image, questions) that answer profiles of a split cost."""
    from core import rundata, runs
    info = runs.load_run(run_dir)
    data = rundata.prepare(info.config)
    images = images_of_split(data, split)
    cats = len({k for c in data.dataset.concepts.values() for k in c.categories})
    return len(images), cats, len(images) * cats


def compute(run_dir: str | Path, split: str = "test", sources: Sequence[str] = SOURCES,
            progress: Progress | None = None, device=None, n_perm: int = N_PERMUTATIONS,
            write: bool = True, vlm=None) -> dict:
    """Trees and tree-agreement scores of one checkpoint (see the module doc). Answer profiles are
    read from the run folder when cached, else scored (the slow part) and cached. With `write`, the
    result goes to <run>/clusters/<split>/ (clusters.json + Newick files)."""
    import torch

    from core import geometry, rundata
    from core.features import image_features
    from core.questions import question_text

    report = progress or (lambda f, m: None)
    bad = [s for s in sources if s not in SOURCES]
    if bad or not sources:
        raise ValueError(f"sources must be drawn from {', '.join(SOURCES)}, got {list(sources)!r}")
    from core import runs
    from core.base import ConfigError

    # the run's data first: a split too small for trees is refused (one line) before a model loads
    info = runs.load_run(run_dir)
    data = rundata.prepare(info.config)
    ds = data.dataset
    images = images_of_split(data, split)
    if len(images) < 2:
        raise ConfigError(f"split {split!r} of run {info.run_id} has {len(images)} image(s); trees need at least 2")
    report(0.0, "loading the checkpoint")
    info, vlm = _trained(run_dir, device, vlm)
    concepts_of = [im.concept for im in images]
    feats, _ = image_features(vlm, images, progress=lambda f, m: report(0.05 + 0.1 * f, m))

    vectors: dict[str, np.ndarray] = {}
    notes: list[str] = []
    if "encoder" in sources:
        vectors["encoder"] = feats.float().mean(dim=1).numpy().astype(np.float64)
    if "projector" in sources:
        with torch.no_grad():
            tokens = [vlm.prefix(feats[s:s + 256]).float().mean(dim=1).cpu() for s in range(0, len(feats), 256)]
        vectors["projector"] = torch.cat(tokens).numpy().astype(np.float64)
    categories = sorted({k for c in ds.concepts.values() for k in c.categories})
    if "answers" in sources:
        ids = [im.id for im in images]
        cached = cached_profiles(run_dir, split)
        if cached is not None and cached[0] == ids and cached[1].shape[1] == len(categories):
            profiles = cached[1]
            report(0.8, "answer profiles read from the cache")
        else:
            texts = [question_text(ds.categories[k].label) for k in categories]
            rows = []
            for s in range(0, len(images), 32):
                batch = vlm.score(feats[s:s + 32], [texts] * len(feats[s:s + 32]))
                rows += [a.p_yes.numpy() for a in batch]
                done = min(len(images), s + 32)
                report(0.15 + 0.65 * done / len(images),
                       f"answer profiles: {done}/{len(images)} images × {len(texts)} category questions")
            profiles = np.stack(rows).astype(np.float64)
            if write:
                path = out_dir(run_dir, split) / "profiles.npz"
                path.parent.mkdir(parents=True, exist_ok=True)
                _save_npz(path, image_ids=np.array(ids), p_yes=profiles, categories=np.array(categories),
                          stamp=np.array(_stamp(run_dir)))
        vectors["answers"] = profiles
        spread = float(profiles.std(axis=0).mean())
        if spread < FLAT_PROFILE_SD:
            notes.append(f"The answer profiles barely vary across images (mean sd of P(yes) {spread:.3f}): this "
                         f"checkpoint answers the category questions alike whatever the image, so its answer "
                         f"tree is noise. It has not learned to read images.")
    labelings, impossible = geometry.labelings(ds, info.config.seed)
    notes += [f"The {name} shuffle is left out: {why}." for name, why in impossible.items()]
    result = {"format": RESULT_FORMAT, "run_id": info.run_id, "run_dir": str(Path(run_dir).resolve()),
              "checkpoint_stamp": _stamp(run_dir), "condition": info.config.condition,
              "seed": info.config.seed, "split": split, "n_images": len(images),
              "n_concepts": len(set(concepts_of)), "categories": categories, "sources": list(vectors),
              "notes": notes, "levels": {}}
    for i, level in enumerate(LEVELS):
        report(0.8 + 0.1 * i, f"trees and scores of {level} leaves")
        result["levels"][level] = level_result(ds, concepts_of, vectors, labelings, level, n_perm=n_perm,
                                               seed=info.config.seed)
    result["notes"] += missing_tree_notes(ds.name, result["levels"])
    if write:
        write_result(result, out_dir(run_dir, split))
    report(1.0, "done")
    return result


def missing_tree_notes(dataset: str, levels: Mapping[str, dict]) -> list[str]:
    """Per level of level_result's entries without trees, one line on why: too few of its leaves
    have a WordNet synset (an imported dataset's categories have none), and which trees are drawn."""
    plural = {"category": "categories", "concept": "concepts"}
    drawn = [level for level, entry in levels.items() if entry.get("wordnet")]
    notes = []
    for level, entry in levels.items():
        if entry.get("wordnet"):
            continue
        kept, total = len(entry["leaves"]), len(entry["leaves"]) + len(entry["left_out"])
        if total < MIN_TREE_LEAVES:
            why = f"These images have only {total} {level if total == 1 else plural[level]}"
        elif kept:
            why = f"Only {kept} of the {total} {plural[level]} of these images has a WordNet synset"
        else:
            why = f"No {level} of {dataset} has a WordNet synset" + \
                (" (an imported dataset's categories have none)" if level == "category" else "")
        rest = f"; the {' and '.join(drawn)} trees are drawn" if drawn else ""
        notes.append(f"{why}, so there are no {level} trees{rest}.")
    return notes


def _save_npz(path: Path, **arrays) -> None:
    from core import files
    files.write_atomic(path, write=lambda tmp: np.savez(tmp, **arrays))


def write_result(result: dict, folder: Path) -> dict[str, str]:
    """clusters.json + one Newick file per tree (<level>__wordnet.nwk, <level>__<labeling>__<source>.nwk).
    Returns {what: path}."""
    from core import runs
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for level, entry in result["levels"].items():
        if entry.get("wordnet"):
            p = folder / f"{level}__wordnet.nwk"
            runs.write_text(p, entry["wordnet"]["newick"] + "\n")
            written[f"{level}/wordnet"] = str(p)
        for labeling, lab in entry["labelings"].items():
            for source, tree in lab["trees"].items():
                p = folder / f"{level}__{labeling}__{source}.nwk"
                runs.write_text(p, tree["newick"] + "\n")
                written[f"{level}/{labeling}/{source}"] = str(p)
    runs.write_json(folder / "clusters.json", result)
    written["json"] = str(folder / "clusters.json")
    return written


def score_table(result: dict) -> list[dict]:
    """Flat rows {level, labeling, source, cophenetic, cophenetic_spearman, fm_mean, null_cophenetic,
    null_fm, p} of a result, for tables and CSV."""
    rows = []
    for level, entry in result["levels"].items():
        for labeling, lab in entry["labelings"].items():
            for source, s in lab["scores"].items():
                null = s.get("null") or {}
                rows.append({"run_id": result["run_id"], "condition": result["condition"], "level": level,
                             "labeling": labeling, "source": source, "leaves": s.get("n_leaves"),
                             "cophenetic": s.get("cophenetic"), "cophenetic_spearman": s.get("cophenetic_spearman"),
                             "fm_mean": s.get("fm_mean"), "null_cophenetic": null.get("cophenetic_mean"),
                             "null_fm": null.get("fm_mean"), "p_cophenetic": null.get("cophenetic_p")})
    return rows


def _trained(run_dir, device, vlm):
    """(RunInfo, VLM): the checkpoint's, loaded here unless the caller has it loaded already (the
    app's cached Predictor)."""
    from core import runs
    from core.models import checkpoint
    if vlm is not None:
        return runs.load_run(run_dir), vlm
    return checkpoint.load_trained(run_dir, device)
