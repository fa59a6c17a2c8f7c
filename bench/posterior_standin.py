"""`python -m bench.posterior_standin [--seed 0] [--views 2] [--epochs 30] [--arms ...]`: which
probe-posterior input would the VLM answer leaf questions best from, asked of a minute-long stand-in
instead of a 45-minute run?

The image probe alone answers test leaf questions at about 0.94 (a threshold on P(shown concept),
chosen on VAL), the VLM that reads the same probe's posterior at about 0.87: the gap is in learning to
answer from out-of-fold posteriors, not in what the posterior holds. The stand-in keeps that part
and drops the LM: the projector's own front (LayerNorm, Linear(C, 384), GELU, then a 64-wide
output) read by a learned embedding per concept, P(yes) = sigmoid(<out(posterior), e_concept> + b),
trained like the first stage on every TRAIN image's out-of-fold posterior (5 folds, batches of 16,
lr 1e-3, no weight decay) with its own leaf "yes" question and one random other leaf as "no" per
image and epoch; VAL and TEST images are read through the probe fitted on every TRAIN image, as
evaluation reads them. It reports leaf accuracy (the true leaf and one random other leaf per image,
at P = 0.5), recall (yes to the true leaf) and the every-leaf ranking of the TEST images. At full
size (seed 0, 2026-12-05) it put today's input at 0.824 test, far below the probe's 0.942 as the
VLM's first stage (0.877) is; views 0.861, max-pool 0.842, log-posterior 0.766. The views arm then
gained on the real model too (0.897 and 0.887 against 0.877 and 0.876 on seeds 0 and 1; docs/training.md,
"Augmented views for the probe-posterior input"): a screen for the direction, not a forecast of the
size. The ranking arms show its limit: rank-soft beat rank-hard by about 0.10 of every-leaf top-1
and 0.04 of top-5 on seeds 0 and 1, and the real leaf stage with TrainConfig.rank_soft did not rank
better beyond noise (docs/training.md, "Ranking targets spread by the posterior").

Arms (each against `posterior`, `114f`'s input; the shipped recipe (`b1fd`, then `pvsoft1_s0`) reads it with views; `views`
changes the probe evaluation reads as well as the training inputs, as TrainConfig.augment_views does):
    posterior        the probe's posterior of the average-pooled feature
    max-pool         the probe reads the max-pooled grid instead
    log-posterior    the stand-in reads log P instead of P
    views            the probe is also fitted on V augmented views of every TRAIN image (core.augment,
                     each held out with its image), and the epochs show the views' out-of-fold
                     posteriors in turn with the image's own (TrainConfig.augment_views with the
                     posterior input; the stand-in shows all images the same view in an epoch,
                     training an offset per image)
    rank-hard        views, plus the leaf stage's listwise ranking term (TrainConfig.rank_negatives 4,
                     rank_siblings 1.0: each image's own leaf against 4 known category-mates, or
                     random leaves where it has fewer; the stand-in draws mates from any shared
                     category, the real draw the most specific first)
    rank-soft        rank-hard with TrainConfig.rank_soft 1.0: the ranking target spread over the
                     group by the image's out-of-fold posterior instead of all on its own leaf

Every arm also ranks every leaf for each TEST image by the stand-in's logit (as Predict ranks by
P(yes)) and reports the true leaf's top-1 / top-5 beside the probe's own ranking of the same images:
how much of the probe's order survives its reader.
Features come from the feature cache (encoded there when missing; views are written and encoded once).
"""
from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from core.models.vlm import listwise_loss, spread_targets

ARMS = ("posterior", "max-pool", "log-posterior", "views", "rank-hard", "rank-soft")
RANK_NEGATIVES = 4           # the leaf stage's (core.config.LEAF_STAGE)


def _pool(grid: torch.Tensor, how: str) -> torch.Tensor:
    return grid.amax(1) if how == "max" else grid.mean(1)


def top_k(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    """Share of rows whose label scores within the top 1 / top 5 (a tie goes to the label)."""
    above = (scores > scores.gather(1, labels[:, None])).sum(1)
    return {"top1": round(float((above < 1).float().mean()), 4), "top5": round(float((above < 5).float().mean()), 4)}


def ranking_group(label: int, classes: int, mates: list[int], draw: torch.Generator) -> list[int]:
    """An image's own leaf, then RANK_NEGATIVES others: its category-mates first (as many as it has),
    the rest random, never the own leaf twice."""
    if classes <= RANK_NEGATIVES:
        raise ValueError(f"ranking groups need more than {RANK_NEGATIVES} concepts, got {classes}")
    picked = [mates[int(j)] for j in torch.randperm(len(mates), generator=draw)[:RANK_NEGATIVES]]
    while len(picked) < RANK_NEGATIVES:
        other = (label + int(torch.randint(1, classes, (1,), generator=draw))) % classes
        if other not in picked:
            picked.append(other)
    return [label, *picked]


def stand_in(inputs: list[torch.Tensor], y: torch.Tensor, held: dict, classes: int, epochs: int, seed: int,
             transform=lambda p: p, mates: list[list[int]] | None = None, rank_soft: float = 0.0) -> dict:
    """Train the stand-in on `inputs` (one (N, C) posterior per epoch in turn, rows = TRAIN images with
    labels y) and answer held-out leaf questions: held[split] = (posteriors, labels). mates (per
    concept, its category-mates) adds the listwise ranking term, rank_soft its posterior targets."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.LayerNorm(classes), torch.nn.Linear(classes, 384), torch.nn.GELU(),
                              torch.nn.Linear(384, 64))
    emb, bias = torch.nn.Embedding(classes, 64), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([*net.parameters(), *emb.parameters(), bias], lr=1e-3, weight_decay=0.0)
    draw = torch.Generator().manual_seed(seed)
    rank_draw = torch.Generator().manual_seed(seed + 1)     # ranking groups: the other arms' draws stay as they are

    def logits(x, concepts):
        return (net(transform(x)) * emb(concepts)).sum(-1) + bias

    for epoch in range(epochs):
        x = inputs[epoch % len(inputs)]
        order = torch.randperm(len(x), generator=draw)
        for start in range(0, len(x), 16):
            rows = order[start:start + 16]
            other = (y[rows] + torch.randint(1, classes, rows.shape, generator=draw)) % classes
            out = torch.cat([logits(x[rows], y[rows]), logits(x[rows], other)])
            target = torch.cat([torch.ones(len(rows)), torch.zeros(len(rows))])
            loss = F.binary_cross_entropy_with_logits(out, target)
            if mates is not None:
                groups = torch.tensor([ranking_group(int(c), classes, mates[int(c)], rank_draw) for c in y[rows]])
                margins = logits(x[rows].repeat_interleave(groups.shape[1], 0), groups.flatten()).view(groups.shape)
                soft = spread_targets(x[rows].gather(1, groups), rank_soft)
                loss = loss + listwise_loss(list(margins), list(soft) if rank_soft else ())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    result, ask = {}, torch.Generator().manual_seed(1)
    with torch.no_grad():
        for split, (x, labels) in held.items():
            other = (labels + torch.randint(1, classes, labels.shape, generator=ask)) % classes
            yes, no = logits(x, labels) > 0, logits(x, other) > 0
            result[split] = {"leaf_accuracy": round(float((yes.float().mean() + (~no).float().mean()) / 2), 4),
                             "recall": round(float(yes.float().mean()), 4)}
        x, labels = held["test"]
        every = torch.arange(classes)
        scores = torch.stack([logits(row.expand(classes, -1), every) for row in x])
        result["test"].update({f"every_leaf_{k}": v for k, v in top_k(scores, labels).items()})
    return result


def run(seed: int = 0, views: int = 2, epochs: int = 30, arms=ARMS, log=print) -> list[dict]:
    from core import augment, image_probe, rundata
    from core.config import TrainConfig
    from core.features import FeatureCache
    from core.models.registry import create_encoder
    from core import questions
    from core.questions import shown_concept

    unknown = set(arms) - set(ARMS)
    if unknown or not arms:
        raise ValueError(f"arms must be among {', '.join(ARMS)}, got {', '.join(arms) or 'none'}")
    cfg = TrainConfig(seed=seed, projector_input="posterior")
    data = rundata.prepare(cfg)
    cache = FeatureCache(create_encoder(cfg.encoder))
    names = sorted(data.dataset.concepts)
    column = {c: j for j, c in enumerate(names)}
    grids, labels = {}, {}
    for split in ("train", "val", "test"):
        items = data.images(split)
        grids[split] = cache.get(items)
        labels[split] = torch.tensor([column[shown_concept(im.concept, data.deprivation.labeling)] for im in items])
    view_grids = None
    if {"views", "rank-hard", "rank-soft"} & set(arms):
        rows = augment.view_items(data.images("train"), views)
        view_grids = cache.get([v for row in rows for v in row]).view(len(rows), views, *grids["train"].shape[1:])
    classes, y = len(names), labels["train"]
    known = questions.known_categories(data.dataset, data.deprivation)
    mates = [sorted(column[o] for o in names if o != c and known[o] & known[c]) for c in names]

    def probe_inputs(how: str, with_views: bool) -> tuple[list, dict]:
        """The stand-in's TRAIN inputs (out-of-fold posteriors, one per epoch in turn) and its VAL /
        TEST posteriors from the probe fitted on every TRAIN image (and its views)."""
        x = {s: _pool(g, how) for s, g in grids.items()}
        extra = _pool(view_grids.flatten(0, 1), how).view(len(y), views, -1) if with_views else None
        head, mean, std = image_probe.fit_softmax(*image_probe.with_views(x["train"], y, extra), classes, seed)
        oof = image_probe.out_of_fold(x["train"], y, classes, seed=seed, views=extra)
        with torch.no_grad():
            held = {s: (head((x[s] - mean) / std).softmax(-1), labels[s]) for s in ("val", "test")}
        return (list(oof.unbind(1)) if with_views else [oof]), held

    fitted: dict = {}          # posterior and log-posterior read the same probe: fit it once
    out = []
    for arm in arms:
        key = ("max" if arm == "max-pool" else "avg", arm in ("views", "rank-hard", "rank-soft"))
        if key not in fitted:
            fitted[key] = probe_inputs(*key)
        train_inputs, held = fitted[key]
        transform = (lambda p: p.clamp_min(1e-30).log()) if arm == "log-posterior" else (lambda p: p)
        ranking = {"mates": mates, "rank_soft": 1.0 if arm == "rank-soft" else 0.0} if arm.startswith("rank-") else {}
        probe_rank = top_k(held["test"][0], labels["test"])
        result = {"arm": arm, "seed": seed, **({"views": views} if key[1] else {}),
                  "probe_test_top1": probe_rank["top1"], "probe_test_top5": probe_rank["top5"],
                  **stand_in(train_inputs, y, held, classes, epochs, seed, transform, **ranking)}
        log(json.dumps(result))
        out.append(result)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--views", type=int, default=2, help="augmented views per TRAIN image for the views arm")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, among {', '.join(ARMS)}")
    args = ap.parse_args(argv)
    rows = run(args.seed, args.views, args.epochs, [a for a in args.arms.split(",") if a])
    print("\n| arm | probe test top-1 / top-5 | val leaf acc / recall | test leaf acc / recall | test every-leaf "
          "top-1 / top-5 |\n|---|---|---|---|---|")
    for r in rows:
        t = r["test"]
        print(f"| {r['arm']} | {r['probe_test_top1']:.3f} / {r['probe_test_top5']:.3f} "
              f"| {r['val']['leaf_accuracy']:.3f} / {r['val']['recall']:.3f} "
              f"| {t['leaf_accuracy']:.3f} / {t['recall']:.3f} | {t['every_leaf_top1']:.3f} / {t['every_leaf_top5']:.3f} |")


if __name__ == "__main__":
    main()
