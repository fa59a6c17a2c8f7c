"""One image → what a trained run thinks is in it: leaf guesses, hypernym chain, category scores.

    p = Predictor.load(run_dir)          # frozen models + trained projector, loaded once
    pred = p.predict("photo.png")        # any image, also one outside the dataset
    pred.to_dict()                       # JSON-able, structured for drawing

Every score is P(yes) of one yes/no question sharing the image's prefix: "Is there a <leaf> in the
image?" for every concept of the run's training vocabulary, the same about every dataset category,
and about every WordNet node on the hypernym chain(s) of the best leaf (leaf → root). The image is
encoded on the fly, not through the dataset's feature cache.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from core import rundata, runs, scoring, taxonomy
from core.models import checkpoint
from core.images import load_image
from core.questions import question_text

_CACHE: dict[tuple, "Predictor"] = {}


@dataclass
class ChainNode:
    synset: str
    label: str
    p_yes: float
    is_category: bool                  # a category of the dataset (trained on, unless ablated)
    category: str | None = None        # its category name when is_category


@dataclass
class Prediction:
    run_id: str
    best: str                          # concept name of the top leaf
    leaves: list[dict]                 # top-k {"concept", "label", "p_yes"}, best first
    chains: list[list[ChainNode]]      # hypernym chain(s) of the best leaf, each leaf → root
    categories: list[dict]             # every category {"category", "label", "p_yes", "of_best"}, best first
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Predictor:
    def __init__(self, info: runs.RunInfo, vlm, dataset, device: torch.device):
        self.info, self.vlm, self.dataset, self.device = info, vlm, dataset, device
        self.concepts = sorted(dataset.concepts)
        self.categories = sorted({k for c in dataset.concepts.values() for k in c.categories})
        self.category_of_synset = {dataset.categories[k].synset: k for k in self.categories
                                   if dataset.categories[k].synset}

    @classmethod
    def load(cls, run_dir: str | Path, device: str | None = None) -> "Predictor":
        """Load once and reuse: cached per (run, checkpoint version, device) in this process."""
        info = runs.load_run(run_dir)
        ck = runs.checkpoint_json(info.path)
        dev = checkpoint.resolve_device(device or info.config.device)
        key = (str(info.path), os.stat(ck).st_mtime_ns if ck.is_file() else 0, str(dev))
        if key not in _CACHE:
            info, vlm = checkpoint.load_trained(info.path, dev)
            dataset, _ = rundata.load_subset(info.config)   # the run's own (sub)set: its vocabulary
            _CACHE.clear()                                   # one model set in memory at a time
            _CACHE[key] = cls(info, vlm, dataset, dev)
        return _CACHE[key]

    @torch.no_grad()
    def encode(self, image: Image.Image) -> torch.Tensor:
        """Encoder features of one image, shaped like one row of the feature cache."""
        x = self.vlm.encoder.preprocess(image).unsqueeze(0).to(self.device)
        # fp16 round trip: the cache stores fp16 grids, so a dataset image scores exactly as in evaluation
        return self.vlm.encoder(x).to("cpu", torch.float16).float()

    def predict(self, image: str | Path | Image.Image, top_k: int = 5) -> Prediction:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if not isinstance(image, Image.Image):
            image = load_image(image)
        image = image.convert("RGB")
        ds = self.dataset
        feats = self.encode(image)
        leaf_texts = [question_text(ds.concepts[c].label) for c in self.concepts]
        leaf_p = self._p_yes(feats, leaf_texts)
        ranked = sorted(zip(self.concepts, leaf_p), key=lambda cp: (-cp[1], cp[0]))
        best = ranked[0][0]

        notes = []
        synset = ds.concepts[best].synset
        chains_syn = taxonomy.hypernym_chains(synset) if synset else []
        if not synset:
            notes.append(f"concept '{best}' has no WordNet synset, so no hypernym chain")
        nodes = sorted({s for chain in chains_syn for s in chain})
        node_label = {s: taxonomy.display_name(s) for s in nodes}
        cat_texts = [question_text(ds.categories[k].label) for k in self.categories]
        node_texts = [question_text(node_label[s]) for s in nodes]
        scores = self._p_yes(feats, cat_texts + node_texts)
        cat_p = dict(zip(self.categories, scores[:len(cat_texts)]))
        node_p = dict(zip(nodes, scores[len(cat_texts):]))

        chains = [[ChainNode(s, node_label[s], node_p[s], s in self.category_of_synset,
                             self.category_of_synset.get(s)) for s in chain] for chain in chains_syn]
        best_cats = set(ds.concepts[best].categories)
        categories = [{"category": k, "label": ds.categories[k].label, "p_yes": cat_p[k],
                       "of_best": k in best_cats}
                      for k in sorted(self.categories, key=lambda k: (-cat_p[k], k))]
        leaves = [{"concept": c, "label": ds.concepts[c].label, "p_yes": p} for c, p in ranked[:top_k]]
        return Prediction(self.info.run_id, best, leaves, chains, categories, notes)

    def _p_yes(self, feats: torch.Tensor, texts: list[str]) -> list[float]:
        return [p for p, _ in scoring.score_image(self.vlm, feats, texts)]
