"""A tiny stand-in for the real VLM and feature cache, for fast unit tests of training, resuming and
evaluation. It has the same surface core.train / core.evaluate use (projector, n_tokens, encoder,
loss, score, projector_state, load_projector_state) and can genuinely learn: the
answer logit is <projected image, frozen bag-of-words text vector>.

`install(monkeypatch)` swaps in the tiny in-memory dataset, this VLM and the fake feature cache.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.config import PROJECTOR_HIDDEN
from core.models.vlm import listwise_loss

DIM, HIDDEN, VOCAB = 6, 8, 64


@dataclass
class Scores:
    p_yes: torch.Tensor
    mass: torch.Tensor

    def pairs(self):
        return list(zip(self.p_yes.tolist(), self.mass.tolist()))


class FakeEncoder(nn.Module):
    id = "fake-encoder"
    dim = DIM
    transform_id = "fake"

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(3, DIM, generator=torch.Generator().manual_seed(5)),
                                   requires_grad=False)

    def preprocess(self, image):
        return torch.tensor(image.convert("RGB").resize((4, 4)).getdata(), dtype=torch.float32).mean(0) / 255

    def forward(self, x):                        # (B, 3) -> (B, 4, D)
        return (x @ self.weight).unsqueeze(1).expand(-1, 4, -1)


class FakeVLM(nn.Module):
    instances: list["FakeVLM"] = []
    joint_calls: list[int] = []                 # how many runs each training step stepped together

    def __init__(self, cfg, device="cpu", lm_seed_offset=0):
        super().__init__()
        gen = torch.Generator().manual_seed(1000 + cfg.seed + lm_seed_offset + (7 if cfg.lm_init == "random" else 0))
        self.encoder = FakeEncoder()
        self.words = nn.Embedding(VOCAB, HIDDEN)
        with torch.no_grad():
            self.words.weight.copy_(torch.randn(VOCAB, HIDDEN, generator=gen))
        self.words.weight.requires_grad_(False)
        torch.manual_seed(cfg.seed)
        self.projector = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN))
        # A real Projector for the probe initialisation (its method), the runs after one, and a
        # width other than the default (the default config keeps this small stand-in).
        if cfg.projector_init == "probe" or cfg.projector_hidden not in (None, PROJECTOR_HIDDEN):
            from core.models.projector import Projector
            self.projector = Projector(cfg.projector, DIM, HIDDEN, 1.0, seed=cfg.seed, hidden=cfg.projector_hidden)
        self.n_tokens = cfg.image_tokens
        self.loss_calls = 0
        self.ranked_seen: list = []               # the ranked groups of each loss call
        self.rank_targets_seen: list = []         # their target distributions (rank_soft), per call
        self.ranked_inputs_seen: list = []        # and the input (first token) of each group's image
        self.scored: list = []                    # per score call, each image's (questions, P(yes))
        self.named_seen: list = []                # (named pairs, owner, texts, answers, weight) of each call
        self.lm_in_bf16 = False
        self.to(device)
        FakeVLM.instances.append(self)

    def _text(self, texts):
        ids = [[zlib.crc32(w.encode()) % VOCAB for w in t.lower().strip("?").split()] for t in texts]
        return torch.stack([self.words.weight[i].mean(0) for i in ids])

    def _logits(self, features, texts):
        img = self.projector(features.float().mean(1))
        return (img * self._text(texts)).sum(-1)

    def prefix(self, features):                  # (B, N, D) -> (B, 1, H): the image token
        return self.projector(features.float().mean(1)).unsqueeze(1)

    def loss(self, features, texts, answers, owner=None, ranked=(), named=(), name_weight=0.0, rank_targets=()):
        self.loss_calls += 1
        self.ranked_seen.append([(int(row), list(group)) for row, group in ranked])
        self.rank_targets_seen.append([t.tolist() for t in rank_targets])
        self.ranked_inputs_seen.append([features[int(row), 0].detach().clone() for row, _ in ranked])
        self.named_seen.append(([(int(row), text) for row, text in named],
                                None if owner is None else torch.as_tensor(owner).tolist(),
                                list(texts), [bool(a) for a in answers], name_weight))
        images = features
        if owner is not None:
            features = features[torch.as_tensor(owner)]
        target = torch.tensor([float(a) for a in answers])
        loss = F.binary_cross_entropy_with_logits(self._logits(features, texts), target)
        if ranked:                                # the real VLM's listwise term, on the fake's margins
            margins = [self._logits(images[[row] * len(group)], group) for row, group in ranked]
            loss = loss + listwise_loss(margins, rank_targets)
        return loss

    @staticmethod
    def joint_loss(vlms, batches):              # the real one runs one LM pass; the fake has no LM to share
        FakeVLM.joint_calls.append(len(vlms))
        return [v.loss(b.features, b.texts, b.answers, owner=b.owner, ranked=b.ranked, named=b.named,
                       name_weight=b.name_weight, rank_targets=b.rank_targets) for v, b in zip(vlms, batches)]

    def hold_lm_in_bf16(self):                  # recorded only: the fake's "LM" is one embedding table
        self.lm_in_bf16 = True

    @torch.no_grad()
    def score(self, features, texts_per_image, progress=None, posteriors=False):
        out = []
        for f, texts in zip(features, texts_per_image):
            p = torch.sigmoid(self._logits(f.unsqueeze(0).expand(len(texts), -1, -1), texts))
            out.append(Scores(p, torch.full_like(p, 0.9)))
        self.scored.append([(list(t), s.p_yes.tolist()) for t, s in zip(texts_per_image, out)])
        return out

    def projector_state(self):
        return {k: v.detach().cpu().contiguous() for k, v in self.projector.state_dict().items()}

    def load_projector_state(self, state):
        own = self.projector.state_dict()
        if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
            raise ValueError("projector weights do not fit")
        self.projector.load_state_dict(state)


class FakePosteriorProjector(nn.Module):
    """The fake's projector for projector_input = "posterior": the real frozen concept probe in front,
    then the fake's small MLP on the C-wide posterior (training hands posteriors past the probe); no
    top-k concept tokens. keep_features ("features+posterior"): the MLP reads the feature and then
    its posterior (DIM + C wide)."""
    topk = 0

    def __init__(self, classes: int, keep_features: bool = False):
        super().__init__()
        from core.models.projector import ConceptPosterior
        self.keep_features = keep_features
        self.posterior = ConceptPosterior(DIM, classes)
        width = classes + (DIM if keep_features else 0)
        self.net = nn.Sequential(nn.Linear(width, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN))

    def forward(self, x):               # features (B, DIM) through the probe; training's rows as they are
        if x.shape[-1] == DIM:
            x = torch.cat([x, self.posterior(x)], -1) if self.keep_features else self.posterior(x)
        return self.net(x)


def fake_use_posterior_input(real):
    """registry.use_posterior_input for FakeVLMs; a real VLM (tests build tiny ones) gets the real one."""
    def use(vlm, cfg, classes):
        if not isinstance(vlm, FakeVLM):
            return real(vlm, cfg, classes)
        if classes == DIM:                      # the fake tells features from posteriors by their width
            raise ValueError(f"the fake's posterior input needs a class count other than {DIM}")
        vlm.projector = FakePosteriorProjector(classes, cfg.projector_input == "features+posterior")
    return use


class FakeCache:
    """Features that depend on the concept (so there is something to learn) plus per-image noise."""
    calls = 0

    def __init__(self, encoder):
        self.encoder = encoder

    def get(self, items, progress=None, pool=None):
        FakeCache.calls += 1
        rows = []
        for im in items:
            g = torch.Generator().manual_seed(zlib.crc32(im.concept.encode()))
            base = torch.randn(DIM, generator=g)
            noise = torch.randn(DIM, generator=torch.Generator().manual_seed(zlib.crc32(im.id.encode())))
            rows.append((base + 0.3 * noise).expand(pool or 4, -1))
        return torch.stack(rows)


def fake_view_items(items, n, root=None, progress=None, line_art=0):
    """core.augment.view_items without image files (the tiny dataset has none): FakeCache gives each
    view features of its own from its id."""
    from core import augment
    return [[augment.ViewItem(f"{im.id}~{v}", im.id, v, Path(f"/nonexistent/views/{im.id}/{v}.png"), im.concept)
             for v in range(1, n + line_art + 1)] for im in items]


def install(monkeypatch, images_per_concept: int = 5):
    from core import augment, features
    from core.data import datasets
    from core.models import registry
    from tiny_concepts import tiny_dataset

    FakeVLM.instances = []
    FakeVLM.joint_calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name="tiny": tiny_dataset(images_per_concept, name))
    monkeypatch.setattr(registry, "create_vlm", lambda cfg, device="cpu": FakeVLM(cfg, device))
    monkeypatch.setattr(registry, "vlm_sharing_frozen", lambda cfg, other: FakeVLM(cfg))
    monkeypatch.setattr(registry, "use_posterior_input", fake_use_posterior_input(registry.use_posterior_input))
    monkeypatch.setattr(features, "FeatureCache", FakeCache)
    monkeypatch.setattr(augment, "view_items", fake_view_items)
