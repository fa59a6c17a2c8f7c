"""`python -m bench.predict_shortlist [RUN] [--images 50] [--ranker probe|bf16]`: does Predict's leaf
shortlist give the answers full fp32 scoring gives?

Predict (core.predict) on a CPU with native bf16 ranks every leaf with a bf16 copy of the LM, then
scores only the top SHORTLIST of them in fp32. Its top 5 and chain equal full scoring's exactly when
full scoring's top 5 lie inside the ranker's top M. For evenly spaced test images (one per concept)
this ranks every leaf both ways and prints, for several M, the share of images where that holds (the
chain follows the best leaf, so it holds for the chain too), the worst ranker rank of a
full-scoring top-5 leaf, the largest |dP(yes)| of the bf16 pass, and the time of each pass.

`--ranker probe` ranks with the concept probe a posterior-input projector carries (its softmax over
the run's concepts: one small matmul) instead of the bf16 pass: a shortlist Predict would get for
free, measured here and not adopted (docs/speed.md: the leaf shortlist).

`--ranking-question short` ("Is there a dog?") or `bare` ("Is there a dog") asks the bf16 pass a
shorter question than the one scored and shown ("Is there a dog in the image?"): fewer tokens per
leaf, so a cheaper pass, but not the question the projector was trained on.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.common import concept_posterior
from core import paths, rundata, runs
from core.predict import SHORTLIST, Predictor
from core.questions import question_text, shown_concept

SIZES = tuple(sorted({5, 10, 15, SHORTLIST, 30, 40, 60, 100, 200}))
RANKERS = ("bf16", "probe")
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


def probe_posterior(p: Predictor, feats: torch.Tensor) -> list[float]:
    """P(concept) from the projector's concept probe on the image's pooled feature, one per leaf in
    p.concepts order (the probe's columns are the run's concepts, sorted)."""
    posterior = concept_posterior(p.vlm, feats)
    if posterior is None or posterior.shape[-1] != len(p.concepts):
        raise ValueError(f"run {p.info.run_id} has no concept probe over its {len(p.concepts)} concepts "
                         f"(its projector reads features, not posteriors)")
    return posterior[0].tolist()


def shortlist_rank(exact: list[float], ranked: list[int], names: list[str], truth: int, m: int | None) -> int:
    """The true leaf's rank by fp32 P(yes) (`exact`) among the first m leaves of the ranker's order
    `ranked` (all when m is None); len(names) + 1 when the shortlist leaves it out. Ties go by name,
    as in Predict."""
    keep = ranked[:m] if m else ranked
    if truth not in keep:
        return len(names) + 1
    return 1 + sum((-exact[i], names[i]) < (-exact[truth], names[truth]) for i in keep)


def run(run_dir, images: int = 50, ranking: str = "full", ranker: str = "bf16") -> dict:
    """ranker: "bf16" (Predict's shortlist) or "probe" (a posterior-input run's concept probe)."""
    if ranker not in RANKERS:
        raise ValueError(f"unknown ranker {ranker!r}; choose from {', '.join(RANKERS)}")
    if ranker == "probe" and ranking != "full":
        raise ValueError("--ranking-question is what a bf16 pass asks; the probe asks no question")
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

    def rank_all(feats):
        return probe_posterior(p, feats) if ranker == "probe" else p.quick_p_yes(feats, asked)
    rank_all(p.features(items[0].path))                 # untimed: the bf16 ranker builds its copy here
    worst, diffs, t_quick, t_exact = [], [], [], []
    inside = {m: 0 for m in SIZES}
    true_rank: dict = {m: [] for m in (*SIZES, None)}
    for n, im in enumerate(items):
        feats = p.features(im.path)
        t = time.perf_counter()
        quick = rank_all(feats)
        t_quick.append(time.perf_counter() - t)
        t = time.perf_counter()
        exact = p._p_yes(feats, texts)
        t_exact.append(time.perf_counter() - t)
        order_q = sorted(range(len(texts)), key=lambda i: (-quick[i], p.concepts[i]))
        rank_q = {i: r for r, i in enumerate(order_q)}
        top5 = sorted(range(len(texts)), key=lambda i: (-exact[i], p.concepts[i]))[:5]
        worst.append(max(rank_q[i] for i in top5) + 1)
        truth = p.concepts.index(shown_concept(im.concept, data.deprivation.labeling))   # as evaluation ranks it
        for m in SIZES:
            inside[m] += worst[-1] <= m
            true_rank[m].append(shortlist_rank(exact, order_q, p.concepts, truth, m))
        true_rank[None].append(shortlist_rank(exact, order_q, p.concepts, truth, None))
        if ranker == "bf16":
            diffs.append(max(abs(a - b) for a, b in zip(quick, exact)))
        print(f"  image {n + 1}/{len(items)}: worst {ranker} rank of the fp32 top 5 = {worst[-1]}", flush=True)
    return {"run_id": info.run_id, "images": len(items), "leaves": len(texts), "ranker": ranker,
            "ranking_question": ranking,
            "suffix_tokens": {"scored": _mean_suffix_tokens(p, texts), "ranked": _mean_suffix_tokens(p, asked)},
            "share_inside": {m: inside[m] / len(items) for m in SIZES}, "worst_rank": worst,
            "true_leaf": {m: {"top1": sum(r <= 1 for r in ranks) / len(items),
                              "top5": sum(r <= 5 for r in ranks) / len(items)}
                          for m, ranks in true_rank.items()},
            "max_abs_diff_p_yes": max(diffs) if diffs else None,
            "median_abs_diff_max": statistics.median(diffs) if diffs else None,
            "quick_seconds": statistics.median(t_quick), "fp32_seconds": statistics.median(t_exact)}


def lines(r: dict) -> list[str]:
    ranker = r.get("ranker", "bf16")
    what = "the concept probe" if ranker == "probe" else "bf16 copy"
    out = [f"{ranker} shortlist vs full fp32 scoring, run {r['run_id']}: {r['images']} test images "
           f"(one per concept), {r['leaves']} leaves each"]
    if ranker == "bf16":
        out.append(f"  bf16 pass asks the {r['ranking_question']} question: {r['suffix_tokens']['ranked']:.1f} "
                   f"suffix tokens per leaf against {r['suffix_tokens']['scored']:.1f} scored")
    ratio = r["fp32_seconds"] / r["quick_seconds"]
    times = f"{ratio:.2f}x" if ratio < 100 else f"{ratio:.0f}x"
    out.append(f"  every leaf, {what} {r['quick_seconds']:8.4f} s per image; fp32 {r['fp32_seconds']:6.2f} s "
               f"({times})")
    if r["max_abs_diff_p_yes"] is not None:
        out.append(f"  bf16 vs fp32 P(yes): largest |dP| {r['max_abs_diff_p_yes']:.3f}, median of per-image "
                   f"largest {r['median_abs_diff_max']:.3f}")
    out.append(f"  worst {ranker} rank of an fp32 top-5 leaf: max {max(r['worst_rank'])}, median "
               f"{statistics.median(r['worst_rank'])}")
    every = r["true_leaf"][None]
    out.append(f"  the image's own leaf among every leaf by fp32 P(yes): top-1 {every['top1']:.1%}, top-5 {every['top5']:.1%}")
    for m, share in r["share_inside"].items():
        mark = "  <- core.predict.SHORTLIST" if m == SHORTLIST and ranker == "bf16" else ""
        own = r["true_leaf"][m]
        out.append(f"  shortlist {m:4d}: same top 5 and chain as full scoring on {share:.1%} of images; own leaf "
                   f"top-1 {own['top1']:.1%}, top-5 {own['top5']:.1%}{mark}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", default=str(paths.SHIPPED_CHECKPOINT),
                    help="a trained run directory (default: the shipped checkpoint)")
    ap.add_argument("--images", type=int, default=50, help="test images, one per concept, evenly spaced")
    ap.add_argument("--ranking-question", choices=RANKING_QUESTIONS, default="full",
                    help="what the bf16 pass asks: the scored question, or it ending at '?' after "
                         "the name (short) or at the name (bare)")
    ap.add_argument("--ranker", choices=RANKERS, default="bf16",
                    help="what ranks every leaf: a bf16 copy of the LM (Predict's) or the concept probe "
                         "of a posterior-input run's projector")
    args = ap.parse_args(argv)
    print("\n".join(lines(run(args.run, args.images, args.ranking_question, args.ranker))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
