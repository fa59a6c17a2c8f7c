"""Predict speed: upload -> chain on one image with a trained checkpoint (the shipped default).

cold: the first Predict in a process, from loading the checkpoint (encoder, LM, projector) to the
      chain and the ranked leaves. The app pays this once per server, then caches the models.
warm: the median of the next images' Predicts, each a different test image (no feature reuse).

Predict asks every category and chain node and, on a CPU with native bf16 matmul, ranks every leaf
with a bf16 copy of the LM and scores only the top core.predict.SHORTLIST leaves in fp32 (each
question is a pass of its own tokens through the LM; the image's prefix runs once). The bench
times that against full fp32 scoring of every leaf (`predict(full=True)`), alternating image by
image, and checks that both show the same top-5 leaves and chain, and the largest |dP(yes)| between
the answers they both show (bench/predict_shortlist.py measures the agreement on more images).
"""
from __future__ import annotations

import statistics
import time


from core import rundata, runs
from core.predict import Predictor

MAX_ABS_DIFF = 0.02     # the largest |dP(yes)| a faster inference path may change an answer by


def _answers(pred) -> dict[str, float]:
    """Every P(yes) a Prediction shows: its leaves, categories and chain nodes, by name."""
    out = {f"leaf:{x['concept']}": x["p_yes"] for x in pred.leaves}
    out |= {f"category:{x['category']}": x["p_yes"] for x in pred.categories}
    out |= {f"node:{n.synset}": n.p_yes for chain in pred.chains for n in chain}
    return out


def run(run_dir, images: int = 4, device: str = "cpu", compare_full: bool = True) -> dict:
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
    warm, full_t, diffs, same = [], [], [], 0
    compare = compare_full and bool(predictor.shortlist)
    for im in items[1:]:                 # the default Predict and, alternating, full fp32 scoring
        t = time.perf_counter()
        a = predictor.predict(im.path)
        warm.append(time.perf_counter() - t)
        if compare:
            t = time.perf_counter()
            b = predictor.predict(im.path, full=True)
            full_t.append(time.perf_counter() - t)
            pa, pb = _answers(a), _answers(b)
            diffs.append(max(abs(pa[k] - pb[k]) for k in pa.keys() & pb.keys()))
            same += ([x["concept"] for x in a.leaves] == [x["concept"] for x in b.leaves]
                     and [[n.synset for n in c] for c in a.chains] == [[n.synset for n in c] for c in b.chains])
    out = {"run_id": info.checkpoint.get("run_id", info.run_id), "device": str(predictor.device), "images": len(items),
           "leaves": len(predictor.concepts), "categories": len(predictor.categories),
           "questions_per_image": len(predictor.concepts) + len(predictor.categories)
           + len({n.synset for chain in first.chains for n in chain}),
           "cold_seconds": cold, "warm_seconds": statistics.median(warm), "warm_all": warm}
    if compare:
        out["shortlist"] = {"size": predictor.shortlist, "full_warm_seconds": statistics.median(full_t),
                            "speedup": statistics.median(full_t) / statistics.median(warm),
                            "max_abs_diff_p_yes": max(diffs), "same_top5_and_chain": same / len(warm)}
    return out


def lines(r: dict) -> list[str]:
    out = [f"predict (upload -> chain), run {r['run_id']} on {r['device']}, {r['questions_per_image']} "
           f"questions per image ({r['leaves']} leaves, {r['categories']} categories, chain nodes):",
           f"  cold (load + first) {r['cold_seconds']:8.1f} s",
           f"  warm (median of {r['images'] - 1}) {r['warm_seconds']:6.1f} s per image"]
    if "shortlist" in r:
        b = r["shortlist"]
        out.append(f"  full fp32 scoring  {b['full_warm_seconds']:8.1f} s per image (every leaf); the bf16 "
                   f"shortlist of {b['size']} is {b['speedup']:.2f}x faster, same top-5 leaves and chain on "
                   f"{b['same_top5_and_chain']:.0%} of images, max |dP(yes)| of shown answers "
                   f"{b['max_abs_diff_p_yes']:.1e} (limit {MAX_ABS_DIFF})")
    return out
