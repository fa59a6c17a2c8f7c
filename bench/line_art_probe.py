"""`python -m bench.line_art_probe [--seed S] [--views V]`: how well the concept probe a
posterior-input run reads (core.image_probe.fit_softmax on the pooled EfficientNet features)
recognises held-out images, per art style, when its fit adds line-art renderings of the training
images (core.augment.line_drawing; TrainConfig.line_art_views) to the image and its V augmented
views (the shipped recipe's 2).

Why: the model answers "yes" to an image's own leaf on 0.99 of the test images whose probe top-1 is
right and on 0.60 of those where the true concept is outside the probe's top 5; that happens most on
the two line-art styles (Fluent High Contrast, OpenMoji). The probe's fit takes seconds, so this
screens the renderings before a full training run spends an hour on them.

Prints val and test top-1 / top-5 of the true concept for four arms (the views alone; + the black
strokes on white, "line"; + the strokes over the colours, "fill"; + both), then test top-1 per
style. Rendering and encoding the line-art views of one seed's ~2,000 training images takes
~15 min on 2 cores the first time (cached after that, shared with training runs).
"""
from __future__ import annotations

import argparse

import torch

ARMS = {"views": (), "views+line": ("line",), "views+fill": ("fill",), "views+line+fill": ("line", "fill")}


def ranks(head, mean, std, x: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """The true class's rank (1 = top) under the probe, per row of x."""
    with torch.no_grad():
        p = head((x - mean) / std).softmax(-1)
    return (p > p.gather(1, truth[:, None])).sum(1) + 1


def arm_ranks(x: torch.Tensor, y: torch.Tensor, extra: dict[str, torch.Tensor], arm: tuple[str, ...],
              evaluated: dict[str, tuple[torch.Tensor, torch.Tensor]], classes: int, seed: int) -> dict:
    """Fit the probe on x (N, D) with labels y, plus extra["views"] (N, V, D) and each named
    rendering in `arm` (N, D), all labelled as their image; the true class's rank on each evaluated
    set {name: (features, labels)}."""
    from core.image_probe import fit_softmax, with_views
    views = torch.cat([extra["views"], *(extra[name][:, None] for name in arm)], dim=1)
    head, mean, std = fit_softmax(*with_views(x, y, views), classes, seed)
    return {name: ranks(head, mean, std, fx, fy) for name, (fx, fy) in evaluated.items()}


def main(argv=None) -> None:
    from core import augment, rundata
    from core.config import SHIPPED_RECIPE, TrainConfig
    from core.features import FeatureCache
    from core.models import registry

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="the split's seed (default 0, the shipped checkpoint's)")
    ap.add_argument("--views", type=int, default=SHIPPED_RECIPE["augment_views"],
                    help="augmented views beside every arm (default: the shipped recipe's)")
    args = ap.parse_args(argv)
    cfg = TrainConfig(seed=args.seed)          # the split is the seed's whatever the recipe
    data = rundata.prepare(cfg)
    cache = FeatureCache(registry.create_encoder(cfg.encoder, device="cpu"))

    def feats(items):
        return cache.get(items, pool=1, progress=lambda f, m: print(f"  {m}", end="\r", flush=True))[:, 0].float()

    column = {c: j for j, c in enumerate(sorted(data.dataset.concepts))}
    train = data.images("train")
    y = torch.tensor([column[im.concept] for im in train])
    rows = augment.view_items(train, args.views, line_art=len(augment.LINE_ART_KINDS))
    flat = feats([v for row in rows for v in row]).view(len(train), len(rows[0]), -1)
    extra = {"views": flat[:, :args.views], "line": flat[:, args.views], "fill": flat[:, args.views + 1]}
    evaluated = {split: (feats(data.images(split)), torch.tensor([column[im.concept] for im in data.images(split)]))
                 for split in ("val", "test")}
    x = feats(train)
    print(f"seed {args.seed}: probe fitted on {len(train)} training images x (1 + {args.views} views + line art); "
          f"{len(column)} concepts")
    test_styles = [im.style for im in data.images("test")]
    by_style: dict[str, dict[str, float]] = {}
    print(f"{'arm':<18} {'val top-1':>9} {'top-5':>6} {'test top-1':>10} {'top-5':>6}")
    for name, arm in ARMS.items():
        got = arm_ranks(x, y, extra, arm, evaluated, len(column), args.seed)
        (v, t) = (got["val"], got["test"])
        print(f"{name:<18} {(v == 1).float().mean():9.3f} {(v <= 5).float().mean():6.3f} "
              f"{(t == 1).float().mean():10.3f} {(t <= 5).float().mean():6.3f}")
        for style in sorted(set(test_styles)):
            hit = [bool(r == 1) for r, s in zip(t.tolist(), test_styles) if s == style]
            by_style.setdefault(style, {})[name] = sum(hit) / len(hit)
    print("\ntest top-1 per style (images):")
    print(f"{'style':<26}" + "".join(f"{name:>17}" for name in ARMS))
    for style, got in by_style.items():
        print(f"{style + ' (' + str(test_styles.count(style)) + ')':<26}" + "".join(f"{got[name]:17.3f}" for name in ARMS))


if __name__ == "__main__":
    main()
