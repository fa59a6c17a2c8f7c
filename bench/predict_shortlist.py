"""`python -m bench.predict_shortlist [RUN] [--images 50]`: does Predict's bf16 shortlist give the
answers full fp32 scoring gives?

Predict (core.predict) on a CPU with native bf16 ranks every leaf with a bf16 copy of the LM, then
scores only the top SHORTLIST of them in fp32. Its top 5 and chain equal full scoring's exactly when
full scoring's top 5 lie inside the bf16 top M. For evenly spaced test images (one per concept) this
asks every leaf both ways and prints, for several M, the share of images where that holds (the
chain follows the best leaf, so it holds for the chain too), the worst bf16 rank of a full-scoring
top-5 leaf, the largest |dP(yes)| of the bf16 pass, and the time of each pass.

`--ranking-question short` ("Is there a dog?") or `bare` ("Is there a dog") asks the bf16 pass a
shorter question than the one scored and shown ("Is there a dog in the image?"): fewer tokens per
leaf, so a cheaper pass, but not the question the projector was trained on.
"""
from __future__ import annotations

import argparse
import statistics
import time

from core import paths, rundata, runs
from core.predict import SHORTLIST, Predictor
from core.questions import question_text

SIZES = tuple(sorted({5, 10, SHORTLIST, 40, 60, 100}))
TAIL = " in the image?"
RANKING_QUESTIONS = ("full", "short", "bare")


def ranking_question(question: str, kind: str = "full") -> str:
    """The question the bf16 pass asks in place of `question` (question_text's form)."""
    if kind == "full":
        return question
    if kind not in RANKING_QUESTIONS:
        raise ValueError(f"unknown ranking question {kind!r}; choose from {', '.join(RANKING_QUESTIONS)}")
    if not question.endswith(TAIL):
        raise ValueError(f"{question!r} does not end in {TAIL!r}")
    return question[:-len(TAIL)] + ("?" if kind == "short" else "")


def _mean_suffix_tokens(p: Predictor, texts: list[str]) -> float:
    """Tokens per question after the shared image prefix (what each leaf costs the LM)."""
    return statistics.mean(len(p.vlm.lm.tokens(p.vlm.prompt.suffix(t))) for t in texts)


def run(run_dir, images: int = 50, ranking: str = "full") -> dict:
    info = runs.load_run(run_dir)
    data = rundata.prepare(info.config)
    by_concept: dict = {}
    for im in sorted(data.images("test"), key=lambda im: im.id):
        by_concept.setdefault(im.concept, im)
    pool = list(by_concept.values())
    items = [pool[round(i * len(pool) / images)] for i in range(min(images, len(pool)))]
    p = Predictor.load(run_dir, "cpu")
    texts = [question_text(p.dataset.concepts[c].label) for c in p.concepts]
    asked = [ranking_question(t, ranking) for t in texts]
    p.quick_p_yes(p.features(items[0].path), asked[:2])                 # builds the bf16 copy, untimed
    worst, diffs, t_quick, t_exact = [], [], [], []
    inside = {m: 0 for m in SIZES}
    for n, im in enumerate(items):
        feats = p.features(im.path)
        t = time.perf_counter()
        quick = p.quick_p_yes(feats, asked)
        t_quick.append(time.perf_counter() - t)
        t = time.perf_counter()
        exact = p._p_yes(feats, texts)
        t_exact.append(time.perf_counter() - t)
        order_q = sorted(range(len(texts)), key=lambda i: (-quick[i], p.concepts[i]))
        rank_q = {i: r for r, i in enumerate(order_q)}
        top5 = sorted(range(len(texts)), key=lambda i: (-exact[i], p.concepts[i]))[:5]
        worst.append(max(rank_q[i] for i in top5) + 1)
        for m in SIZES:
            inside[m] += worst[-1] <= m
        diffs.append(max(abs(a - b) for a, b in zip(quick, exact)))
        print(f"  image {n + 1}/{len(items)}: worst bf16 rank of the fp32 top 5 = {worst[-1]}", flush=True)
    return {"run_id": info.run_id, "images": len(items), "leaves": len(texts), "ranking_question": ranking,
            "suffix_tokens": {"scored": _mean_suffix_tokens(p, texts), "ranked": _mean_suffix_tokens(p, asked)},
            "share_inside": {m: inside[m] / len(items) for m in SIZES}, "worst_rank": worst,
            "max_abs_diff_p_yes": max(diffs), "median_abs_diff_max": statistics.median(diffs),
            "quick_seconds": statistics.median(t_quick), "fp32_seconds": statistics.median(t_exact)}


def lines(r: dict) -> list[str]:
    out = [f"bf16 shortlist vs full fp32 scoring, run {r['run_id']}: {r['images']} test images "
           f"(one per concept), {r['leaves']} leaves each",
           f"  bf16 pass asks the {r['ranking_question']} question: {r['suffix_tokens']['ranked']:.1f} suffix "
           f"tokens per leaf against {r['suffix_tokens']['scored']:.1f} scored",
           f"  every leaf, bf16 copy {r['quick_seconds']:6.2f} s per image; fp32 {r['fp32_seconds']:6.2f} s "
           f"({r['fp32_seconds'] / r['quick_seconds']:.2f}x)",
           f"  bf16 vs fp32 P(yes): largest |dP| {r['max_abs_diff_p_yes']:.3f}, median of per-image "
           f"largest {r['median_abs_diff_max']:.3f}",
           f"  worst bf16 rank of an fp32 top-5 leaf: max {max(r['worst_rank'])}, median "
           f"{statistics.median(r['worst_rank'])}"]
    for m, share in r["share_inside"].items():
        mark = "  <- core.predict.SHORTLIST" if m == SHORTLIST else ""
        out.append(f"  shortlist {m:4d}: same top 5 and chain as full scoring on {share:.1%} of images{mark}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default=str(paths.SHIPPED_CHECKPOINT),
                    help="a trained run directory (default: the shipped checkpoint)")
    ap.add_argument("--images", type=int, default=50, help="test images, one per concept, evenly spaced")
    ap.add_argument("--ranking-question", choices=RANKING_QUESTIONS, default="full",
                    help="what the bf16 pass asks: the scored question, or it ending at '?' after "
                         "the name (short) or at the name (bare)")
    args = ap.parse_args(argv)
    print("\n".join(lines(run(args.run, args.images, args.ranking_question))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
