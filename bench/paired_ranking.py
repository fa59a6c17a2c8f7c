"""`python -m bench.paired_ranking RUN_A RUN_B [--images 100] [--split test]`: which of two runs ranks
the true leaf higher, image by image?

The every-leaf ranking (what Predict shows) of 40 images cannot tell two runs apart: a 0.075
difference in top-5 is 3 images. Asking both runs every leaf of the same evenly spaced images
pairs them: for each image, does B rank the image's labelled concept above, below or level with A?
A two-sided sign test over the images that differ says how likely that split is if neither run is
better. Both runs must be trained on the same dataset and labeling (the images and their true
leaves are then the same). Neither run's recorded ranking.json is touched. Scoring is each run's
own fp32 scoring, one image's questions at a time (about 12 s per image and run for the default
385-concept vocabulary on 2 quiet cores).
"""
from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact binomial sign test p-value for `better` vs `worse` (ties dropped)."""
    n = better + worse
    if n == 0:
        return 1.0
    k = max(better, worse)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n)


def paired(rows_a: list[dict], rows_b: list[dict]) -> dict:
    """Per-image comparison of two leaf rankings' rows (core.evaluate.leaf_ranking's "rows")."""
    rank_a = {r["image_id"]: (r["labelled_concept"], r["rank"]) for r in rows_a}
    pairs = []
    for r in rows_b:
        if r["image_id"] not in rank_a:
            continue
        concept_a, a = rank_a[r["image_id"]]
        if concept_a != r["labelled_concept"]:
            raise ValueError(f"image {r['image_id']} is labelled {concept_a!r} in one run and "
                             f"{r['labelled_concept']!r} in the other: the runs use different labelings")
        pairs.append((a, r["rank"]))
    if not pairs:
        raise ValueError("the two rankings share no image")
    better = sum(b < a for a, b in pairs)
    worse = sum(b > a for a, b in pairs)
    return {"images": len(pairs), "b_higher": better, "b_lower": worse, "same": len(pairs) - better - worse,
            "median_rank_change": statistics.median(b - a for a, b in pairs),
            "sign_test_p": sign_test(better, worse)}


def summary(result: dict) -> str:
    return (f"{result['top1']:.3f} top-1  {result['top5']:.3f} top-5  median rank {result['median_rank']}"
            f"  ({result['images']} images, {result['vocabulary']} leaves)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a", help="a trained run directory (the reference)")
    ap.add_argument("run_b", help="a trained run directory (the one compared with it)")
    ap.add_argument("--images", type=int, default=100, help="evenly spaced images of the split")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = ap.parse_args(argv)

    from tqdm import tqdm
    from core.evaluate import leaf_ranking

    results = []
    for run in (args.run_a, args.run_b):
        with tqdm(total=1.0, desc=Path(run).name, bar_format="{desc}: {percentage:3.0f}% {postfix}") as bar:
            def progress(frac, message, bar=bar):
                bar.n = frac
                bar.set_postfix_str(message)
            results.append(leaf_ranking(run, args.split, images=args.images, progress=progress, write=False))
    for name, result in zip("AB", results):
        print(f"{name} {result['run_id']}: {summary(result)}")
    p = paired(results[0]["rows"], results[1]["rows"])
    print(f"paired on {p['images']} images: B ranks the true leaf higher on {p['b_higher']}, lower on "
          f"{p['b_lower']}, the same on {p['same']}; median rank change {p['median_rank_change']:+g}; "
          f"two-sided sign test p = {p['sign_test_p']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
