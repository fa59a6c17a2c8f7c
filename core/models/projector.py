"""The projector: the only trained part. Maps pooled image tokens (encoder dim D) to LM embeddings (H).

    [Dropout(p), training only, TrainConfig.dropout] after the LayerNorm, then
    linear         LayerNorm(D) -> Linear(D, H)
    gelu-mlp       LayerNorm(D) -> Linear(D, H) -> GELU -> Linear(H, H)      (Prismatic / LLaVA-1.5 style)
    gelu-mlp-norm  gelu-mlp, each output token rescaled to `target_norm` (the LM's median word norm)

Two sizes are options (TrainConfig): `hidden`, the GELU MLP's inner width (default H), and `tokens`
= m, the LM tokens made from each pooled image token: the last Linear has m*H outputs, read as m
tokens (ClipCap's prefix from one global feature), so k pooled tokens reach the LM as k*m.

Why the -norm variant exists: trained without any norm constraint (the paper's recipe, weight decay
0), the default checkpoint's image tokens grew to ~57x the norm of word embeddings
(docs/insight-report.md), all in one shared direction. Holding them at the word norm was the obvious
test, and it did worse: 100 concepts, default recipe, seed 0, 6 epochs on CPU -- validation leaf
accuracy 0.70 vs 0.76, every leaf ranked on 40 validation images top-5 0.075 vs 0.225 (median rank
26 vs 16 of 100), test per-concept leaf F1 0.67 vs 0.76. The large norm is how the projector makes
itself heard, not (at this scale) what stops it grounding. Kept as an option for that comparison.

`init_as_probe` (TrainConfig.projector_init = "probe") starts the GELU MLP's first layer as a
concept classifier: a softmax regression from the projector's normalised input to the concept each
TRAIN image is shown as (leaf labels only; no hypernym is ever a class) fills the first C hidden
units, so the hidden layer starts from what a linear probe on the same features generalises with.

`classes` = C > 0 (TrainConfig.projector_input = "posterior") puts a frozen linear concept probe in
front: the pooled feature, standardised with the TRAIN images' mean and std, through a softmax
regression to C concepts, and the projector proper maps that posterior (C wide) instead of the
feature. The probe is fitted by core.train before training (core.image_probe's recipe) and lives in
the projector's state as buffers, so checkpoints carry it and the optimizer never sees it; training
feeds out-of-fold posteriors past it (`posteriors=True`) so it learns from inputs as unsure as
held-out images give. Measured at full size (385 concepts, 6 epochs; docs/training.md, "The probe-posterior
input"): as a bench arm on seeds 0 and 1, validation leaf accuracy 0.869 / 0.879 against the feature
input's 0.863 / 0.847; trained by core.train on seed 0, test leaf accuracy 0.877 against 0.857, and
with the leaf stage every leaf ranked on 40 test images top-5 0.525 against 0.40 (the shipped recipe
until augmented views joined it).

`keep_features` (TrainConfig.projector_input = "features+posterior", with `classes`): the projector
reads the feature and the probe's posterior side by side (D + C wide), each through a LayerNorm of
its own (SplitNorm; one LayerNorm over both scales a sure posterior down by the feature's spread).
Why: a posterior names the concept and drops what the image looks like, which unseen hypernyms may
need (docs/training.md, "The feature and the posterior together").

`topk` = K > 0 (TrainConfig.projector_topk; posterior inputs only) adds, after the MLP's m tokens, one
LM token for each of the posterior's K most likely concepts, in rank order: a trained row per concept
(`concept_rows`, started by core.train at the mean word embedding of the concept's name) plus a
trained linear map of its share (p, log p / 10). Why: the MLP mixes a spread posterior into one
vector that the LM reads as none of its candidates (docs/training.md, "Calibrating the every-leaf
ranking": the model loses the true leaf where the probe's posterior is spread); as tokens of their own, each
candidate stays a concept the LM can match a question against, with its share beside it. Measured
(docs/training.md, "Top-k concept tokens"; K = 5): on 100 concepts (`python -m bench.leaf_ceiling
--arms posterior,posterior-topk`) validation leaf accuracy 0.893 against 0.866 on seed 0 and 0.870
against 0.896 on seed 1, hypernyms a little up on both; at full size with the shipped recipe (seed 0)
test leaf accuracy level (0.899 against 0.908, p = 0.29) and hypernym accuracy up (0.923 against
0.909, p = 0.02); on 80 concepts (3 seeds) unseen hypernym macro-F1 0.541 against 0.572 at r = 0.5
and 0.479 against 0.498 at r = 1: the names do not carry more to unseen hypernyms. An option, not
the default.

The LayerNorm in front (as in the InternVL and Qwen2-VL connectors) makes the input scale the same
for every encoder, so the initial output scale can be set without seeing data: after the default
init, the last Linear is rescaled so that the image tokens start with the median norm of the LM's
real token embeddings (`target_norm`, measured on LanguageModel.embed, Gemma's sqrt(d) included).
Image tokens then start where text tokens live instead of drowning or vanishing in the residual stream.
"""
from __future__ import annotations

import torch
from torch import nn

KINDS = ("linear", "gelu-mlp", "gelu-mlp-norm")


class ConceptPosterior(nn.Module):
    """A frozen softmax regression from features (D) to C concepts, standardised first: buffers only
    (a checkpoint carries them; an optimizer never sees them). Zero until `set` fills it."""

    def __init__(self, in_dim: int, classes: int):
        super().__init__()
        self.register_buffer("weight", torch.zeros(classes, in_dim))
        self.register_buffer("bias", torch.zeros(classes))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    @torch.no_grad()
    def set(self, linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
        if tuple(linear.weight.shape) != tuple(self.weight.shape):
            raise ValueError(f"a probe of shape {tuple(linear.weight.shape)} does not fit the projector's "
                             f"{tuple(self.weight.shape)} concept posterior")
        for name, value in (("weight", linear.weight), ("bias", linear.bias), ("mean", mean), ("std", std)):
            getattr(self, name).copy_(value.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.float() - self.mean) / self.std
        return torch.nn.functional.linear(z, self.weight.float(), self.bias.float()).softmax(-1)


class SplitNorm(nn.Module):
    """A LayerNorm over the first `split` columns and another over the rest, concatenated again."""

    def __init__(self, split: int, width: int):
        super().__init__()
        self.split = split
        self.first, self.second = nn.LayerNorm(split), nn.LayerNorm(width - split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.first(x[..., :self.split]), self.second(x[..., self.split:])], dim=-1)


class Projector(nn.Module):
    def __init__(self, kind: str, in_dim: int, out_dim: int, target_norm: float, seed: int = 0,
                 dropout: float = 0.0, hidden: int | None = None, tokens: int = 1, classes: int = 0,
                 topk: int = 0, keep_features: bool = False):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"projector must be one of {', '.join(KINDS)}, got {kind!r}")
        if tokens < 1 or (hidden is not None and hidden < 1) or classes < 0:
            raise ValueError(f"projector hidden width, tokens and classes must be positive, got "
                             f"{hidden}, {tokens} and {classes}")
        self.kind, self.in_dim, self.out_dim = kind, in_dim, out_dim
        self.hidden, self.tokens = int(hidden or out_dim), int(tokens)
        self.target_norm = float(target_norm)
        self.classes, self.topk = int(classes), int(topk)
        self.keep_features = bool(keep_features) and self.classes > 0
        if self.topk and not 0 < self.topk <= self.classes:
            raise ValueError(f"top-k concept tokens need a projector reading concept posteriors of at least k "
                             f"concepts, got k = {self.topk} and {self.classes} concepts")
        # what the LayerNorm and first Linear read
        width_in = in_dim + self.classes if self.keep_features else self.classes or in_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.posterior = ConceptPosterior(in_dim, self.classes) if self.classes else None
            self.norm = SplitNorm(in_dim, width_in) if self.keep_features else nn.LayerNorm(width_in)
            self.drop = nn.Dropout(dropout)     # no weights: checkpoints are the same with or without
            width = out_dim * self.tokens
            if kind == "linear":
                self.net = nn.Sequential(nn.Linear(width_in, width))
            else:
                self.net = nn.Sequential(nn.Linear(width_in, self.hidden), nn.GELU(), nn.Linear(self.hidden, width))
            # (for posteriors too a Gaussian sample: the LayerNorm sees the same scale either way)
            self._scale_output(target_norm, torch.randn(512, width_in))
            if self.topk:       # random rows of the word norm until set_concept_rows (core.train) names them
                self.concept_rows = nn.Parameter(torch.randn(self.classes, out_dim) * (target_norm / out_dim ** 0.5))
                self.share = nn.Linear(2, out_dim)

    @torch.no_grad()
    def _scale_output(self, target_norm: float, probe: torch.Tensor) -> None:
        """Rescale the last Linear so the MLP's tokens for `probe` (inputs as the LayerNorm reads
        them: features, or posteriors for a posterior projector) have `target_norm` on average."""
        last = self.net[-1]
        last.bias.zero_()
        mode, _ = self.training, self.eval()
        norm = self._finish(self._project(probe)).norm(dim=-1).mean()
        self.train(mode)
        last.weight.mul_(target_norm / float(norm))

    def init_as_probe(self, tokens: torch.Tensor, labels: torch.Tensor, n_classes: int, seed: int = 0,
                      steps: int = 300, lr: float = 1e-3) -> float:
        """Fit a softmax regression from tokens (N, D) to labels (N,) in [0, n_classes) on this
        projector's normalised input, copy it into the first n_classes hidden units and rescale
        the output to the word norm on these tokens; returns the regression's training accuracy."""
        if self.classes:
            raise ValueError("a projector reading concept posteriors cannot also start as a probe")
        if self.kind == "linear":
            raise ValueError("a probe-initialised projector needs a hidden layer (gelu-mlp or gelu-mlp-norm)")
        if n_classes > self.hidden:
            raise ValueError(f"{n_classes} concepts do not fit the projector's {self.hidden} hidden units; "
                             f"raise projector_hidden to at least {n_classes}")
        first = self.net[0]
        with torch.no_grad():
            z = self.norm(tokens.to(first.weight.device, torch.float32))
        labels = labels.to(z.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            probe = nn.Linear(self.in_dim, n_classes).to(z.device)
        opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=0.0)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(probe(z), labels).backward()
            opt.step()
        with torch.no_grad():
            first.weight[:n_classes] = probe.weight
            first.bias[:n_classes] = probe.bias
            # the word norm on the images it will see (the fitted rows make them unlike random input)
            self._scale_output(self.target_norm, tokens[:1024].to(z.device, torch.float32))
            return float((probe(z).argmax(-1) == labels).float().mean())

    @torch.no_grad()
    def set_concept_rows(self, rows: torch.Tensor) -> None:
        """Start the top-k tokens' concept rows at `rows` (C, H), e.g. the names' word embeddings."""
        if not self.topk or tuple(rows.shape) != tuple(self.concept_rows.shape):
            raise ValueError(f"concept rows of shape {tuple(rows.shape)} do not fit this projector "
                             f"({'no top-k tokens' if not self.topk else tuple(self.concept_rows.shape)})")
        self.concept_rows.copy_(rows)

    def forward(self, tokens: torch.Tensor, posteriors: bool = False) -> torch.Tensor:
        """(..., N, D) -> (..., N*(m+k), H). posteriors: the tokens are already what the probe would
        make of them -- concept posteriors (..., N, C), or with keep_features the feature and its
        posterior (..., N, D + C) -- as training's out-of-fold inputs are; only with `classes`."""
        if posteriors:
            if self.posterior is None:
                raise ValueError("posterior inputs need a projector that reads concept posteriors (classes > 0)")
        elif self.posterior is not None:
            tokens = self.with_posterior(tokens)
        out = self._project(tokens)
        if self.topk:
            out = torch.cat([out, self.concept_tokens(tokens[..., -self.classes:]).to(out.dtype)], dim=-2)
        return self._finish(out)

    def with_posterior(self, features: torch.Tensor) -> torch.Tensor:
        """What this projector's MLP reads for `features` (..., N, D): the probe's posterior, after
        the feature itself with keep_features."""
        posterior = self.posterior(features)
        return torch.cat([features.float(), posterior], dim=-1) if self.keep_features else posterior

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        """The MLP's m tokens per input token: (..., N, width_in) -> (..., N*m, H)."""
        out = self.net(self.drop(self.norm(tokens)))
        if self.tokens > 1:
            out = out.reshape(*out.shape[:-2], out.shape[-2] * self.tokens, self.out_dim)
        return out

    def concept_tokens(self, posterior: torch.Tensor) -> torch.Tensor:
        """(..., N, C) posteriors -> (..., N*k, H): each input token's k most likely concepts in rank
        order, as the concept's row plus the map of its share."""
        p, idx = posterior.float().topk(self.topk, dim=-1)                          # (..., N, k)
        rows = self.concept_rows[idx] + self.share(torch.stack([p, p.clamp_min(1e-6).log() / 10], dim=-1))
        return rows.reshape(*rows.shape[:-3], rows.shape[-3] * self.topk, self.out_dim)

    def _finish(self, out: torch.Tensor) -> torch.Tensor:
        """gelu-mlp-norm: every output token rescaled to the word norm; the other kinds as they are."""
        if self.kind == "gelu-mlp-norm":
            out = out * (self.target_norm / out.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return out
