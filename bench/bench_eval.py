"""Evaluation speed: questions/s of TaxoLens's scoring vs the straightforward loop, same questions.

TaxoLens (core.scoring → VLM.score): encoder features from the on-disk cache, each image's prefix
run through the LM once and its KV cache shared by all its questions, many questions per forward,
logits only at the answer position.

Straightforward loop: for every question, load and encode the image again, run the whole prompt
through the LM with logits for every position and the full vocabulary, then compare P(" Yes") and
P(" No") at the last position. Both must give the same answers (the max |Δ P(yes)| is printed).
"""
from __future__ import annotations

import torch

from bench.common import timed
from core import features, scoring, train
from core.images import load_image
from core.models.encoders import pool_tokens
from core.models.vlm import autocast


@torch.no_grad()
def naive_p_yes(vlm, item, text: str) -> tuple[float, float]:
    """One question, nothing reused: encode the image, full-sequence, full-vocabulary logits."""
    enc = vlm.encoder
    grid = enc(enc.preprocess(load_image(item.path)).unsqueeze(0))
    grid = grid.to(torch.float16).float()             # the feature cache stores fp16 grids
    with autocast(vlm.device):
        prefix = vlm.prefix_embeds(pool_tokens(grid, vlm.n_tokens))
        ids, _ = vlm.suffix_ids([text])
        embeds = torch.cat([prefix, vlm.lm.embed(ids).to(prefix.dtype)], dim=1)
        logits = vlm.lm.model(inputs_embeds=embeds).logits      # (1, T, V): every position
    logp = logits[0, -1].float().log_softmax(-1)
    yes = torch.logsumexp(logp[vlm.lm.yes_ids], 0)
    no = torch.logsumexp(logp[vlm.lm.no_ids], 0)
    return float(torch.sigmoid(yes - no)), float(yes.exp() + no.exp())


def run(vlm, data, items, questions, device) -> dict:
    feats, row_of = features.image_features(vlm, items)   # warm the cache: training-time reality
    by_id = {im.id: im for im in items}
    ours, t_ours = timed(lambda: scoring.score(vlm, feats, row_of, questions, data.deprivation, "test"), device)
    # The cache read is part of our path: time it too (features of all images, from disk).
    (_, _), t_load = timed(lambda: features.image_features(vlm, items), device)
    naive, t_naive = timed(lambda: [naive_p_yes(vlm, by_id[q.image_id], q.text) for q in questions], device)
    diff = max(abs(r["p_yes"] - p) for r, (p, _) in zip(ours, naive))
    agree = sum(r["pred"] == (p > 0.5) for r, (p, _) in zip(ours, naive)) / len(questions)
    n = len(questions)
    return {"questions": n, "images": len(items),
            "ours_q_per_s": n / (t_ours + t_load), "naive_q_per_s": n / t_naive,
            "speedup": t_naive / (t_ours + t_load), "ours_seconds": t_ours + t_load,
            "naive_seconds": t_naive, "max_abs_diff_p_yes": diff, "same_answers": agree}
