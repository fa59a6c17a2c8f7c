"""`python -m bench.leaf_ceiling [--concepts 100] [--epochs 6] [--arms features,oracle,...]`: what caps
held-out leaf accuracy, the LM's reading of image tokens or the image side?

Every arm trains a fresh projector (the default config's: seed, recipe, 4 LM tokens from a 384-wide
GELU MLP; the same init wherever the input has the same width) on the same batches of the same
TRAIN questions of a seeded concept subset, with the frozen LM held as training holds it, and answers the VAL questions after every epoch. Only what reaches the
LM, or where, differs:

    features         today's VLM: the encoder's pooled feature, image tokens before the question
    after-question   the same feature, image tokens after the question ("Question: Is there a dog
                     in the image?\\nImage: <tokens>\\nAnswer:"), so they are read in the question's
                     context (plain prompt only)
    oracle           a one-hot of the concept the image is shown as instead of its feature: perfect
                     recognition, so VAL is answered from the same inputs TRAIN showed; what is left
                     is how well the frozen LM can be taught to answer from a concept's tokens
    posterior        a linear probe's concept posterior instead of the feature (core.image_probe's
                     recipe: standardised features, 300 full-batch AdamW steps); TRAIN images get
                     out-of-fold posteriors (5 folds), so training sees inputs as uncertain as VAL's
    posterior-topk   the posterior arm's tokens, then one more token for each of the posterior's top
                     `--topk` concepts, in rank order (core's `--projector-topk`: a trained row per
                     concept, starting as its name's mean word embedding, plus a trained map of its
                     share; core/models/projector.py says why)
    features+posterior  the feature and the posterior arm's posterior side by side in one input row
                     (D + C wide, one LayerNorm over both): the posterior names the concept, the
                     feature keeps what the image looks like, which unseen hypernyms may need
    features+posterior-norms  the same row, each part through a LayerNorm of its own (SplitNorm), so
                     a sure posterior stands out as it does for the posterior arm instead of being
                     scaled by the feature's spread (core's `--projector-input features+posterior`)

Accuracy is P(yes) > P(no) on the VAL questions (leaf and hypernym; every question is kept: the
default condition removes none). `--condition` trains under a deprivation instead (`random:1`: leaf
questions only), and each epoch's line then also holds the VAL hypernym per-category yes/no macro-F1
on seen and unseen pairs (core.metrics, the study's headline), so arms compare on what reaches
unseen hypernyms. The first line of JSON also holds the image-probe baseline on the
same data (core.image_probe: val thresholds, val and test accuracy) and the out-of-fold probe's top-1
on TRAIN images; then one line per arm and epoch, then a table.

`--rank N` then asks every leaf question of N evenly spaced VAL images (core.evaluate.spaced_sample,
so `taxolens evaluate RUN --split val --leaf-ranking N` ranks the same images for a trained run)
through each arm's last projector and the LM in fp32, as Predict asks them, and reports the shown
concept's top-1 / top-5 / median rank among all leaves. Leaf accuracy asks one random wrong leaf per
image; this asks the category-mates too.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import time

import torch
import torch.nn.functional as F

from core.models.projector import SplitNorm

ARMS = ("features", "after-question", "oracle", "posterior", "posterior-topk", "features+posterior",
        "features+posterior-norms")
POSTERIOR_ARMS = ("posterior", "posterior-topk", "features+posterior", "features+posterior-norms")   # need the probe


# ---------------------------------------------------------------- what reaches the projector

def onehot(names: list[str], shown: list[str]) -> torch.Tensor:
    """(N, 1, C): a one-hot over `names` of each image's shown concept (the oracle's input)."""
    column = {c: j for j, c in enumerate(names)}
    x = torch.zeros(len(shown), 1, len(names))
    x[torch.arange(len(shown)), 0, torch.tensor([column[c] for c in shown])] = 1.0
    return x


class PosteriorFed(torch.nn.Module):
    """A posterior-input projector (core's, with its top-k tokens) handed posteriors as its input,
    so the arms share features_logits."""

    def __init__(self, projector):
        super().__init__()
        self.projector = projector

    def forward(self, x: torch.Tensor, posteriors: bool = False) -> torch.Tensor:
        return self.projector(x, posteriors=True)


# ---------------------------------------------------------------- where the image tokens go

def features_logits(vlm, projector, feats: torch.Tensor, owner: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Answer logits (Q, V) of today's VLM with `projector` in place (image, then the question)."""
    vlm.projector = projector
    return vlm._answer_logits_shared(vlm.prefix_embeds(feats), owner, *vlm.suffix_ids(texts)).float()


def after_question_logits(vlm, projector, feats: torch.Tensor, owner: torch.Tensor,
                          texts: list[str]) -> torch.Tensor:
    """Answer logits (Q, V) of [start]Question: <question>\\nImage:<image tokens>\\nAnswer: (plain)."""
    if vlm.prompt.format != "plain":
        raise ValueError("the after-question arm is written for the plain prompt")
    lm = vlm.lm
    image = projector(feats.to(vlm.device, torch.float32))[owner]          # (Q, k*m, H)
    rows = [list(lm.start_ids) + lm.tokens(f"Question: {t}") + lm.tokens("\nImage:") for t in texts]
    ids, mask = vlm._pad(rows)
    dtype = lm.embed(ids[:1, :1]).dtype
    tail = lm.embed(torch.tensor(lm.tokens("\nAnswer:"), device=ids.device)).to(dtype)
    embeds = torch.cat([lm.embed(ids).to(dtype), image.to(dtype), tail.expand(len(rows), -1, -1)], dim=1)
    attention = torch.cat([mask, torch.ones(len(rows), embeds.shape[1] - ids.shape[1], dtype=mask.dtype,
                                            device=mask.device)], dim=1)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    return lm.model(inputs_embeds=embeds, attention_mask=attention, position_ids=positions,
                    use_cache=False, logits_to_keep=1).logits[:, -1].float()


# ---------------------------------------------------------------- the comparison

def rank_every_leaf(vlm, projector, forward, inputs: torch.Tensor, shown: list[str], names: list[str],
                    texts: list[str]) -> dict:
    """Each image's shown concept ranked among all `names` by the answer's log-odds of yes (inputs:
    (N, 1, D), one row per image; texts: the leaf question of each name): top-1, top-5, median rank,
    and each image's rank in input order (to pair with a run's ranking.json rows of the same images)."""
    yes, no = list(vlm.prompt.yes_ids), list(vlm.prompt.no_ids)
    ranks = []
    projector.eval()
    with torch.no_grad():
        for i, concept in enumerate(shown):
            logp = forward(vlm, projector, inputs[i:i + 1], torch.zeros(len(texts), dtype=torch.long),
                           texts).log_softmax(-1)
            odds = torch.logsumexp(logp[:, yes], -1) - torch.logsumexp(logp[:, no], -1)
            ranks.append(int((odds > odds[names.index(concept)]).sum()) + 1)
    projector.train()
    ordered = sorted(ranks)
    return {"rank_images": len(ranks), "rank_top1": round(sum(r <= 1 for r in ranks) / len(ranks), 4),
            "rank_top5": round(sum(r <= 5 for r in ranks) / len(ranks), 4),
            "rank_median": ordered[len(ordered) // 2], "ranks": ranks}


def side_by_side(feats: torch.Tensor, posterior: torch.Tensor) -> torch.Tensor:
    """(N, 1, D + C): each image's pooled feature (N, 1, D) and its posterior (N, 1, C) in one row."""
    return torch.cat([feats.float(), posterior.float()], dim=-1)


def run(concepts: int = 100, epochs: int = 6, arms=ARMS, seed: int = 0, log=print, rank: int = 0,
        topk: int = 5, condition: str = "none") -> list[dict]:
    from core import image_probe, metrics, rundata
    from core.config import TrainConfig
    from core.features import image_features
    from core.models.checkpoint import resolve_precision
    from core.models.projector import Projector
    from core.models.registry import create_projector, create_vlm
    from core.questions import shown_concept
    from core.train import epoch_batches, lr_at

    unknown = set(arms) - set(ARMS)
    if unknown or not arms:
        raise ValueError(f"arms must be among {', '.join(ARMS)}, got {', '.join(arms) or 'none'}")
    cfg = TrainConfig(max_concepts=concepts or None, seed=seed, epochs=epochs,   # 0: the whole dataset
                      condition=condition)
    data = rundata.prepare(cfg)
    vlm = create_vlm(cfg)
    precision = resolve_precision(cfg.precision, vlm.device)
    if precision == "bf16":                 # as training holds it (CUDA, CPUs with native bf16)
        vlm.hold_lm_in_bf16()
    items = {s: data.images(s) for s in ("train", "val")}
    feats, row = {}, {}
    for s, its in items.items():
        feats[s], row[s] = image_features(vlm, its)
    names = sorted(data.dataset.concepts)
    shown = {s: [shown_concept(im.concept, data.deprivation.labeling) for im in its] for s, its in items.items()}
    inputs = {a: feats for a in ("features", "after-question")}
    if "oracle" in arms:
        inputs["oracle"] = {s: onehot(names, shown[s]) for s in items}
    y = torch.tensor([names.index(c) for c in shown["train"]])
    x = feats["train"][:, 0].float()
    oof = image_probe.out_of_fold(x, y, len(names), seed=seed)
    probe = image_probe.fit(data, vlm.encoder, seed=seed)      # on every TRAIN image: VAL's posteriors
    if set(POSTERIOR_ARMS) & set(arms):
        inputs["posterior"] = inputs["posterior-topk"] = {
            "train": oof[:, None], "val": probe.probabilities(items["val"])[:, None]}
        inputs["features+posterior"] = inputs["features+posterior-norms"] = {
            s: side_by_side(feats[s], inputs["posterior"][s]) for s in items}
    forward = {"features": features_logits, "after-question": after_question_logits,
               "oracle": features_logits, "posterior": features_logits, "posterior-topk": features_logits,
               "features+posterior": features_logits, "features+posterior-norms": features_logits}
    projector = {a: Projector(cfg.projector, inputs[a]["train"].shape[-1], vlm.lm.hidden_size,
                              vlm.lm.token_norm(), seed=seed, hidden=cfg.projector_hidden,
                              tokens=cfg.projector_tokens) for a in arms}
    if "features+posterior-norms" in arms:     # its LayerNorm's output on Gaussian inputs is as before
        projector["features+posterior-norms"].norm = SplitNorm(feats["train"].shape[-1],
                                                               inputs["features+posterior"]["train"].shape[-1])
    if "posterior-topk" in arms:         # core's projector with --projector-topk, its probe unused
        topk_cfg = dataclasses.replace(cfg, projector_input="posterior", projector_topk=topk)
        topk_proj = create_projector(topk_cfg, feats["train"].shape[-1], vlm.lm, classes=len(names))
        topk_proj.set_concept_rows(vlm.lm.name_embeddings([data.dataset.concepts[c].label for c in names]))
        projector["posterior-topk"] = PosteriorFed(topk_proj)
    opt = {a: torch.optim.AdamW(projector[a].parameters(), lr=cfg.lr, weight_decay=0.0) for a in arms}
    yes, no = vlm.prompt.yes_ids, vlm.prompt.no_ids
    total = math.ceil(len(data.training_questions()) / cfg.batch_size) * epochs
    seconds, done, out = {a: 0.0 for a in arms}, 0, []

    @torch.no_grad()
    def validate(arm: str) -> dict:
        projector[arm].eval()
        by_image: dict[str, list] = {}
        for q in data.questions["val"]:
            by_image.setdefault(q.image_id, []).append(q)
        right = {"leaf": [0, 0], "hypernym": [0, 0]}
        rows = []
        ids = sorted(by_image)
        for k in range(0, len(ids), 8):
            chunk = ids[k:k + 8]
            qs = [q for i in chunk for q in by_image[i]]
            slot = {i: j for j, i in enumerate(chunk)}
            logp = forward[arm](vlm, projector[arm], inputs[arm]["val"][[row["val"][i] for i in chunk]],
                                torch.tensor([slot[q.image_id] for q in qs]), [q.text for q in qs]).log_softmax(-1)
            said = (torch.logsumexp(logp[:, list(yes)], -1) > torch.logsumexp(logp[:, list(no)], -1)).tolist()
            for q, s in zip(qs, said):
                right[q.kind][0] += int(s == q.answer)
                right[q.kind][1] += 1
                rows.append({"kind": q.kind, "target": q.target, "answer": q.answer, "pred": s,
                             "seen": not data.deprivation.is_unseen(q), "mass": None})
        projector[arm].train()
        scores = {f"val_{kind}_accuracy": round(r / n, 4) if n else None for kind, (r, n) in right.items()}
        if condition != "none":
            summary = metrics.summarize(rows)
            for name in ("seen_category_f1", "unseen_category_f1", "unseen_chance_f1", "unseen_share"):
                value = metrics.lookup(summary, metrics.HEADLINE[name])
                scores[f"val_{name}"] = None if value is None else round(value, 4)
        return scores

    log(json.dumps({"concepts": concepts, "seed": seed, "epochs": epochs, "condition": condition, "precision": precision,
                    "train_images": len(items["train"]), "val_images": len(items["val"]), "updates": total,
                    "probe_out_of_fold_top1": round(float((oof.argmax(-1) == y).float().mean()), 4),
                    **image_probe_accuracy(probe, data)}))
    for epoch in range(epochs):
        qs = data.training_questions(epoch)
        for batch in epoch_batches(qs, cfg.batch_size, cfg.seed, epoch):
            if done >= total:
                break
            images = list(dict.fromkeys(qs[i].image_id for i in batch))
            slot = {x: j for j, x in enumerate(images)}
            owner = torch.tensor([slot[qs[i].image_id] for i in batch])
            target = torch.tensor([yes[0] if qs[i].answer else no[0] for i in batch])
            for arm in arms:
                t0 = time.perf_counter()
                for group in opt[arm].param_groups:
                    group["lr"] = lr_at(done, total, cfg)
                x = inputs[arm]["train"][[row["train"][i] for i in images]]
                loss = F.cross_entropy(forward[arm](vlm, projector[arm], x, owner, [qs[i].text for i in batch]), target)
                opt[arm].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(projector[arm].parameters(), cfg.grad_clip)
                opt[arm].step()
                seconds[arm] += time.perf_counter() - t0
            done += 1
        for arm in arms:
            out.append({"arm": arm, "epoch": epoch + 1, "train_seconds": round(seconds[arm], 1), **validate(arm)})
            log(json.dumps(out[-1]))
    if rank:
        from core.evaluate import spaced_sample
        from core.questions import question_text
        ranked = spaced_sample(items["val"], rank)
        labelled = [shown_concept(im.concept, data.deprivation.labeling) for im in ranked]
        texts = [question_text(data.dataset.concepts[c].label) for c in names]
        fp32 = create_vlm(cfg)          # ranked as Predict ranks: the frozen LM in fp32
        for arm in arms:
            x = inputs[arm]["val"][[row["val"][im.id] for im in ranked]]
            result = rank_every_leaf(fp32, projector[arm], forward[arm], x, labelled, names, texts)
            next(r for r in reversed(out) if r["arm"] == arm).update(result)
            log(json.dumps({"arm": arm, **result}))
    return out


def image_probe_accuracy(probe, data) -> dict:
    """A fitted image-probe baseline (core.image_probe: its thresholds are chosen on VAL) on `data`:
    its VAL and TEST leaf / hypernym accuracy and its thresholds, the bar the arms are read against."""
    from core import metrics
    out = {"probe_thresholds": {k: round(v, 4) for k, v in probe.thresholds.items()}}
    for split in ("val", "test"):
        summary = metrics.summarize(probe.rows(data, split))
        for kind in ("leaf", "hypernym"):
            acc = summary[kind]["accuracy"] if summary[kind]["n"] else None
            out[f"probe_{split}_{kind}_accuracy"] = round(acc, 4) if acc is not None else None
    return out


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(rows: list[dict]) -> str:
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    epochs = sorted({r["epoch"] for r in rows})
    at = {(r["arm"], r["epoch"]): r for r in rows}
    ranked = any("rank_top5" in r for r in rows)
    unseen = any("val_unseen_category_f1" in r for r in rows)
    lines = ["| arm | val leaf accuracy by epoch | last epoch: leaf / hypernym | train s |"
             + (" unseen / seen macro-F1 (chance) |" if unseen else "")
             + (" every leaf: top-1 / top-5 / median rank |" if ranked else ""),
             "|---|---|---|---|" + ("---|" if unseen else "") + ("---|" if ranked else "")]
    for a in arms:
        last = at[a, epochs[-1]]
        curve = " ".join(f"{at[a, e]['val_leaf_accuracy']:.3f}" for e in epochs)
        rank = (f" {last['rank_top1']:.3f} / {last['rank_top5']:.3f} / {last['rank_median']} of "
                f"{last['rank_images']} |" if ranked else "")
        f1s = (f" {fmt(last.get('val_unseen_category_f1'))} / {fmt(last.get('val_seen_category_f1'))} "
               f"({fmt(last.get('val_unseen_chance_f1'))}) |" if unseen else "")
        lines.append(f"| {a} | {curve} | {last['val_leaf_accuracy']:.3f} / {last['val_hypernym_accuracy']:.3f} "
                     f"| {last['train_seconds']:.0f} |" + f1s + rank)
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=int, default=100, help="seeded concept subset (default 100; 0: every concept, a default run's data)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--condition", default="none",
                    help="train under this condition (e.g. random:1); then VAL seen / unseen per-category macro-F1 too")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, among {', '.join(ARMS)}")
    ap.add_argument("--topk", type=int, default=5, help="posterior-topk: one token per this many top concepts (default 5)")
    ap.add_argument("--rank", type=int, default=0,
                    help="then rank every leaf for this many evenly spaced VAL images per arm (default 0)")
    args = ap.parse_args(argv)
    rows = run(args.concepts, args.epochs, tuple(a for a in args.arms.split(",") if a), args.seed,
               log=lambda s: print(s, flush=True), rank=args.rank, topk=args.topk, condition=args.condition)
    print(table(rows))


if __name__ == "__main__":
    main()
