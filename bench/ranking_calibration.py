"""`python -m bench.ranking_calibration RUN [--images 20] [--val-images 12] [--temperatures 0.5,2]
[--save NPZ]`: does calibrating each leaf question make the every-leaf ranking (what Predict shows)
better?

A yes/no model can say "yes" to some questions whatever the picture (a question prior). The usual
fix is to subtract that prior from each question's logit before ranking (contextual calibration):
here the prior of "Is there a <leaf> in the image?" is its log-odds margin for a content-free image
(the mean of the validation sample's features; an all-zero feature), or its mean (and sd) over the
validation sample. Every leaf is asked of `--images` evenly spaced test images and `--val-images`
validation images; the true leaf's rank is reported per method (top-1, top-5, median). Scoring is
the run's own fp32 scoring, one image's 385 questions at a time (about 7-12 s per image on 2 quiet cores).

Two more re-rankings use only the same model's answers: each leaf's log P(yes) plus w times the mean
log P(yes) of its categories (asked of the same test images, as Predict asks them anyway). And for a
probe-posterior run (projector_input "posterior", or "features+posterior" where the feature comes
first) the probe inside its projector, which is what the LM reads, ranks the same images from its
posterior: where the probe has the true leaf in its top 5 and the model does not, how spread that
posterior is says whether the ranking is lost in the image features or in how the LM reads them.
`--temperatures` asks every leaf again with that posterior sharpened (T < 1) or softened (T > 1)
before the LM reads it (the feature unchanged), p^(1/T) renormalised: does a
spread posterior lose the true leaf because it is spread?
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


CATEGORY_WEIGHTS = (0.5, 1.0, 2.0)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def with_categories(test: np.ndarray, cat_test: np.ndarray, membership: np.ndarray,
                    weights=CATEGORY_WEIGHTS) -> dict[str, np.ndarray]:
    """Leaf scores weighed by the same model's category answers: log P(yes | leaf) + w * the mean
    log P(yes | category) over the leaf's categories. `cat_test` holds the category log-odds (rows the
    test images), `membership` is leaves x categories (1 where the leaf belongs); a leaf with no
    category keeps its own answer."""
    per_leaf = (log_sigmoid(cat_test) @ membership.T) / np.maximum(membership.sum(1), 1)
    return {f"plus {w:g} x its categories' mean log P(yes)": log_sigmoid(test) + w * per_leaf for w in weights}


def probe_split(posterior: np.ndarray, model_ranks: np.ndarray, truth: np.ndarray) -> dict:
    """Where the probe (its posterior, rows test images) and the model put the true leaf in their
    top 5, and how much of the posterior the true leaf and the top concept hold in each group."""
    probe_ranks = ranks(posterior, truth)
    share = posterior[np.arange(len(truth)), truth]
    top = posterior.max(1)
    groups = {"both": (probe_ranks <= 5) & (model_ranks <= 5), "probe only": (probe_ranks <= 5) & (model_ranks > 5),
              "model only": (probe_ranks > 5) & (model_ranks <= 5), "neither": (probe_ranks > 5) & (model_ranks > 5)}
    return {"probe": probe_ranks, "groups": {
        name: {"images": int(m.sum()), "true share": float(np.median(share[m])) if m.any() else None,
               "largest share": float(np.median(top[m])) if m.any() else None} for name, m in groups.items()}}


def tempered(posterior, temperature: float):
    """A posterior (torch, rows images) sharpened (T < 1) or softened (T > 1): p^(1/T) renormalised,
    in log space so that T -> 0 keeps the argmax and tiny shares do not underflow first."""
    import torch

    if not temperature > 0:
        raise ValueError(f"a posterior temperature must be > 0, not {temperature}")
    return torch.softmax(posterior.double().clamp_min(1e-300).log() / temperature, dim=-1)


def summary(r: np.ndarray) -> str:
    return f"top-1 {np.mean(r == 1):.3f}  top-5 {np.mean(r <= 5):.3f}  median rank {np.median(r):.0f}"


def _margins(vlm, feats, texts, posteriors: bool = False) -> np.ndarray:
    t0, rows = time.time(), []
    for i in range(feats.shape[0]):
        p = vlm.score(feats[i:i + 1], [texts], posteriors=posteriors)[0].p_yes.double().clamp(1e-12, 1 - 1e-12)
        rows.append((p.log() - (1 - p).log()).numpy())
        print(f"  image {i + 1}/{feats.shape[0]}: {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return np.stack(rows) if rows else np.zeros((0, len(texts)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a trained run directory (or assets/default-checkpoint)")
    ap.add_argument("--images", type=int, default=20, help="test images ranked")
    ap.add_argument("--val-images", type=int, default=12, help="validation images for the per-leaf mean")
    ap.add_argument("--temperatures", default="", metavar="T,T",
                    help="probe-posterior runs: also rank every leaf with the posterior the LM reads at these "
                         "temperatures (p^(1/T) renormalised; T < 1 sharpens)")
    ap.add_argument("--save", metavar="NPZ",
                    help="also write every answer here (log-odds margins of the leaves for the test, val and "
                         "content-free images, of the categories for the test images), the probe's posterior "
                         "(empty for a feature-input run), the truth and the leaf and category names")
    args = ap.parse_args(argv)
    try:
        temperatures = [float(t) for t in args.temperatures.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--temperatures takes numbers separated by commas, not {args.temperatures!r}")
    if any(not t > 0 for t in temperatures):
        ap.error(f"--temperatures must all be > 0, not {args.temperatures!r}")

    import torch

    from bench.common import concept_posterior, trained_run
    from core import evaluate, features, questions
    from core.models.encoders import pool_tokens

    info, vlm, data = trained_run(args.run)
    if temperatures and getattr(vlm.projector, "posterior", None) is None:      # before minutes of scoring
        raise SystemExit(f"--temperatures needs a probe-posterior run; {info.run_id} reads features")
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
    categories = sorted(ds.categories)
    m_cat = _margins(vlm, ft, [questions.question_text(ds.categories[c].label) for c in categories])
    membership = np.array([[c in ds.concepts[leaf].categories for c in categories] for leaf in concepts], float)
    truth = np.array([concepts.index(questions.shown_concept(im.concept, data.deprivation.labeling)) for im in test])
    posterior = concept_posterior(vlm, ft)           # None for a feature-input run
    # what the projector reads past its probe: the tempered posterior, after the feature for a
    # features+posterior run
    pooled = pool_tokens(ft.float(), 1).to(vlm.device) if getattr(vlm.projector, "keep_features", False) else None

    def read_at(t: float) -> torch.Tensor:
        post = tempered(posterior, t).float()[:, None, :]
        return post if pooled is None else torch.cat([pooled, post], -1)

    m_tempered = {t: _margins(vlm, read_at(t), texts, posteriors=True) for t in temperatures}
    posterior = None if posterior is None else posterior.double().cpu().numpy()
    if args.save:
        np.savez(args.save, test=m_test, val=m_val, null=m_null, category=m_cat, truth=truth,
                 concepts=np.array(concepts), categories=np.array(categories),
                 posterior=np.zeros((0, len(concepts))) if posterior is None else posterior,
                 **{f"test_at_temperature_{t:g}": m for t, m in m_tempered.items()})
    print(f"{info.run_id}: every leaf ({len(concepts)}) asked of {len(test)} test images")
    scored = {**methods(m_test, m_val, m_null), **with_categories(m_test, m_cat, membership)}
    for name, scores in scored.items():
        print(f"  {name:<48} {summary(ranks(scores, truth))}")
    if posterior is not None:
        split = probe_split(posterior, ranks(m_test, truth), truth)
        print(f"  {'the probe the LM reads (its posterior)':<48} {summary(split['probe'])}")
        for t, m in m_tempered.items():
            print(f"  {f'raw P(yes), posterior read at temperature {t:g}':<48} {summary(ranks(m, truth))}")
        print("  true leaf in the top 5 of (images; median share of the posterior: the true leaf's, the largest):")
        for name, g in split["groups"].items():
            shares = (f"{g['true share']:.2f}, {g['largest share']:.2f}" if g["images"] else "-")
            print(f"    {name:<12} {g['images']:>4}   {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
