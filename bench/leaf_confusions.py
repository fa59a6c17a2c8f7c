"""`python -m bench.leaf_confusions RUN [--images 60] [--wrong 20]`: which leaves does a run say yes to?

Leaf accuracy mixes two failures: not recognising the image's own concept, and saying yes to
another one. This asks, of `--images` evenly spaced TRAIN and TEST images each, the image's own
leaf and `--wrong` random other leaves, and reports the share answered yes by kind of leaf:

    true leaf        the concept the image is shown as (yes is right)
    category-mate    a wrong leaf sharing a category with it ("Is there a tiger?" of a cat)
    other wrong      every other wrong leaf

The same pairs are answered by the image probe (core.image_probe: a linear softmax over the same
encoder features, its threshold chosen on validation) as the reference for what the encoder itself
confuses; yes to category-mates beyond the probe's is what the LM's own word knowledge adds. TRAIN
images tell memorisation (their true leaves were trained on) apart from what a run cannot fit at all.
Scoring is the run's own fp32 scoring, one image's questions at a time (about 3 min for the defaults
on 2 quiet cores).
"""
from __future__ import annotations

import argparse
import random

KINDS = ("true leaf", "category-mate", "other wrong")


def kind_of(asked: str, truth: str, categories: dict[str, frozenset]) -> str:
    if asked == truth:
        return KINDS[0]
    return KINDS[1] if categories[asked] & categories[truth] else KINDS[2]


def tally(rows) -> dict:
    """rows: (split, kind, vlm says yes, probe says yes) -> {split: {kind: {asked, vlm, probe}}},
    the last two as shares of `asked`."""
    counts: dict = {}
    for split, kind, vlm_yes, probe_yes in rows:
        c = counts.setdefault(split, {}).setdefault(kind, [0, 0, 0])
        c[0] += 1
        c[1] += bool(vlm_yes)
        c[2] += bool(probe_yes)
    return {split: {kind: {"asked": n, "vlm": v / n, "probe": p / n} for kind, (n, v, p) in kinds.items()}
            for split, kinds in counts.items()}


def table(result: dict) -> str:
    lines = [f"{'split':<6}" + "".join(f"{k + ': VLM | probe (asked)':>36}" for k in KINDS)]
    for split, kinds in result.items():
        cells = [f"{kinds[k]['vlm']:.3f} | {kinds[k]['probe']:.3f} ({kinds[k]['asked']})" if k in kinds else "-"
                 for k in KINDS]
        lines.append(f"{split:<6}" + "".join(f"{c:>36}" for c in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a trained run directory (or assets/default-checkpoint)")
    ap.add_argument("--images", type=int, default=60, help="images per split")
    ap.add_argument("--wrong", type=int, default=20, help="random wrong leaves asked of each image")
    ap.add_argument("--seed", type=int, default=7, help="seed of the wrong leaves' draw")
    args = ap.parse_args(argv)

    from bench.common import trained_run
    from core import evaluate, features, image_probe, questions

    info, vlm, data = trained_run(args.run)
    ds = data.dataset
    concepts = sorted(ds.concepts)
    categories = {c: frozenset(ds.concepts[c].categories) for c in concepts}
    probe = image_probe.fit(data, vlm.encoder)
    column = {c: j for j, c in enumerate(probe.concepts)}
    rng, rows = random.Random(args.seed), []
    for split in ("train", "test"):
        items = evaluate.spaced_sample(data.images(split), args.images)
        feats, row_of = features.image_features(vlm, items)
        probs = probe.probabilities(items)
        for i, item in enumerate(items):
            truth = questions.shown_concept(item.concept, data.deprivation.labeling)
            asked = [truth] + rng.sample([c for c in concepts if c != truth], min(args.wrong, len(concepts) - 1))
            texts = [questions.question_text(ds.concepts[c].label) for c in asked]
            p_yes = vlm.score(feats[row_of[item.id]:row_of[item.id] + 1], [texts])[0].p_yes.tolist()
            for c, p in zip(asked, p_yes):
                rows.append((split, kind_of(c, truth, categories), p > 0.5,
                             float(probs[i, column[c]]) > probe.thresholds["leaf"] if c in column else False))
    print(f"{info.run_id}: share of leaf questions answered yes, {args.images} images per split, "
          f"the true leaf and {args.wrong} random wrong ones each")
    print(table(tally(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
