"""One image → what a trained run thinks is in it: leaf guesses, hypernym chain, category scores.

    p = Predictor.load(run_dir)          # frozen models + trained projector, loaded once (None: the default run)
    pred = p.predict("photo.png")        # any image, also one outside the dataset
    pred.to_dict()                       # JSON-able, structured for drawing

Every score is P(yes) of one yes/no question sharing the image's prefix: "Is there a <leaf> in the
image?" for every concept of the run's training vocabulary, the same about every dataset category,
and about every WordNet node on the hypernym chain(s) of the best leaf (leaf → root). The image is
encoded on the fly, not through the dataset's feature cache.

Beyond the training vocabulary:

    p.ask(image, ["Is there a marsupial in the image?", "wombat"])   # any yes/no question (a bare
                                                                     # noun is asked as one)
    p.open_chain(image)            # walk WordNet down from the root, scoring the hyponyms of each
                                   # confident node: a chain for a concept outside the vocabulary
    p.open_chain_steps(image)      # the same, yielding the partial walk after each scored node
    p.lens(image)                  # where the image tokens land in the LM (core.lens)

The open chain is a beam search over WordNet's noun hierarchy: starting at `start` (the root,
entity.n.01, which is not asked), the direct hyponyms (no instances) of each node in the beam are
asked about ("Is there a marsupial in the image?"), at most `max_children` per node (the most used
words first, by WordNet's SemCor counts). A child is confident when P(yes) >= `threshold` and (with
`contrast`, the default) the image gets more P(yes) than a blank white image does for the same
question: an LM says yes to "Is there an abstraction in the image?" whatever it sees, and only what
the image adds is evidence. The `beam` confident children the image lifts most form the next level,
until none is confident or `budget` questions have been asked (blank-image answers are remembered
per question, so they cost once per checkpoint). Its chains run from the deepest confident nodes up
to the first level below the root, best first.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch
from PIL import Image

from core import metrics, rundata, runs, scoring, taxonomy
from core.base import Progress, whole_number
from core.models import checkpoint
from core.models.encoders import pool_tokens
from core.images import load_image
from core.questions import question_text

_CACHE: dict[tuple, "Predictor"] = {}
# Leaves a bf16 pass over the whole vocabulary keeps for exact (fp32) scoring, on CPUs with native
# bf16 matmul. On 50 test images of the shipped checkpoint (bench/predict_shortlist.py) the fp32 top 5
# lay within the bf16 top 10 on every image (top 5 on most): 20 leaves is twice that margin.
SHORTLIST = 20


@dataclass
class ChainNode:
    synset: str
    label: str
    p_yes: float
    is_category: bool                  # a category of the dataset (trained on, unless ablated)
    category: str | None = None        # its category name when is_category


# Leaves whose P(yes) is this close to the best guess's make it a close call (Predict says so): on
# the shipped checkpoint's held-out images a wrong leaf often tops the true one by a few hundredths.
CLOSE_CALL = 0.05


@dataclass
class Prediction:
    run_id: str
    best: str                          # concept name of the top leaf
    leaves: list[dict]                 # top-k {"concept", "label", "p_yes"}, best first
    chains: list[list[ChainNode]]      # hypernym chain(s) of the best leaf, each leaf → root
    categories: list[dict]             # every category {"category", "label", "p_yes", "of_best"}, best first
    notes: list[str] = field(default_factory=list)
    shortlist: int = 0                 # leaves ranked in fp32 after a bf16 pass over all (0: every leaf)
    # A probe-posterior projector (projector_input "posterior") sees the image only as its image
    # probe's concept posterior ("features+posterior": beside the feature): that posterior's top-k
    # {"concept", "label", "share"}, largest first. Empty for a projector that reads the features
    # alone. Where the leaves differ, the LM reordered them.
    reads: list[dict] = field(default_factory=list)

    def close_to_best(self, margin: float = CLOSE_CALL) -> list[dict]:
        """The other shown leaves whose P(yes) is within `margin` of the best guess's: a best guess
        that is a close call (frog 0.97 over kangaroo 0.95), which a page should say it is."""
        top = self.leaves[0]["p_yes"]
        return [leaf for leaf in self.leaves[1:] if top - leaf["p_yes"] < margin]

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "close_to_best": [leaf["concept"] for leaf in self.close_to_best()]}


@dataclass
class Answer:
    question: str                      # what was asked (a bare noun made into a question)
    p_yes: float
    mass: float                        # P(yes) + P(no) over the answer tokens; < 0.5 = undecided

    @property
    def undecided(self) -> bool:
        """The LM would rather say something other than yes or no: neither, whatever P(yes) reads."""
        return self.mass < metrics.UNDECIDED_MASS

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "undecided": self.undecided}


@dataclass
class OpenNode:
    synset: str
    label: str
    p_yes: float | None                # None for the start node (not asked)
    mass: float | None
    p_blank: float | None              # P(yes) of the same question about a blank white image
    parent: str | None
    depth: int                         # levels below the start node
    confident: bool
    is_category: bool = False
    category: str | None = None

    @property
    def lift(self) -> float:
        """How much more the image says yes than a blank image does (P(yes) when not contrasted)."""
        if self.p_yes is None:
            return 0.0
        return self.p_yes - self.p_blank if self.p_blank is not None else self.p_yes


@dataclass
class OpenChain:
    """A (partial, while streaming) walk down WordNet for one image."""
    start: str
    threshold: float
    beam: int
    budget: int
    contrast: bool                     # confident also needs more P(yes) than a blank image gets
    nodes: dict[str, OpenNode]         # every node scored so far (+ the start node)
    chains: list[list[ChainNode]]      # deepest confident nodes -> first level, best first
    questions: int                     # asked so far
    done: bool = False
    stopped: str = ""                  # why the walk ended
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def snapshot(self) -> "OpenChain":
        """A copy that later steps of the walk do not change (nodes themselves never change)."""
        return dataclasses.replace(self, nodes=dict(self.nodes), chains=list(self.chains), notes=list(self.notes))


# Training asks questions of 25-60 characters; a much longer one reads far outside what the
# projector was trained for (a 5,000-word question left 1 % of P on Yes/No), and one past the LM's
# context window would run for minutes before failing.
MAX_QUESTION_CHARS = 200


def _wording(label: str) -> str:
    """A label as a question words it, for telling two labels apart: case and spacing aside."""
    return " ".join(label.split()).lower()


def as_question(text: str) -> str:
    """A yes/no question as typed ("Is there a marsupial in the image?"), or a bare noun phrase
    ("marsupial") asked the way training asks ("Is there a marsupial in the image?")."""
    if not isinstance(text, str):          # None or 123 would be asked as "Is there a None ...?"
        raise ValueError(f"a question is text, got {type(text).__name__} {text!r}")
    text = " ".join(text.split())
    if not text:
        raise ValueError("the question is empty")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"a question of {len(text)} characters: ask one short yes/no question (at most "
                         f"{MAX_QUESTION_CHARS} characters)")
    if not any(ch.isalnum() for ch in text):
        raise ValueError(f"{text!r} has no words to ask about")
    if text.endswith("?"):
        return text[0].upper() + text[1:]
    return question_text(text.rstrip(".!"))


class Predictor:
    def __init__(self, info: runs.RunInfo, vlm, dataset, device: torch.device):
        self.info, self.vlm, self.dataset, self.device = info, vlm, dataset, device
        self.concepts = sorted(dataset.concepts)
        self.categories = sorted({k for c in dataset.concepts.values() for k in c.categories})
        self.category_of_synset = {dataset.categories[k].synset: k for k in self.categories
                                   if dataset.categories[k].synset}
        # An imported category has no synset; a WordNet node worded as it ("reptile") asks its very
        # question, so the chain marks it as that category too.
        self._category_of_label: dict[str, str] = {}
        for k in self.categories:
            if not dataset.categories[k].synset:
                self._category_of_label.setdefault(_wording(dataset.categories[k].label), k)
        self._features: dict[str, torch.Tensor] = {}     # last few images' features (features())
        self._lens = None
        self._blank: dict[str, float] = {}              # question -> P(yes) for a blank image
        self._blank_feats: torch.Tensor | None = None
        # A bf16 first pass pays off only where bf16 matmuls are native (AMX / AVX512-BF16); on CUDA
        # every pass already runs under bf16 autocast. Set to 0 to score every leaf in fp32.
        self.shortlist = SHORTLIST if device.type == "cpu" and checkpoint.cpu_has_native_bf16() else 0
        self._quick_vlm = None                          # vlm.bf16_twin(), built on first use

    def __repr__(self) -> str:
        return f"Predictor({self.info.run_id!r}, {len(self.concepts)} leaves, {len(self.categories)} categories, {self.device})"

    @property
    def note(self) -> str | None:
        """Why this run's answers should not be trusted (runs.learning_note, read now), None when its
        test evaluation shows it learned: what the app and `taxolens predict` say beside every answer."""
        return runs.answer_warning(self.info.path)

    def _category_of(self, synset: str, label: str) -> tuple[bool, str | None]:
        """(is a dataset category, its name) for a WordNet node: by its synset, or for a category
        without one (an imported dataset's) by the node's wording."""
        name = self.category_of_synset.get(synset) or self._category_of_label.get(_wording(label))
        return name is not None, name

    @classmethod
    def load(cls, run_dir: str | Path | None = None, device: str | None = None) -> "Predictor":
        """Load once and reuse: cached per (run, checkpoint version, device) in this process, one run
        at a time (loading another evicts it; objects already held keep working).
        run_dir: a run folder or id; None, the run `taxolens predict` answers with when none is named
        (checkpoint.default_run: the finished run of the default config or the shipped recipe that
        scored best on validation here, else the shipped checkpoint, copied into the runs folder the
        first time)."""
        if run_dir is None:
            run_dir = checkpoint.default_run()
            if run_dir is None:
                raise runs.RunError("no trained run to load: no finished run of the default recipe here, and "
                                    f"the shipped checkpoint cannot stand in ({checkpoint.shipped_fit()[1]}); "
                                    "name a run (`taxolens runs` lists them)")
        info = runs.load_run(run_dir)
        dev = checkpoint.resolve_device(device or info.config.device)
        key = (str(info.path), runs.checkpoint_stamp(info.path), str(dev))
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

    def predict(self, image: str | Path | Image.Image, top_k: int = 5, full: bool = False,
                progress: Progress | None = None) -> Prediction:
        """The top_k leaves, the best one's hypernym chain(s) and every category. Unless `full`, a
        predictor with a shortlist ranks only the leaves a bf16 pass puts in its top `shortlist`,
        each scored in fp32 as full scoring would: the same answers at a fraction of the cost.
        progress(fraction, message): the leaves' questions take most of the time."""
        top_k = whole_number(top_k, "top_k", 1)
        report = progress or (lambda f, m: None)
        if not isinstance(image, Image.Image):
            image = load_image(image)
        image = image.convert("RGB")
        ds = self.dataset
        report(0.0, "encoding the image")
        feats = self.encode(image)
        leaf_texts = [question_text(ds.concepts[c].label) for c in self.concepts]
        keep = max(self.shortlist, top_k)
        if full or not self.shortlist or keep >= len(self.concepts):
            shortlist, candidates = 0, list(range(len(self.concepts)))
        else:
            report(0.02, f"ranking {len(leaf_texts)} leaves in bf16")
            quick = self.quick_p_yes(feats, leaf_texts)
            candidates = sorted(range(len(quick)), key=lambda i: (-quick[i], self.concepts[i]))[:keep]
            shortlist = keep
        leaf_p = self._p_yes(feats, [leaf_texts[i] for i in candidates],
                             lambda f, m: report(0.05 + 0.8 * f, f"leaves: {m}"))
        ranked = sorted(((self.concepts[i], p) for i, p in zip(candidates, leaf_p)), key=lambda cp: (-cp[1], cp[0]))
        best = ranked[0][0]

        notes = []
        synset = ds.concepts[best].synset
        chains_syn = taxonomy.hypernym_chains(synset) if synset else []
        if not synset:
            notes.append(f"concept '{best}' has no WordNet synset, so no hypernym chain")
        # The chain's leaf is the best guess itself: shown under its own label with the P(yes) it was
        # ranked by, not asked again under WordNet's name (pig is hog.n.03, moose elk.n.01: 80 of the
        # default set's 385 concepts), which read as another animal with another probability.
        leaf = chains_syn[0][0] if chains_syn else None          # every chain starts at the leaf's synset
        nodes = sorted({s for chain in chains_syn for s in chain} - {leaf})
        node_label = {s: taxonomy.display_name(s) for s in nodes}
        cat_texts = [question_text(ds.categories[k].label) for k in self.categories]
        node_texts = [question_text(node_label[s]) for s in nodes]
        scores = self._p_yes(feats, cat_texts + node_texts,
                             lambda f, m: report(0.85 + 0.15 * f, f"categories and chain: {m}"))
        cat_p = dict(zip(self.categories, scores[:len(cat_texts)]))
        node_p = dict(zip(nodes, scores[len(cat_texts):]))
        if leaf is not None:
            node_label[leaf], node_p[leaf] = ds.concepts[best].label, ranked[0][1]

        chains = [[ChainNode(s, node_label[s], node_p[s], *self._category_of(s, node_label[s])) for s in chain]
                  for chain in chains_syn]
        best_cats = set(ds.concepts[best].categories)
        categories = [{"category": k, "label": ds.categories[k].label, "p_yes": cat_p[k],
                       "of_best": k in best_cats}
                      for k in sorted(self.categories, key=lambda k: (-cat_p[k], k))]
        leaves = [{"concept": c, "label": ds.concepts[c].label, "p_yes": p} for c, p in ranked[:top_k]]
        return Prediction(self.info.run_id, best, leaves, chains, categories, notes, shortlist,
                          self.reads(feats, top_k))

    @torch.no_grad()
    def reads(self, feats: torch.Tensor, top_k: int = 5) -> list[dict]:
        """What a probe-posterior projector is given for the image: its probe's top_k concepts and
        their share of the posterior; [] for a projector that reads the features."""
        probe = self.vlm.projector.posterior
        if probe is None:
            return []
        column = rundata.posterior_columns(self.dataset)
        pooled = pool_tokens(feats.to(self.device), self.vlm.n_tokens)      # what the projector is given
        share = probe(pooled).reshape(-1, len(column)).mean(0).cpu()
        top = sorted(column, key=lambda c: (-float(share[column[c]]), c))[:top_k]
        return [{"concept": c, "label": self.dataset.concepts[c].label, "share": float(share[column[c]])}
                for c in top]

    def _p_yes(self, feats: torch.Tensor, texts: list[str], progress: Progress | None = None) -> list[float]:
        return [p for p, _ in scoring.score_image(self.vlm, feats, texts, progress)]

    def quick_p_yes(self, feats: torch.Tensor, texts: list[str]) -> list[float]:
        """P(yes) from the bf16 copy of the LM (within ~0.1 of fp32): for ranking, not for showing."""
        if self._quick_vlm is None:
            self._quick_vlm = self.vlm.bf16_twin()
        return [p for p, _ in scoring.score_image(self._quick_vlm, feats, texts)]

    # ------------------------------------------------------------ beyond the vocabulary

    def features(self, image: str | Path | Image.Image | torch.Tensor) -> torch.Tensor:
        """(1, N, D) encoder features of an image (a path, a PIL image or features already),
        remembered for the last few images so asking, walking and the lens encode it once."""
        if isinstance(image, torch.Tensor):
            return image if image.dim() == 3 else image.unsqueeze(0)
        if not isinstance(image, Image.Image):
            image = load_image(image)
        image = image.convert("RGB")
        import hashlib
        key = hashlib.sha1(f"{image.size}".encode() + image.tobytes()).hexdigest()
        memo = self._features
        if key not in memo:
            if len(memo) >= 8:
                memo.pop(next(iter(memo)))
            memo[key] = self.encode(image)
        return memo[key]

    def ask(self, image, questions: Sequence[str], progress: Progress | None = None) -> list[Answer]:
        """P(yes) and the candidate mass of any yes/no questions about the image (one LM pass over
        the image's prefix, shared by all of them). One question may be passed alone, as a string.
        Each costs about what one leaf of predict() does (~10-20 ms on 2 CPU cores); progress(fraction,
        message) reports through a long list."""
        if isinstance(questions, str):       # not one question per character
            questions = [questions]
        texts = [as_question(q) for q in questions]
        if not texts:
            return []
        pairs = scoring.score_image(self.vlm, self.features(image), texts, progress=progress)
        return [Answer(t, float(p), float(m)) for t, (p, m) in zip(texts, pairs)]

    def open_chain(self, image, **kwargs) -> OpenChain:
        """The finished walk down WordNet (see the module doc and open_chain_steps)."""
        last = None
        for last in self.open_chain_steps(image, **kwargs):
            pass
        return last

    def open_chain_steps(self, image, threshold: float = 0.5, beam: int = 2, budget: int = 300,
                         max_children: int = 64, start: str = "entity.n.01", max_depth: int = 25,
                         contrast: bool = True) -> Iterator[OpenChain]:
        """Walk WordNet down from `start` (a noun synset), yielding the walk so far after each scored
        node (the last one has done=True). See the module doc. Bad arguments raise at the call, not
        at the first step."""
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        for name, value in (("beam", beam), ("budget", budget), ("max_children", max_children)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        start = taxonomy.canonical_name(start)
        if taxonomy.synset(start).pos() != "n":    # the questions ask for things in the image
            raise ValueError(f"start must be a noun synset (like 'animal.n.01'), got {start!r}")
        return self._open_chain_steps(self.features(image), threshold, beam, budget, max_children, start,
                                      max_depth, contrast)

    def _open_chain_steps(self, feats, threshold, beam, budget, max_children, start, max_depth,
                          contrast) -> Iterator[OpenChain]:
        nodes = {start: OpenNode(start, taxonomy.display_name(start), None, None, None, None, 0, True,
                                 *self._category_of(start, taxonomy.display_name(start)))}
        walk = OpenChain(start, threshold, beam, budget, contrast, nodes, [], 0)
        frontier, depth, undecided = [start], 0, 0
        while frontier and not walk.stopped:
            level: list[str] = []
            for parent in frontier:
                children = [c for c in taxonomy.hyponyms(parent) if c not in nodes]
                if len(children) > max_children:       # the most used words first (SemCor counts)
                    children = sorted(children, key=lambda c: (-taxonomy.usage(c), c))[:max_children]
                children = children[:budget - walk.questions]
                if not children:
                    continue
                labels = [taxonomy.display_name(c) for c in children]
                answers = self.ask(feats, labels)
                blank = self._blank_answers([a.question for a in answers]) if contrast else [None] * len(answers)
                walk.questions += len(children)
                for child, label, ans, base in zip(children, labels, answers, blank):
                    confident = ans.p_yes >= threshold and (base is None or ans.p_yes > base)
                    undecided += ans.undecided
                    nodes[child] = OpenNode(child, label, ans.p_yes, ans.mass, base, parent, depth + 1, confident,
                                            *self._category_of(child, label))
                    if confident:
                        level.append(child)
                walk.chains = _open_chains(nodes, start, beam)
                if walk.questions >= budget:
                    walk.stopped = f"the budget of {budget} questions is spent"
                yield walk.snapshot()
                if walk.stopped:
                    break
            depth += 1
            frontier = sorted(level, key=lambda c: (-nodes[c].lift, -nodes[c].p_yes, c))[:beam]
            if not walk.stopped and not frontier:
                walk.stopped = "no hyponym in the beam is confident"
            elif not walk.stopped and depth >= max_depth:
                walk.stopped = f"the depth limit of {max_depth} levels is reached"
        walk.stopped = walk.stopped or "no hyponyms left to ask about"
        walk.done = True
        asked = walk.questions
        if asked and undecided / asked > 0.5:
            walk.notes.append(f"{undecided} of {asked} answers were undecided (P(yes) + P(no) < 0.5): the LM "
                              f"mostly does not answer yes/no about this image")
        walk.chains = _open_chains(nodes, start, beam)
        abstract = "abstraction.n.06"
        if walk.chains and start != abstract and any(n.synset == abstract for n in walk.chains[0]):
            walk.notes.append("The best chain runs through abstraction: pictures show physical things, so the "
                              "image gave no evidence the walk could follow (often a checkpoint that has not "
                              "learned, or a yes-biased LM). Starting at physical entity, organism or artifact "
                              "skips the abstract half of WordNet.")
        if not walk.chains:
            walk.notes.append(f"no hyponym of {taxonomy.display_name(start)} reached P(yes) ≥ {threshold:.2f}"
                              + (" with more P(yes) than for a blank image" if contrast else ""))
        yield walk.snapshot()

    @torch.no_grad()
    def _blank_answers(self, questions: list[str]) -> list[float]:
        """P(yes) of questions about a blank white image (remembered per question): the answer the
        model gives whatever the picture, which an image must beat for its node to be confident."""
        memo = self._blank
        todo = [q for q in dict.fromkeys(questions) if q not in memo]
        if todo:
            if self._blank_feats is None:
                self._blank_feats = self.encode(Image.new("RGB", (224, 224), "white"))
            for q, (p, _) in zip(todo, scoring.score_image(self.vlm, self._blank_feats, todo)):
                memo[q] = float(p)
        return [memo[q] for q in questions]

    def lens(self, image, top: int = 10) -> dict:
        """Nearest tokens per image token and the logit lens of one image (core.lens.Lens.image);
        top: how many tokens each lists (1 to 1000)."""
        top = whole_number(top, "top", 1, 1000)
        from core.lens import Lens
        if self._lens is None:
            self._lens = Lens(self.vlm)
        return self._lens.image(self.features(image), top=top)


def _open_chains(nodes: dict[str, OpenNode], start: str, beam: int) -> list[list[ChainNode]]:
    """Paths from the deepest confident nodes (those without a confident child yet) up to the first
    level below the start node, best first: deeper, then as the beam ranks (the image's lift over a
    blank image, then P(yes)); at most beam + 1."""
    confident = [n for n in nodes.values() if n.confident and n.synset != start]
    has_confident_child = {n.parent for n in confident}
    ends = sorted((n for n in confident if n.synset not in has_confident_child),
                  key=lambda n: (-n.depth, -n.lift, -n.p_yes, n.synset))[:beam + 1]
    chains = []
    for end in ends:
        chain, node = [], end
        while node is not None and node.synset != start:
            chain.append(ChainNode(node.synset, node.label, float(node.p_yes), node.is_category, node.category))
            node = nodes.get(node.parent)
        chains.append(chain)
    return chains
