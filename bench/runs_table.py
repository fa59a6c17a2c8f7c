"""`python -m bench.runs_table [RUN ...]`: one markdown row per training run, for comparing recipes.

Per run: concepts, images (and in how many art styles: the default set had five styles until
2026-12-02, eleven since), image tokens, the precision it trained in, seed, the options that differ from the
defaults, training minutes, validation leaf accuracy per epoch (the learning curve), and from its
evaluations the test leaf accuracy, per-concept leaf F1, seen per-category macro-F1 and, where
`taxolens evaluate RUN --split S --leaf-ranking N` was run, the every-leaf ranking (top-5 / median
rank). With no RUN, every run under the runs directory.
"""
from __future__ import annotations

import argparse
import sys

from core import runs
from core.config import TrainConfig

SHOWN = {"max_concepts", "image_tokens", "precision", "seed", "dataset", "device"}   # own columns


def _f(value) -> str:
    """A metric cell: 3 decimals, or – where it is undefined (no seen hypernym pair at r = 1)."""
    return "–" if value is None else f"{value:.3f}"


def row(info: runs.RunInfo) -> str:
    ck, cfg = info.checkpoint, info.config
    epochs = ck.get("metrics") or []
    defaults = TrainConfig().to_dict()
    other = ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k not in SHOWN and v != defaults[k])
    minutes = sum(m.get("train_seconds") or 0 for m in epochs) / 60
    curve = " ".join(f"{m['val_leaf_accuracy']:.2f}" for m in epochs if m.get("val_leaf_accuracy") is not None)
    summary = ck.get("dataset", {}).get("summary", {})
    images = f"{summary['images']} ({len(summary.get('styles', []))} styles)" if "images" in summary else "–"
    cells = [info.run_id, str(cfg.max_concepts or summary.get("concepts", "all")), images,
             str(cfg.image_tokens), ck.get("precision", "fp32"), str(cfg.seed), other or "–", f"{minutes:.1f}", curve]
    test = runs.read_json(runs.eval_dir(info.path, "test") / runs.METRICS_JSON) \
        if (runs.eval_dir(info.path, "test") / runs.METRICS_JSON).is_file() else None
    if test:
        cells += [_f(test["leaf"]["accuracy"]), _f(test["leaf"]["concept_macro_f1"]),
                  _f(test["hypernym"]["seen"]["category_macro_f1"])]
    else:
        cells += ["–"] * 3
    ranked = []
    for split in runs.SPLITS:
        r = runs.load_ranking(info.path, split, stale=True)
        if r:
            stale = "" if runs.ranking_is_current(info.path, r, split) else " (of an earlier checkpoint)"
            ranked.append(f"{split} {r['images']}: {r['top5']:.2f} / {r['median_rank']} of {r['vocabulary']}{stale}")
    return "| " + " | ".join(cells + ["; ".join(ranked) or "–"]) + " |"


HEADER = ("| run | concepts | images | k | precision | seed | other options | train min | val leaf acc per epoch | "
          "test leaf acc | test leaf F1 (per concept) | test seen category macro-F1 | ranking top-5 / median rank |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", metavar="RUN", help="run ids or directories (default: all)")
    args = ap.parse_args(argv)
    found = [runs.load_run(r) for r in args.runs] if args.runs else \
        [i for i in runs.list_runs() if i.checkpoint]
    print(HEADER)
    for info in found:
        print(row(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
