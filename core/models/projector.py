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


class Projector(nn.Module):
    def __init__(self, kind: str, in_dim: int, out_dim: int, target_norm: float, seed: int = 0,
                 dropout: float = 0.0, hidden: int | None = None, tokens: int = 1):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"projector must be one of {', '.join(KINDS)}, got {kind!r}")
        if tokens < 1 or (hidden is not None and hidden < 1):
            raise ValueError(f"projector hidden width and tokens must be positive, got {hidden} and {tokens}")
        self.kind, self.in_dim, self.out_dim = kind, in_dim, out_dim
        self.hidden, self.tokens = int(hidden or out_dim), int(tokens)
        self.target_norm = float(target_norm)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.norm = nn.LayerNorm(in_dim)
            self.drop = nn.Dropout(dropout)     # no weights: checkpoints are the same with or without
            width = out_dim * self.tokens
            if kind == "linear":
                self.net = nn.Sequential(nn.Linear(in_dim, width))
            else:
                self.net = nn.Sequential(nn.Linear(in_dim, self.hidden), nn.GELU(), nn.Linear(self.hidden, width))
            self._scale_output(target_norm, torch.randn(512, in_dim))

    @torch.no_grad()
    def _scale_output(self, target_norm: float, probe: torch.Tensor) -> None:
        last = self.net[-1]
        last.bias.zero_()
        mode, _ = self.training, self.eval()
        norm = self.forward(probe).norm(dim=-1).mean()
        self.train(mode)
        last.weight.mul_(target_norm / float(norm))

    def init_as_probe(self, tokens: torch.Tensor, labels: torch.Tensor, n_classes: int, seed: int = 0,
                      steps: int = 300, lr: float = 1e-3) -> float:
        """Fit a softmax regression from tokens (N, D) to labels (N,) in [0, n_classes) on this
        projector's normalised input, copy it into the first n_classes hidden units and rescale
        the output to the word norm on these tokens; returns the regression's training accuracy."""
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

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., N, D) -> (..., N*m, H)."""
        out = self.net(self.drop(self.norm(tokens)))
        if self.tokens > 1:
            out = out.reshape(*out.shape[:-2], out.shape[-2] * self.tokens, self.out_dim)
        if self.kind == "gelu-mlp-norm":
            out = out * (self.target_norm / out.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return out
