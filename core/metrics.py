"""Yes/no metrics: confusion counts, accuracy, F1, and the per-question-table summary.

Pure functions over plain Python values (no torch, no I/O) so each one is checked against
hand-computed examples. The positive class of `f1` is the answer "yes"; since that F1 rewards
answering "yes" more often, every group also reports accuracy, the yes rate, and the mean of the
yes- and no-class F1 (`macro_f1_yes_no`), which does not. A metric over an empty set, or an
F1 with no positive targets and no positive predictions, is undefined and returned as None rather
than a made-up 0 or 1 (e.g. unseen F1 at ablation rate 0, where nothing is unseen).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Mapping, Sequence

UNDECIDED_MASS = 0.5  # candidate mass (P(" Yes") + P(" No")) below this: the LM mostly wants another word


def confusion(targets: Sequence[bool], preds: Sequence[bool]) -> dict[str, int]:
    """Counts of true/false positives/negatives (positive = yes)."""
    if len(targets) != len(preds):
        raise ValueError(f"targets and predictions differ in length ({len(targets)} vs {len(preds)})")
    tp = sum(1 for t, p in zip(targets, preds) if t and p)
    fp = sum(1 for t, p in zip(targets, preds) if not t and p)
    fn = sum(1 for t, p in zip(targets, preds) if t and not p)
    tn = len(targets) - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def accuracy(targets: Sequence[bool], preds: Sequence[bool]) -> float | None:
    c = confusion(targets, preds)
    n = len(targets)
    return (c["tp"] + c["tn"]) / n if n else None


def f1(targets: Sequence[bool], preds: Sequence[bool]) -> float | None:
    """Binary F1 of the yes class: 2TP / (2TP + FP + FN); None when there is no yes anywhere."""
    c = confusion(targets, preds)
    denom = 2 * c["tp"] + c["fp"] + c["fn"]
    return 2 * c["tp"] / denom if denom else None


def f1_no(targets: Sequence[bool], preds: Sequence[bool]) -> float | None:
    """F1 of the no class: 2TN / (2TN + FN + FP); None when there is no "no" anywhere."""
    return f1([not t for t in targets], [not p for p in preds])


def macro_f1_yes_no(targets: Sequence[bool], preds: Sequence[bool]) -> float | None:
    """Mean of the yes-class and no-class F1. Unlike the yes-class F1 it cannot be raised by
    answering "yes" more often: on balanced questions always-yes scores 0.33, not 0.67."""
    return mean_defined([f1(targets, preds), f1_no(targets, preds)])


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (macro averages skip categories where F1 is undefined)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def group_scores(targets: Sequence[bool], preds: Sequence[bool]) -> dict:
    """n, accuracy, F1, and confusion counts of one group of questions."""
    return {"n": len(targets), "accuracy": accuracy(targets, preds), "f1": f1(targets, preds),
            "f1_no": f1_no(targets, preds), "macro_f1_yes_no": macro_f1_yes_no(targets, preds),
            "yes_rate": sum(map(bool, preds)) / len(preds) if preds else None,
            "confusion": confusion(targets, preds)}


def summarize(rows: Sequence[Mapping]) -> dict:
    """Metrics of a scored question table.

    Each row needs: kind ("leaf" | "hypernym"), target (concept / category asked about),
    answer (bool, the label), pred (bool), seen (bool, hypernym rows), mass (float or None).
    Returns overall accuracy, leaf scores, hypernym scores (pooled F1, per-category F1 and their
    macro mean, and the same split into seen and unseen (concept, category) pairs), the
    undecided rate, and confusion counts.
    """
    for i, r in enumerate(rows):
        if r["kind"] not in ("leaf", "hypernym"):
            raise ValueError(f"row {i}: kind must be 'leaf' or 'hypernym', got {r['kind']!r}")

    def scores(sel: Sequence[Mapping]) -> dict:
        return group_scores([bool(r["answer"]) for r in sel], [bool(r["pred"]) for r in sel])

    leaf = [r for r in rows if r["kind"] == "leaf"]
    hyper = [r for r in rows if r["kind"] == "hypernym"]

    def hypernym_block(sel: Sequence[Mapping]) -> dict:
        by_cat: dict[str, list[Mapping]] = defaultdict(list)
        for r in sel:
            by_cat[r["target"]].append(r)
        per_category = {cat: scores(by_cat[cat]) for cat in sorted(by_cat)}
        block = scores(sel)
        block["macro_f1"] = mean_defined(s["f1"] for s in per_category.values())
        block["per_category"] = per_category
        return block

    hypernym = hypernym_block(hyper)
    hypernym["seen"] = hypernym_block([r for r in hyper if r["seen"]])
    hypernym["unseen"] = hypernym_block([r for r in hyper if not r["seen"]])

    masses = [r["mass"] for r in rows if r.get("mass") is not None]
    undecided = sum(1 for m in masses if m < UNDECIDED_MASS)
    overall = scores(rows)
    return {
        "n_questions": len(rows),
        "accuracy": overall["accuracy"],
        "leaf": scores(leaf),
        "hypernym": hypernym,
        "undecided_rate": undecided / len(masses) if masses else None,
        "mean_candidate_mass": sum(masses) / len(masses) if masses else None,
        "confusion": overall["confusion"],
    }


def headline(metrics: Mapping) -> dict[str, float | None]:
    """The few numbers shown in tables and per-epoch logs."""
    h = metrics["hypernym"]
    return {"accuracy": metrics["accuracy"], "leaf_f1": metrics["leaf"]["f1"],
            "hypernym_f1": h["f1"], "seen_f1": h["seen"]["f1"], "unseen_f1": h["unseen"]["f1"],
            "seen_accuracy": h["seen"]["accuracy"], "unseen_accuracy": h["unseen"]["accuracy"],
            "seen_macro_f1_yes_no": h["seen"]["macro_f1_yes_no"],
            "unseen_macro_f1_yes_no": h["unseen"]["macro_f1_yes_no"],
            "undecided_rate": metrics["undecided_rate"]}
