"""Results tables for the Results page: every evaluated run and baseline on disk as one row, grouped
into comparable settings, and the mean ± bootstrap CI over seeds (core.jobs.sweeps.aggregate).

Pure pandas over what core.runs reads, no Streamlit, so the page only arranges widgets and charts.
Runs are read from disk rather than from the job registry so runs trained from the CLI count too.
"""
from __future__ import annotations

import re

import pandas as pd

# What must match for two runs to be compared (everything but condition, LM init and seed).
SETTING_FIELDS = ("dataset", "encoder", "lm", "projector", "image_tokens", "epochs", "max_concepts",
                  "images_per_concept")
# Baselines do not train, so only the data decide whether they are comparable.
BASELINE_FIELDS = ("dataset", "max_concepts", "images_per_concept")


def collect() -> list[dict]:
    """One row per evaluated run (test split) and per baseline: config fields, kind, metrics."""
    from core import runs

    rows = []
    for run in runs.list_runs():
        metrics = runs.load_metrics(run.path, "test") if "test" in run.evaluated else None
        if metrics:
            rows.append({"kind": "train", "name": run.run_id, "baseline": None, **run.config.to_dict(),
                         "metrics": metrics})
    root = runs.baselines_dir()
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            try:
                config = runs.read_json(folder / "config.json")
                metrics = runs.load_metrics(folder, "test")
            except (runs.RunError, OSError):
                continue
            if metrics and isinstance(config, dict) and "baseline" in config:
                rows.append({"kind": "baseline", "name": f"baselines/{folder.name}", **config,
                             "metrics": metrics})
    return rows


def readable(metrics) -> bool:
    """Whether a metrics.json has every number the comparison needs (one written by an older
    TaxoLens may lack the headline's fields: it is left out and re-evaluating the run brings it back)."""
    from core.metrics import is_current
    return is_current(metrics)


def setting_key(row: dict) -> tuple:
    return tuple(row.get(f) for f in SETTING_FIELDS)


def describe_setting(key: tuple) -> str:
    d = dict(zip(SETTING_FIELDS, key))
    subset = ("all concepts" if d["max_concepts"] is None else f"{d['max_concepts']} concepts") + \
        ("" if d["images_per_concept"] is None else f" × {d['images_per_concept']} images")
    return (f"{d['dataset']} ({subset}) · {d['encoder']} + {d['lm']} · {d['projector']}, "
            f"{d['image_tokens']} tokens · {d['epochs']} epochs")


def settings(rows: list[dict]) -> list[tuple]:
    """Training settings present, the one with most runs first."""
    counts: dict[tuple, int] = {}
    for r in rows:
        if r["kind"] == "train":
            counts[setting_key(r)] = counts.get(setting_key(r), 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], describe_setting(k)))


def in_setting(rows: list[dict], key: tuple) -> list[dict]:
    """Training runs of this setting plus the baselines on the same data."""
    wanted = dict(zip(SETTING_FIELDS, key))
    out = []
    for r in rows:
        if r["kind"] == "train" and setting_key(r) == key:
            out.append(r)
        elif r["kind"] == "baseline" and all(r.get(f) == wanted[f] for f in BASELINE_FIELDS) and \
                (r["baseline"] != "lm_only" or r.get("lm") == wanted["lm"]):
            out.append(r)
    return out


def series_name(row: dict) -> str:
    if row["kind"] == "baseline":
        return {"lm_only": "LM-only (text)", "majority": "majority"}.get(row["baseline"], row["baseline"])
    return "random-init LM" if row.get("lm_init") == "random" else "pretrained LM"


def per_run_table(rows: list[dict]) -> pd.DataFrame:
    """One row per run / baseline with its headline metrics (for the table and CSV download)."""
    from core.jobs.sweeps import headline_metrics

    records = []
    for r in rows:
        records.append({"name": r["name"], "model": series_name(r), "condition": r["condition"],
                        "seed": r["seed"], **headline_metrics(r["metrics"])})
    return pd.DataFrame.from_records(records)


def aggregated(rows: list[dict]) -> pd.DataFrame:
    """Mean and bootstrap 95% CI over seeds per (model, condition, metric)."""
    from core.jobs.sweeps import aggregate

    table = aggregate([{**r, "lm_init": r.get("lm_init") if r["kind"] == "train" else None}
                       for r in rows])
    if table.empty:
        return table.assign(model=[])
    table["model"] = [series_name({"kind": k, "baseline": b, "lm_init": i})
                      for k, b, i in zip(table["kind"], table["baseline"], table["lm_init"])]
    return table


def ratio_of(condition: str) -> float | None:
    """Ablation ratio of a condition: none = 0, random:r = r, anything else has none."""
    if condition == "none":
        return 0.0
    m = re.fullmatch(r"random:([0-9.]+)", condition or "")
    return float(m.group(1)) if m else None


def ratio_curve_rows(table: pd.DataFrame, metrics: tuple[str, ...] = ("unseen_f1", "seen_f1")) -> list[dict]:
    """Rows for figures.ratio_curves: trained models under none / random:r, one series per
    (model, metric)."""
    out = []
    for rec in table.to_dict("records"):
        r = ratio_of(rec["condition"])
        if rec["kind"] != "train" or r is None or rec["metric"] not in metrics:
            continue
        label = {"unseen_f1": "unseen F1", "seen_f1": "seen F1", "hypernym_f1": "hypernym F1"}.get(
            rec["metric"], rec["metric"])
        out.append({"series": f"{rec['model']} · {label}", "ratio": r, "mean": rec["mean"],
                    "lo": rec["ci_low"], "hi": rec["ci_high"], "n": rec["n_seeds"]})
    return out


def baseline_levels(table: pd.DataFrame, metric: str = "hypernym_f1") -> dict[str, float]:
    """Baseline model → its mean `metric` (pooled over the baseline's conditions)."""
    sel = table[(table["kind"] == "baseline") & (table["metric"] == metric)]
    return {model: float(group["mean"].mean()) for model, group in sel.groupby("model")}


def per_category(rows: list[dict], block: str = "unseen") -> pd.DataFrame:
    """Mean hypernym F1 per (category, model · condition) over seeds; block: all | seen | unseen."""
    records = []
    for r in rows:
        h = r["metrics"]["hypernym"]
        cats = (h if block == "all" else h.get(block, {})).get("per_category", {})
        for category, scores in cats.items():
            if scores.get("f1") is not None:
                records.append({"category": category, "column": f"{series_name(r)} · {r['condition']}",
                                "f1": scores["f1"]})
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records)
    return frame.pivot_table(index="category", columns="column", values="f1", aggfunc="mean")
