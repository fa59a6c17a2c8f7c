"""`python -m bench.distinct_ranking RUN [--concepts N] [--out rows.json]`: the every-leaf ranking
(what Predict shows) on one test image per concept -- each concept's first test image by image id,
the integration test's selection (tests/integration/test_shipped_checkpoint.py asks 20 of them,
evenly spaced over the sorted concepts) -- for N concepts evenly spaced the same way (default: every
concept with a test image). So the issue's 20-image bar (true leaf in the top 5 on >= 80 %) can be
read against a larger sample of the same kind, and beside `evaluate --leaf-ranking 40`, which
spaces its images by id (so by no concept order, several per concept possible).

Prints top-1 / top-5 / median rank with Wilson 95 % intervals, for all N and for the test's 20;
--out keeps the per-image rows (rewritten every 25 images, so a stopped run keeps what it ranked).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from tqdm import tqdm

from bench.common import trained_run

TEST_IMAGES = 20          # the 20 images, asked by tests/integration/test_shipped_checkpoint.py


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def summary(rows: list[dict]) -> str:
    n = len(rows)
    ranks = sorted(r["rank"] for r in rows)
    parts = []
    for k in (1, 5):
        hits = sum(r <= k for r in ranks)
        lo, hi = wilson(hits, n)
        parts.append(f"top-{k} {hits}/{n} = {hits / n:.3f} [{lo:.3f}, {hi:.3f}]")
    return ", ".join(parts) + f", median rank {ranks[n // 2]}"


@torch.no_grad()
def main(argv=None) -> None:
    from core.evaluate import evenly_spaced, first_image_per_concept, ranked_rows

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run id or directory (the shipped checkpoint: assets/default-checkpoint)")
    ap.add_argument("--concepts", type=int, default=None, help="concepts evenly spaced (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="write the per-image rows here (JSON)")
    args = ap.parse_args(argv)
    info, vlm, data = trained_run(args.run)
    by_concept = first_image_per_concept(data.images("test"))
    concepts = sorted(by_concept)
    chosen = evenly_spaced(concepts, args.concepts)
    in_test = set(evenly_spaced(concepts, TEST_IMAGES))
    vocabulary = len(data.dataset.concepts)
    items = [by_concept[c] for c in chosen]
    rows = []
    for row in tqdm(ranked_rows(vlm, items, data.dataset, data.deprivation.labeling), total=len(items),
                    desc="every leaf per image"):      # core.evaluate.leaf_ranking's rows, on this selection
        rows.append({**row, "in_test": row["concept"] in in_test})
        if args.out and (len(rows) % 25 == 0 or len(rows) == len(items)):
            args.out.write_text(json.dumps({"run_id": info.run_id, "vocabulary": vocabulary, "rows": rows}))
    print(f"{info.run_id}, one test image per concept, every leaf of {vocabulary} asked:")
    print(f"  {len(rows)} concepts: {summary(rows)}")
    print(f"  the integration test's {TEST_IMAGES}: {summary([r for r in rows if r['in_test']])}")


if __name__ == "__main__":
    main()
