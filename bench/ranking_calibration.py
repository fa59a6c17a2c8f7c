"""`python -m bench.ranking_calibration RUN [--images 20] [--val-images 12] [--save NPZ]`: does calibrating each leaf
question make the every-leaf ranking (what Predict shows) better?

A yes/no model can say "yes" to some questions whatever the picture (a question prior). The usual
fix is to subtract that prior from each question's logit before ranking (contextual calibration):
here the prior of "Is there a <leaf> in the image?" is its log-odds margin for a content-free image
(the mean of the validation sample's features; an all-zero feature), or its mean (and sd) over the
validation sample. Every leaf is asked of `--images` evenly spaced test images and `--val-images`
validation images; the true leaf's rank is reported per method (top-1, top-5, median). Scoring is
the run's own fp32 scoring, one image's 385 questions at a time (about 12 s per image on 2 quiet cores).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of each row's true column (ties count against it: rank = 1 + #strictly higher)."""
    return np.array([int((row > row[t]).sum()) + 1 for row, t in zip(scores, truth)])


def methods(test: np.ndarray, val: np.ndarray, null: np.ndarray) -> dict[str, np.ndarray]:
    """Leaf scores per method: rows test images, columns leaves; `test` / `val` are log-odds margins,
    `null` the margins of the content-free images (row 0 the mean image, row 1 the zero feature)."""
    out = {"raw P(yes)": test,
           "minus the mean image's answer": test - null[0],
           "minus the zero feature's answer": test - null[1]}
    if len(val):
        mu, sd = val.mean(0), val.std(0) + 1e-6
        out[f"minus the mean over {len(val)} val images"] = test - mu
        out[f"z-score over {len(val)} val images"] = (test - mu) / sd
    return out


def summary(r: np.ndarray) -> str:
    return f"top-1 {np.mean(r == 1):.3f}  top-5 {np.mean(r <= 5):.3f}  median rank {np.median(r):.0f}"


def _margins(vlm, feats, texts) -> np.ndarray:
    t0, rows = time.time(), []
    for i in range(feats.shape[0]):
        p = vlm.score(feats[i:i + 1], [texts])[0].p_yes.double().clamp(1e-12, 1 - 1e-12)
        rows.append((p.log() - (1 - p).log()).numpy())
        print(f"  image {i + 1}/{feats.shape[0]}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return np.stack(rows) if rows else np.zeros((0, len(texts)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a trained run directory (or assets/default-checkpoint)")
    ap.add_argument("--images", type=int, default=20, help="test images ranked")
    ap.add_argument("--val-images", type=int, default=12, help="validation images for the per-leaf mean")
    ap.add_argument("--save", metavar="NPZ", help="also write the margins (test, val, null) and the truth here")
    args = ap.parse_args(argv)

    import torch

    from bench.common import trained_run
    from core import evaluate, features, questions

    info, vlm, data = trained_run(args.run)
    ds = data.dataset
    concepts = sorted(ds.concepts)
    texts = [questions.question_text(ds.concepts[c].label) for c in concepts]

    test = evaluate.spaced_sample(data.images("test"), args.images)
    val = evaluate.spaced_sample(data.images("val"), args.val_images) if args.val_images else []
    ft, _ = features.image_features(vlm, test)
    fv = features.image_features(vlm, val)[0] if val else ft[:0]
    pool = fv if len(val) else ft
    null = torch.stack([pool.mean(0), torch.zeros_like(pool[0])])
    m_null, m_test, m_val = (_margins(vlm, f, texts) for f in (null, ft, fv))
    truth = np.array([concepts.index(questions.shown_concept(im.concept, data.deprivation.labeling)) for im in test])
    if args.save:
        np.savez(args.save, test=m_test, val=m_val, null=m_null, truth=truth, concepts=np.array(concepts))
    print(f"{info.run_id}: every leaf ({len(concepts)}) asked of {len(test)} test images")
    for name, scores in methods(m_test, m_val, m_null).items():
        print(f"  {name:<40} {summary(ranks(scores, truth))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
