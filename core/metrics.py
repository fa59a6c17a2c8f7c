"""Yes/no metrics: confusion counts, accuracy, F1, and the per-question-table summary.

Pure functions over plain Python values (no torch, no I/O) so each one is checked against
hand-computed examples. The positive class of `f1` is the answer "yes"; since that F1 rewards
answering "yes" more often, every group also reports accuracy, the yes rate, and the mean of the
yes- and no-class F1 (`macro_f1_yes_no`), which does not. A metric over an empty set, or an
F1 with no positive targets and no positive predictions, is undefined and returned as None rather
than a made-up 0 or 1 (e.g. unseen F1 at ablation rate 0, where nothing is unseen).

The headline is the paper's: per-category yes/no macro-F1 (the macro F1 inside each category's
questions, then the mean over categories: `category_macro_f1`) for all / seen / unseen hypernym
questions, beside the same average for a fair coin on the same questions (`..._chance`), and for
leaf questions the macro F1 per target concept and its mean (`concept_macro_f1`).
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


def both_answers(targets: Sequence[bool]) -> bool:
    """Whether the questions hold a yes and a no: what a yes/no macro-F1 needs to be defined."""
    return any(targets) and not all(targets)


def macro_f1_yes_no(targets: Sequence[bool], preds: Sequence[bool]) -> float | None:
    """Mean of the yes-class and no-class F1. Unlike the yes-class F1 it cannot be raised by
    answering "yes" more often: on balanced questions always-yes scores 0.33, not 0.67.

    None unless the questions hold both answers (the paper's mean of the two F1s inside a
    category). With one answer alone, one of the two is undefined or a trivial 0: a category whose
    questions are all "no" gave always-no 1.0 and a single false yes 0.5, against a coin's 0.33."""
    if not both_answers(targets):
        return None
    return (f1(targets, preds) + f1_no(targets, preds)) / 2


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the defined values (macro averages skip categories where F1 is undefined)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def chance_f1s(yes_share: float) -> tuple[float, float]:
    """Expected (yes-class, no-class) F1 of a fair coin on questions whose yes share is π:
    precision π and recall 1/2 give π / (π + 0.5); likewise (1 − π) / (1.5 − π) for "no"."""
    p = float(yes_share)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a yes share must be in [0, 1], got {yes_share}")
    return p / (p + 0.5), (1.0 - p) / (1.5 - p)


def chance_macro_f1(targets: Sequence[bool]) -> float | None:
    """The yes/no macro-F1 a fair coin expects on these questions (0.5 when balanced); None where
    macro_f1_yes_no is (one answer alone)."""
    if not both_answers(targets):
        return None
    return sum(chance_f1s(sum(map(bool, targets)) / len(targets))) / 2


def group_scores(targets: Sequence[bool], preds: Sequence[bool]) -> dict:
    """n, accuracy, F1, and confusion counts of one group of questions."""
    return {"n": len(targets), "accuracy": accuracy(targets, preds), "f1": f1(targets, preds),
            "f1_no": f1_no(targets, preds), "macro_f1_yes_no": macro_f1_yes_no(targets, preds),
            "yes_rate": sum(map(bool, preds)) / len(preds) if preds else None,
            "confusion": confusion(targets, preds)}


def macro_means(per_group: Mapping[str, Mapping]) -> tuple[float | None, float | None, float | None]:
    """Means over groups (categories or concepts) of their yes-class F1, their yes/no macro-F1, and
    the fair coin's macro-F1 over the groups where the macro-F1 is defined (both answers among
    their questions; one_answer_groups counts the others). The yes-class mean, kept for the older
    tables, still counts every group whose yes-class F1 is defined, one-answer groups included."""
    groups = list(per_group.values())
    return (mean_defined(g["f1"] for g in groups), mean_defined(g["macro_f1_yes_no"] for g in groups),
            mean_defined(g["chance_macro_f1_yes_no"] for g in groups if g["macro_f1_yes_no"] is not None))


def one_answer_groups(per_group: Mapping[str, Mapping]) -> int:
    """How many groups have no yes/no macro-F1 because their questions hold one answer alone
    (after random ablation, a category of one concept keeps only "no" questions among the seen
    pairs): left out of the macro averages, and reported beside them."""
    return sum(1 for g in per_group.values() if g["n"] and g["macro_f1_yes_no"] is None)


def summarize(rows: Sequence[Mapping]) -> dict:
    """Metrics of a scored question table.

    Each row needs: kind ("leaf" | "hypernym"), target (concept / category asked about),
    answer (bool, the label), pred (bool), seen (bool, hypernym rows), mass (float or None).
    Returns overall accuracy, leaf scores (pooled, and per target concept with their macro mean),
    hypernym scores (pooled F1, per-category scores with their yes-class and yes/no macro means and
    a fair coin's level, and the same split into seen and unseen (concept, category) pairs, with
    the unseen share of hypernym questions), the undecided rate, and confusion counts.
    """
    for i, r in enumerate(rows):
        if r["kind"] not in ("leaf", "hypernym"):
            raise ValueError(f"row {i}: kind must be 'leaf' or 'hypernym', got {r['kind']!r}")

    def scores(sel: Sequence[Mapping]) -> dict:
        targets = [bool(r["answer"]) for r in sel]
        out = group_scores(targets, [bool(r["pred"]) for r in sel])
        out["chance_macro_f1_yes_no"] = chance_macro_f1(targets)
        return out

    def by_target(sel: Sequence[Mapping]) -> dict[str, dict]:
        groups: dict[str, list[Mapping]] = defaultdict(list)
        for r in sel:
            groups[r["target"]].append(r)
        return {name: scores(groups[name]) for name in sorted(groups)}

    def hypernym_block(sel: Sequence[Mapping]) -> dict:
        per_category = by_target(sel)
        block = scores(sel)
        block["macro_f1"], block["category_macro_f1"], block["category_macro_f1_chance"] = macro_means(per_category)
        block["n_categories"] = len(per_category)
        block["n_one_answer"] = one_answer_groups(per_category)
        block["per_category"] = per_category
        return block

    leaf_rows = [r for r in rows if r["kind"] == "leaf"]
    hyper = [r for r in rows if r["kind"] == "hypernym"]

    hypernym = hypernym_block(hyper)
    hypernym["seen"] = hypernym_block([r for r in hyper if r["seen"]])
    hypernym["unseen"] = hypernym_block([r for r in hyper if not r["seen"]])
    hypernym["unseen_share"] = hypernym["unseen"]["n"] / len(hyper) if hyper else None

    leaf = scores(leaf_rows)
    per_concept = by_target(leaf_rows)
    leaf["concept_f1"], leaf["concept_macro_f1"], leaf["concept_macro_f1_chance"] = macro_means(per_concept)
    leaf["n_one_answer"] = one_answer_groups(per_concept)
    leaf["per_concept"] = per_concept

    masses = [r["mass"] for r in rows if r.get("mass") is not None]
    undecided = sum(1 for m in masses if m < UNDECIDED_MASS)
    overall = scores(rows)
    return {
        "n_questions": len(rows),
        "accuracy": overall["accuracy"],
        "leaf": leaf,
        "hypernym": hypernym,
        "undecided_rate": undecided / len(masses) if masses else None,
        "mean_candidate_mass": sum(masses) / len(masses) if masses else None,
        "confusion": overall["confusion"],
    }


# The headline numbers, in the order tables show them (name -> path in a summarize() dict).
HEADLINE = {
    "seen_category_f1": ("hypernym", "seen", "category_macro_f1"),
    "unseen_category_f1": ("hypernym", "unseen", "category_macro_f1"),
    "hypernym_category_f1": ("hypernym", "category_macro_f1"),
    "seen_chance_f1": ("hypernym", "seen", "category_macro_f1_chance"),
    "unseen_chance_f1": ("hypernym", "unseen", "category_macro_f1_chance"),
    "hypernym_chance_f1": ("hypernym", "category_macro_f1_chance"),
    "leaf_concept_f1": ("leaf", "concept_macro_f1"),
    "leaf_chance_f1": ("leaf", "concept_macro_f1_chance"),
    "leaf_accuracy": ("leaf", "accuracy"),
    "unseen_share": ("hypernym", "unseen_share"),
}
# What each headline number is, for tables and reports.
HEADLINE_LABELS = {
    "seen_category_f1": "seen hypernym per-category macro-F1",
    "unseen_category_f1": "unseen hypernym per-category macro-F1",
    "hypernym_category_f1": "hypernym per-category macro-F1",
    "seen_chance_f1": "chance (seen)", "unseen_chance_f1": "chance (unseen)",
    "hypernym_chance_f1": "chance (hypernym)",
    "leaf_concept_f1": "leaf per-concept macro-F1", "leaf_chance_f1": "chance (leaf)",
    "leaf_accuracy": "leaf accuracy", "unseen_share": "unseen share of hypernym questions",
}


_MISSING = object()


def lookup(metrics: Mapping, path: Sequence[str], default=None):
    """metrics[path[0]][path[1]]...; `default` where any step is missing (older metrics files)."""
    value = metrics
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return default
        value = value[key]
    return value


def headline(metrics: Mapping) -> dict[str, float | None]:
    """The few numbers shown in tables and per-epoch logs: the paper's per-category yes/no
    macro-F1 (seen / unseen / all) with its chance level, leaf per-concept macro-F1, leaf accuracy
    and the unseen share first; then the older keys (yes-class F1 and accuracies), kept for tables.
    A number a metrics file predates is None."""
    out = {name: lookup(metrics, path) for name, path in HEADLINE.items()}
    h = metrics.get("hypernym", {})
    out.update({
        "accuracy": metrics.get("accuracy"), "leaf_f1": lookup(metrics, ("leaf", "f1")),
        "hypernym_f1": h.get("f1"), "seen_f1": lookup(h, ("seen", "f1")),
        "unseen_f1": lookup(h, ("unseen", "f1")),
        "seen_accuracy": lookup(h, ("seen", "accuracy")), "unseen_accuracy": lookup(h, ("unseen", "accuracy")),
        "seen_macro_f1_yes_no": lookup(h, ("seen", "macro_f1_yes_no")),
        "unseen_macro_f1_yes_no": lookup(h, ("unseen", "macro_f1_yes_no")),
        "undecided_rate": metrics.get("undecided_rate")})
    return out


def is_current(metrics) -> bool:
    """Whether a metrics dict has every headline number's field as summarize writes it today (a
    file written before the headline existed, or before categories with one answer alone were left
    out of its averages (n_one_answer, 2026-12-07), lacks one; its questions.csv can be summarized
    again)."""
    if not isinstance(metrics, Mapping):
        return False
    return all(_has(metrics, path) for path in HEADLINE.values()) and \
        all(_has(metrics, ("hypernym", block, key)) for block in ("seen", "unseen")
            for key in ("per_category", "n_one_answer")) and _has(metrics, ("leaf", "n_one_answer"))


def _has(metrics: Mapping, path: Sequence[str]) -> bool:
    return lookup(metrics, path, _MISSING) is not _MISSING
