"""Where an image lands in the LM: the nearest tokens of each image token, and a logit lens.

    lens = Lens(vlm)
    lens.image(features)          # one image: nearest tokens per image token, next-token distribution
    summarize(run_dir)            # every image of a run: does it "write the word"? share per category

An image token is a vector in the LM's input embedding space. Two views of what it says:

- nearest tokens: the vocabulary entries whose input embeddings (`LanguageModel.embed`, any scale
  included) have the highest cosine similarity with the image token;
- logit lens: the LM's next-token distribution after the prompt up to and including the image
  tokens (`VLM.prefix_embeds(features, with_question=False)`: the LM's start tokens, "Image:", the
  image), next to the distribution after the same start text alone (no image). Tokens the image
  makes much more likely than the text alone are what the image "says" to the LM.

"Writes the word": an image hits when one of its tokens (nearest tokens of any image token, or the
top next tokens) is the first token of its concept's name (label or a lemma of its synset) or of
one of its hypernyms (WordNet ancestors below the four most general levels -- entity, physical
entity, object, whole... say nothing about an image -- plus its dataset categories). A first token
counts only when it is the whole word or has at least three letters, so " k" of " kangaroo" does not.
`chance` asks the same of another concept's words (a fixed derangement), the hit rate that generic
tokens alone would give. A projector with top-k concept tokens (TrainConfig.projector_topk) starts
those tokens at its concepts' names, so for it a hit mostly says the probe ranked the concept high.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from core.base import Progress

TOP = 10                  # nearest / next tokens kept per image token / image
MIN_HYPERNYM_DEPTH = 4    # ancestors above this depth (entity, object, whole, ...) do not count
LENS_BATCH = 64
RESULT_FORMAT = 1


def shown(text: str) -> str:
    """A token's text with its leading space and newlines made visible: ' dog' -> '␣dog'."""
    return text.replace(" ", "␣").replace("\n", "\\n") or "∅"


@dataclass
class TokenScore:
    id: int
    text: str            # decoded, as the tokenizer writes it (' dog')
    score: float         # cosine (nearest) or probability (next token)

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "shown": shown(self.text), "score": self.score}


class Lens:
    """Nearest-token and next-token views of a VLM's image tokens (inference only)."""

    def __init__(self, vlm):
        self.vlm = vlm
        self.lm = vlm.lm
        self._table: torch.Tensor | None = None
        self._baseline: torch.Tensor | None = None
        self._decoded: dict[int, str] = {}

    # ------------------------------------------------------------ pieces

    @torch.no_grad()
    def table(self) -> torch.Tensor:
        """(V, H) unit-norm input embeddings of the vocabulary (float32, on the VLM's device)."""
        if self._table is None:
            weight_rows = self.lm.model.get_input_embeddings().num_embeddings
            chunks = []
            for s in range(0, weight_rows, 16384):
                ids = torch.arange(s, min(s + 16384, weight_rows), device=self.lm.device)
                e = self.lm.embed(ids).float()
                chunks.append(e / e.norm(dim=-1, keepdim=True).clamp_min(1e-12))
            self._table = torch.cat(chunks)
        return self._table

    def decode(self, token_id: int) -> str:
        if token_id not in self._decoded:
            self._decoded[token_id] = self.lm.tokenizer.decode([int(token_id)])
        return self._decoded[token_id]

    @torch.no_grad()
    def nearest(self, tokens: torch.Tensor, top: int = TOP) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (..., H) -> (cosines (..., top), ids (..., top)), most similar first."""
        t = tokens.float().to(self.table().device)
        t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (t @ self.table().T).topk(top, dim=-1)

    @torch.no_grad()
    def next_probs(self, features: torch.Tensor) -> torch.Tensor:
        """(B, V) next-token probabilities after [start text][image tokens]."""
        from core.models.vlm import autocast
        with autocast(self.vlm.device):
            embeds = self.vlm.prefix_embeds(features, with_question=False)
            out = self.lm.model(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long,
                                                                                device=embeds.device),
                                use_cache=False, logits_to_keep=1)
        return out.logits[:, -1].float().softmax(-1)

    @torch.no_grad()
    def baseline_probs(self) -> torch.Tensor:
        """(V,) next-token probabilities after the start text alone (the prompt head, no image)."""
        if self._baseline is None:
            from core.models.vlm import autocast
            ids = torch.tensor([list(self.vlm.prompt.head)], device=self.vlm.device)
            with autocast(self.vlm.device):
                out = self.lm.model(input_ids=ids, use_cache=False, logits_to_keep=1)
            self._baseline = out.logits[0, -1].float().softmax(-1)
        return self._baseline

    def token_norm(self) -> float:
        if not hasattr(self, "_token_norm"):
            self._token_norm = self.lm.token_norm()
        return self._token_norm

    # ------------------------------------------------------------ one image

    @torch.no_grad()
    def image(self, features: torch.Tensor, top: int = TOP) -> dict:
        """One image (features (1, N, D) or (N, D)): per image token its norm and nearest tokens; the
        next tokens after the image, after the start text alone, and those the image lifts most."""
        if features.dim() == 2:
            features = features.unsqueeze(0)
        tokens = self.vlm.prefix(features[:1]).float()[0]                       # (k, H)
        cos, ids = self.nearest(tokens, top)
        probs = self.next_probs(features[:1])[0]
        base = self.baseline_probs()
        p, pid = probs.topk(top)
        b, bid = base.topk(top)
        lift = (probs.clamp_min(1e-12).log() - base.clamp_min(1e-12).log())
        lift = torch.where(probs >= 1e-4, lift, torch.full_like(lift, -1e9))      # only tokens it makes likely
        lv, lid = lift.topk(top)
        norm = self.token_norm()
        return {
            "image_tokens": [{"index": j, "norm": float(tokens[j].norm()), "norm_ratio": float(tokens[j].norm()) / norm,
                              "nearest": [TokenScore(int(i), self.decode(int(i)), float(c)).to_dict()
                                          for c, i in zip(cos[j].tolist(), ids[j].tolist())]}
                             for j in range(tokens.shape[0])],
            "next": [TokenScore(int(i), self.decode(int(i)), float(v)).to_dict() for v, i in zip(p.tolist(), pid.tolist())],
            "baseline_next": [TokenScore(int(i), self.decode(int(i)), float(v)).to_dict()
                              for v, i in zip(b.tolist(), bid.tolist())],
            "lifted": [{**TokenScore(int(i), self.decode(int(i)), float(probs[i])).to_dict(),
                        "baseline": float(base[i]), "log_ratio": float(v)}
                       for v, i in zip(lv.tolist(), lid.tolist()) if v > -1e8],
            "token_norm": norm,
        }

    # ------------------------------------------------------------ many images

    @torch.no_grad()
    def token_sets(self, features: torch.Tensor, top: int = TOP,
                   progress: Progress | None = None) -> tuple[list[set[int]], list[set[int]]]:
        """Per image: the ids among the top nearest tokens of any of its image tokens, and the ids of
        its top next tokens."""
        near, nxt = [], []
        n = features.shape[0]
        for s in range(0, n, LENS_BATCH):
            f = features[s:s + LENS_BATCH]
            _, ids = self.nearest(self.vlm.prefix(f).float(), top)                # (b, k, top)
            near += [set(row.reshape(-1).tolist()) for row in ids.cpu()]
            nxt += [set(row.tolist()) for row in self.next_probs(f).topk(top, dim=-1).indices.cpu()]
            if progress is not None:
                done = min(n, s + LENS_BATCH)
                progress(done / n, f"logit lens: {done}/{n} images")
        return near, nxt


# ------------------------------------------------------------------ which tokens are "the word"

def first_token_ids(lm, words: Sequence[str]) -> set[int]:
    """Ids of the first token of each word as it would start a word in text (' dog', 'dog',
    ' Dog', 'Dog'); kept when that token is the whole word or has at least three letters."""
    out: set[int] = set()
    for word in words:
        word = word.strip()
        if not word:
            continue
        for form in (f" {word}", word, f" {word[0].upper()}{word[1:]}", f"{word[0].upper()}{word[1:]}"):
            ids = lm.tokens(form)
            if not ids:
                continue
            text = lm.tokenizer.decode([ids[0]]).strip()
            letters = sum(ch.isalpha() for ch in text)
            if text.lower() == form.strip().lower() or letters >= 3:
                out.add(int(ids[0]))
    return out


def concept_words(ds, concept: str) -> tuple[list[str], list[str]]:
    """(name words, hypernym words) of a dataset concept: its label and synset lemmas; the lemmas of
    its WordNet ancestors at depth >= MIN_HYPERNYM_DEPTH and its dataset categories' labels."""
    from core import taxonomy
    c = ds.concepts[concept]
    names = [c.label]
    hypers: list[str] = [ds.categories[k].label for k in c.categories if k in ds.categories]
    if c.synset:
        try:
            names += taxonomy.lemma_names(c.synset)
            for anc in sorted(taxonomy.ancestors(c.synset)):
                if taxonomy.depth(anc) >= MIN_HYPERNYM_DEPTH:
                    hypers += taxonomy.lemma_names(anc)
        except taxonomy.TaxonomyError:
            pass
    names = list(dict.fromkeys(names))
    return names, [h for h in dict.fromkeys(hypers) if h not in names]


class WordTargets:
    """Per concept, the token ids that count as its name and as its hypernyms (cached)."""

    def __init__(self, lm, ds):
        self.lm, self.ds = lm, ds
        self._cache: dict[str, tuple[set[int], set[int]]] = {}

    def __call__(self, concept: str) -> tuple[set[int], set[int]]:
        if concept not in self._cache:
            names, hypers = concept_words(self.ds, concept)
            name_ids = first_token_ids(self.lm, names)
            self._cache[concept] = (name_ids, first_token_ids(self.lm, hypers) - name_ids)
        return self._cache[concept]

    def hits(self, ids: set[int], concept: str) -> dict[str, bool]:
        name, hyper = self(concept)
        return {"name": bool(ids & name), "hypernym": bool(ids & hyper)}


# ------------------------------------------------------------------ a run: per category

def out_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "lens" / "summary.json"


def _stamp(run_dir) -> str:
    from core import runs
    return runs.checkpoint_stamp(run_dir)


def load_cached(run_dir: str | Path) -> dict | None:
    from core import runs
    return runs.read_cached_result(out_path(run_dir), RESULT_FORMAT, run_dir)


def _derangement(names: Sequence[str]) -> dict[str, str]:
    names = sorted(names)
    shift = max(1, len(names) // 2)
    return {n: names[(i + shift) % len(names)] for i, n in enumerate(names)}


@torch.no_grad()
def summarize(run_dir: str | Path, top: int = TOP, progress: Progress | None = None, device=None,
              write: bool = True, vlm=None) -> dict:
    """For every image of the run's dataset (its subset): does it write its concept's name or a
    hypernym among its image tokens' nearest tokens / its next tokens? Shares per category (an image
    counts for the categories of its concept) and overall, against its TRUE concept and, for runs
    trained on shuffled labels, the concept it was labelled as; `chance` = another concept's words.
    Cached as <run>/lens/summary.json."""
    from core import rundata, runs
    from core.features import image_features

    report = progress or (lambda f, m: None)
    report(0.0, "loading the checkpoint")
    info, vlm = _trained(run_dir, device, vlm)
    data = rundata.prepare(info.config)
    ds = data.dataset
    images = sorted(ds.images, key=lambda im: (im.concept, im.style, im.id))
    feats, _ = image_features(vlm, images, progress=lambda f, m: report(0.05 + 0.15 * f, m))
    lens = Lens(vlm)
    near, nxt = lens.token_sets(feats, top, progress=lambda f, m: report(0.2 + 0.7 * f, m))
    targets = WordTargets(vlm.lm, ds)
    labelled = data.deprivation.labeling
    shuffled = any(labelled.get(c, c) != c for c in ds.concepts)
    other = _derangement(ds.concepts)
    rows = []
    for im, n_ids, x_ids in zip(images, near, nxt):
        truth = im.concept
        row = {"image_id": im.id, "concept": truth, "labelled_as": labelled.get(truth, truth)}
        for view, ids in (("nearest", n_ids), ("next", x_ids)):
            for who, concept in (("true", truth), ("labelled", row["labelled_as"]), ("chance", other[truth])):
                if who == "labelled" and not shuffled:
                    continue
                for what, hit in targets.hits(ids, concept).items():
                    row[f"{view}_{who}_{what}"] = hit
        rows.append(row)
    report(0.95, "shares per category")
    result = {"format": RESULT_FORMAT, "run_id": info.run_id, "run_dir": str(Path(run_dir).resolve()),
              "checkpoint_stamp": _stamp(run_dir), "condition": info.config.condition, "shuffled": shuffled,
              "top": top, "n_images": len(images), "token_norm": lens.token_norm(),
              "image_token_norm": float(vlm.prefix(feats[:min(len(feats), 256)]).float().norm(dim=-1).mean()),
              "columns": [k for k in rows[0] if k not in ("image_id", "concept", "labelled_as")] if rows else [],
              "categories": category_shares(ds, rows), "images": rows,
              "examples": _examples(lens, ds, images, near), "common": _common(lens, near)}
    if write:
        runs.write_json(out_path(run_dir), result)
    report(1.0, "done")
    return result


def category_shares(ds, rows: Sequence[dict]) -> list[dict]:
    """One row per category (+ "all"): n images and the share of each hit column."""
    if not rows:
        return []
    cols = [k for k in rows[0] if k not in ("image_id", "concept", "labelled_as")]
    groups: dict[str, list[dict]] = {"all": list(rows)}
    for r in rows:
        for k in ds.concepts[r["concept"]].categories:
            groups.setdefault(k, []).append(r)
    out = []
    for name in ["all"] + sorted(k for k in groups if k != "all"):
        members = groups[name]
        entry = {"category": name, "label": "all images" if name == "all" else ds.categories[name].label,
                 "n": len(members)}
        for c in cols:
            entry[c] = sum(bool(r[c]) for r in members) / len(members)
        for view in ("nearest", "next"):
            for who in ("true", "labelled", "chance"):
                if f"{view}_{who}_name" in rows[0]:
                    entry[f"{view}_{who}_any"] = sum(bool(r[f"{view}_{who}_name"] or r[f"{view}_{who}_hypernym"])
                                                     for r in members) / len(members)
        out.append(entry)
    return out


def _common(lens: Lens, near: Sequence[set[int]], top: int = 5) -> list[dict]:
    """The nearest tokens shared by the most images, with the share of images: when every image
    lands near the same few words, the projector has collapsed onto one direction."""
    from collections import Counter
    counts = Counter(i for ids in near for i in ids)
    return [{"id": int(i), "shown": shown(lens.decode(i)), "share": n / max(1, len(near))}
            for i, n in counts.most_common(top)]


def _examples(lens: Lens, ds, images, near: Sequence[set[int]]) -> dict[str, list[str]]:
    """concept -> the most frequent nearest tokens over its images (shown form), for tables."""
    from collections import Counter
    by_concept: dict[str, Counter] = {}
    for im, ids in zip(images, near):
        by_concept.setdefault(im.concept, Counter()).update(ids)
    return {c: [shown(lens.decode(i)) for i, _ in cnt.most_common(5)] for c, cnt in sorted(by_concept.items())}


def _trained(run_dir, device, vlm):
    """(RunInfo, VLM): the checkpoint's, loaded here unless the caller has it loaded already (the
    app's cached Predictor)."""
    from core import runs
    from core.models import checkpoint
    if vlm is not None:
        return runs.load_run(run_dir), vlm
    return checkpoint.load_trained(run_dir, device)
