"""Predict speed: upload -> chain on one image with a trained checkpoint (the shipped default).

cold: the first Predict in a process, from loading the checkpoint (encoder, LM, projector) to the
      chain and the ranked leaves. The app pays this once per server, then caches the models.
warm: the median of the next images' Predicts, each a different test image (no feature reuse).

Predict asks every leaf of the vocabulary and every category and chain node; each question is a
full pass of its own tokens through the LM (the image's prefix runs once). A reduced-precision LM
would cut that cost, so the bench also times the same Predict under bf16 autocast on the CPU and
prints the largest change in P(yes) and how often the top-5 leaves stay the same. Predict stays
fp32 on the CPU unless those answers stay within MAX_ABS_DIFF of fp32.
"""
from __future__ import annotations

import statistics
import time

import torch

from core import rundata, runs
from core.predict import Predictor

MAX_ABS_DIFF = 0.02     # the largest |dP(yes)| a faster inference path may change an answer by


def _answers(pred) -> dict[str, float]:
    """Every P(yes) a Prediction shows: its leaves, categories and chain nodes, by name."""
    out = {f"leaf:{x['concept']}": x["p_yes"] for x in pred.leaves}
    out |= {f"category:{x['category']}": x["p_yes"] for x in pred.categories}
    out |= {f"node:{n.synset}": n.p_yes for chain in pred.chains for n in chain}
    return out


def run(run_dir, images: int = 4, device: str = "cpu", compare_bf16: bool = True) -> dict:
    """Cold and warm upload -> chain times for `images` distinct test images of the run's dataset."""
    if images < 2:
        raise ValueError(f"images must be >= 2 (one cold, at least one warm), got {images}")
    info = runs.load_run(run_dir)
    data = rundata.prepare(info.config)
    by_concept = {}
    for im in sorted(data.images("test"), key=lambda im: im.id):
        by_concept.setdefault(im.concept, im)
    items = list(by_concept.values())[:images]

    t0 = time.perf_counter()
    predictor = Predictor.load(run_dir, device)
    first = predictor.predict(items[0].path)
    cold = time.perf_counter() - t0
    warm_preds, warm = [], []
    for im in items[1:]:
        t = time.perf_counter()
        warm_preds.append(predictor.predict(im.path, top_k=len(predictor.concepts)))
        warm.append(time.perf_counter() - t)
    out = {"run_id": info.checkpoint.get("run_id", info.run_id), "device": str(predictor.device), "images": len(items),
           "leaves": len(predictor.concepts), "categories": len(predictor.categories),
           "questions_per_image": len(predictor.concepts) + len(predictor.categories)
           + len({n.synset for chain in first.chains for n in chain}),
           "cold_seconds": cold, "warm_seconds": statistics.median(warm), "warm_all": warm}
    if compare_bf16 and predictor.device.type == "cpu":
        low, low_t = [], []
        for im in items[1:]:
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low.append(predictor.predict(im.path, top_k=len(predictor.concepts)))
            low_t.append(time.perf_counter() - t)
        diffs, same_top5 = [], 0
        for a, b in zip(warm_preds, low):
            pa, pb = _answers(a), _answers(b)
            diffs.append(max(abs(pa[k] - pb[k]) for k in pa.keys() & pb.keys()))
            same_top5 += [x["concept"] for x in a.leaves[:5]] == [x["concept"] for x in b.leaves[:5]]
        out["bf16"] = {"warm_seconds": statistics.median(low_t),
                       "speedup": statistics.median(warm) / statistics.median(low_t),
                       "max_abs_diff_p_yes": max(diffs), "same_top5": same_top5 / len(low),
                       "within_limit": max(diffs) <= MAX_ABS_DIFF}
    return out


def lines(r: dict) -> list[str]:
    out = [f"predict (upload -> chain), run {r['run_id']} on {r['device']}, {r['questions_per_image']} "
           f"questions per image ({r['leaves']} leaves, {r['categories']} categories, chain nodes):",
           f"  cold (load + first) {r['cold_seconds']:8.1f} s",
           f"  warm (median of {r['images'] - 1}) {r['warm_seconds']:6.1f} s per image"]
    if "bf16" in r:
        b = r["bf16"]
        verdict = "within" if b["within_limit"] else "outside"
        out.append(f"  bf16 autocast      {b['warm_seconds']:8.1f} s per image ({b['speedup']:.2f}x), max |dP(yes)| "
                   f"{b['max_abs_diff_p_yes']:.3f} ({verdict} {MAX_ABS_DIFF}), same top-5 leaves "
                   f"{b['same_top5']:.0%}" + ("" if b["within_limit"] else ": Predict stays fp32"))
    return out
