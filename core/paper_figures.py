"""The paper's figures as data (pandas) and as plotly figures, from every evaluated run on disk.

All numbers are the headline metric of core.metrics: per-category yes/no macro-F1 (hypernym
questions) and per-concept yes/no macro-F1 (leaf questions), with means and 95 % t-based CIs over
seeds (core.results.t_ci). Each figure has a pure data function (rows as core.results.collect()
gives them -> DataFrame) and a figure function (DataFrame -> go.Figure), so both are testable on
hand-made rows and the Results page, `taxolens results figures` and tests draw the same thing.

    ablation_table / ablation_figure   unseen macro-F1 against the share of hypernym questions
                                       seen in training: random (random:r) and systematic
                                       (systematic:N) ablation on one axis, pretrained and
                                       random-init LM, a fair coin's level on the same questions
    category_table / versus /          per-category F1 against visual coherence and against the
    versus_figure                      LM probe: Spearman, Pearson and a least-squares line
    depth_table / depth_figure         per-category F1 by the WordNet depth of the category
    leaf_table / leaf_figure           leaf F1 per concept, sorted, with the chance level

The x axis of the ablation figure is the *measured* share of test hypernym questions whose
(concept, category) pair was kept in training (1 - unseen_share of the evaluation), not the nominal
r: a concept loses all its hypernym questions when any of its categories samples it, so r = 0.5
keeps far fewer than half (PAPER.md), and only a measured share puts random and systematic
ablation on one axis.

Visual coherence comes from the cached table of `taxolens coherence` (core.geometry: mean pairwise
cosine of pooled encoder features of a category's training images under the table's seed's split,
as in the paper — never an `--images all` table; the column follows the labels the runs were
trained under).

Export (PNG/SVG) goes through plotly's own `fig.to_image`, i.e. kaleido >= 1 driving a headless
Chromium — the same renderer the browser uses, so a downloaded SVG looks like the chart on the
page. The alternatives were worse: kaleido 0.2.1 bundles its own Chromium but plotly 7 no longer
drives it, and a second renderer (matplotlib) would draw different figures from the same data.
Chromium is found on PATH (`make browser` installs Debian's; BROWSER_PATH overrides); without it,
or without kaleido, `export_problem()` says so in one line and the CSVs still work.

No Streamlit here; plotly and pandas only (WordNet for depths, on request).
"""
from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from core import metrics as metrics_mod
from core import files, results
from core.config import SPLIT_PERCENT

BLOCKS = ("unseen", "seen", "all")
MODEL_COLORS = {"pretrained LM": "#1f77b4", "random-init LM": "#d62728"}
FAMILY_STYLE = {"random": {"dash": "solid", "symbol": "circle"},
                "systematic": {"dash": "dash", "symbol": "square"}}
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
# What produces the runs each figure needs (for empty states on the page and in the CLI).
SWEEP_HINT = "`taxolens sweep submit paper --scale smoke` (then `taxolens jobs worker`)"


def sweep_hint(dataset: str | None, setting: Mapping | None = None, ds=None) -> str:
    """The command that makes a setting's missing runs: the paper preset on the setting's dataset, at
    the scale whose subset and epochs are the setting's (else the default scale), with `--set` for
    every field that differs, so its runs land in this setting and not in another; where no `--set`
    can (a second stage's init_from), it says so and names the fields."""
    from core.config import DEFAULT_SCALE, SCALES, TrainConfig
    from core.data import datasets

    setting = setting or {}
    defaults = TrainConfig().to_dict()
    limits = ("max_concepts", "images_per_concept")
    # the scale's fields first, then the rest in TrainConfig's order; --dataset gives the dataset
    fields = [*limits, "epochs", *(f for f in defaults if f not in (*limits, "epochs", "dataset")
                                   and f not in results.VARIED_FIELDS)]
    ds = ds if ds is not None else _load_dataset(dataset)   # a caller that has it passes it: 3 CSVs

    def same(f: str, have, want) -> bool:
        # data not at hand: a none limit may be the scale's, unreached
        if f in limits and have is None and ds is None:
            return True
        # "auto" precision is recorded as what it resolved to where the run trained
        return have == want or (f == "precision" and want == "auto" and have in ("bf16", "fp32"))

    def differs(scale: str) -> dict:
        want = {**defaults, **SCALES[scale]}
        if ds is not None:      # a limit the data does not reach is recorded as none (runs.as_recorded_on)
            want.update(zip(limits, ds.effective_limits(want["max_concepts"], want["images_per_concept"])))
        return {f: setting[f] for f in fields if f in setting and not same(f, setting[f], want[f])}

    scales = [DEFAULT_SCALE] + [k for k in SCALES if k != DEFAULT_SCALE]
    diffs = {k: differs(k) for k in scales}
    scale = next((k for k in scales if not set(diffs[k]) & {*limits, "epochs"}), DEFAULT_SCALE)
    sets = diffs[scale]
    if sets.get("init_from") is not None:
        # a second stage starts from one run of its own condition and seed: no sweep option gives that
        others = ", ".join(f for f in sets if f != "init_from")
        return ("no preset sweep reproduces this setting: its runs start from other runs' projectors "
                "(init_from, as `taxolens train --leaf-stage` does)"
                + (f" and differ from the paper preset at scale {scale} in {others}" if others else ""))
    flags = "".join(f" --set {f}={_cli_value(v)}" for f, v in sets.items())
    where = "" if dataset in (None, datasets.DEFAULT_NAME) else f" --dataset {dataset}"
    page = "" if dataset in (None, datasets.DEFAULT_NAME) else f" with {dataset} as its Dataset"
    command = f"`taxolens sweep submit paper{where} --scale {scale}{flags}` (then `taxolens jobs worker`)"
    return command if flags else f"{command}, or the Train page's Sweep tab{page} at scale {scale}"


def _cli_value(v) -> str:
    """A field's value as `--set FIELD=VALUE` reads it back (core.cli.common.train_setting)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class ExportUnavailable(RuntimeError):
    """PNG/SVG export cannot run here; the message says why and what to install."""


# ---------------------------------------------------------------- helpers over collect() rows

def _train(rows: Iterable[Mapping]) -> list[Mapping]:
    return [r for r in rows if r.get("kind") == "train" and isinstance(r.get("metrics"), Mapping)]


def model_of(row: Mapping) -> str:
    return results.series_name(row)


def ablation_of(condition: str | None) -> tuple[str, float] | None:
    """(family, nominal amount) of a condition on the ablation axis: ("random", r) for random:r,
    ("systematic", N categories) for systematic:N or systematic:a+b; None for anything else
    (none, pairs, shuffles and shuffles combined with an ablation)."""
    from core.conditions import parse_condition
    from core.config import ConfigError

    try:
        c = parse_condition(condition or "")
    except ConfigError:
        return None
    if c.shuffle_kind is not None:
        return None
    if c.kind == "random":
        return "random", float(c.ratio)
    if c.kind == "systematic":
        return "systematic", float(c.count if c.count is not None else len(c.categories))
    return None


def labeling_of(condition: str | None) -> str:
    """The coherence column matching the labels a condition trains under: cross / within for a
    shuffle (alone or before an ablation), original otherwise."""
    from core.conditions import parse_condition
    from core.config import ConfigError

    try:
        return parse_condition(condition or "none").shuffle_kind or "original"
    except ConfigError:
        return "original"


def _ci(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    return results.t_ci(values, bounds=(0.0, 1.0))     # every figure's number is an F1 or a share


def _per_category(metrics: Mapping, block: str) -> dict[str, Mapping]:
    h = metrics.get("hypernym", {})
    cats = (h if block == "all" else h.get(block, {})).get("per_category", {})
    return cats if isinstance(cats, Mapping) else {}


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------- 1. the ablation axis

ABLATION_COLUMNS = ["family", "model", "condition", "nominal", "seen_share", "unseen_f1", "ci_low",
                    "ci_high", "n_seeds", "chance", "runs"]


def ablation_table(rows: Iterable[Mapping]):
    """One row per (model, condition) under random:r or systematic:N: the share of test hypernym
    questions seen in training (1 - unseen share, mean over seeds), the unseen per-category
    macro-F1 (mean and 95 % t-CI over seeds that have unseen questions) and a fair coin's level
    on the same questions. Sorted by family, model, seen share."""
    import pandas as pd

    groups: dict[tuple, list[dict]] = {}
    for r in _train(rows):
        family = ablation_of(r.get("condition"))
        if family is None:
            continue
        h = metrics_mod.headline(r["metrics"])
        if h.get("unseen_category_f1") is None or h.get("unseen_share") is None:
            continue
        groups.setdefault((family[0], model_of(r), r["condition"], family[1]), []).append(
            {**h, "name": r.get("name")})
    records = []
    for (family, model, condition, nominal), runs in groups.items():
        mean, lo, hi = _ci([x["unseen_category_f1"] for x in runs])
        chance = [x["unseen_chance_f1"] for x in runs if x.get("unseen_chance_f1") is not None]
        records.append({"family": family, "model": model, "condition": condition, "nominal": nominal,
                        "seen_share": sum(1 - x["unseen_share"] for x in runs) / len(runs),
                        "unseen_f1": mean, "ci_low": lo, "ci_high": hi, "n_seeds": len(runs),
                        "chance": sum(chance) / len(chance) if chance else None,
                        "runs": " ".join(sorted(str(x["name"]) for x in runs))})
    frame = pd.DataFrame.from_records(records, columns=ABLATION_COLUMNS)
    return frame.sort_values(["family", "model", "seen_share"], ignore_index=True)


def ablation_figure(table, title: str | None = None):
    """Unseen macro-F1 (y) against the % of hypernym questions seen (x): one line per (family,
    model) — solid circles random, dashed squares systematic; blue pretrained, red random-init LM —
    with 95 % CI error bars, and a fair coin's level as grey crosses on a dotted line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (family, model), sel in table.groupby(["family", "model"], sort=False):
        sel = sel.sort_values("seen_share")
        style = FAMILY_STYLE.get(family, FAMILY_STYLE["random"])
        color = MODEL_COLORS.get(model, "#555")
        up = [(h - m) if h == h and h is not None else 0.0 for m, h in zip(sel["unseen_f1"], sel["ci_high"])]
        down = [(m - lo) if lo == lo and lo is not None else 0.0 for m, lo in zip(sel["unseen_f1"], sel["ci_low"])]
        fig.add_trace(go.Scatter(
            x=100 * sel["seen_share"], y=sel["unseen_f1"], mode="lines+markers", name=f"{model} · {family}",
            line={"color": color, "dash": style["dash"]}, marker={"symbol": style["symbol"], "size": 9, "color": color},
            error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "thickness": 1.2},
            customdata=list(zip(sel["condition"], sel["n_seeds"])),
            hovertemplate="%{customdata[0]}<br>seen %{x:.1f}%: unseen macro-F1 %{y:.3f}"
                          "<br>n = %{customdata[1]} seed(s)<extra>" + f"{model}</extra>"))
    chance = table.dropna(subset=["chance"]).sort_values("seen_share")
    if not chance.empty:
        fig.add_trace(go.Scatter(x=100 * chance["seen_share"], y=chance["chance"], mode="lines+markers",
                                 name="chance (fair coin)", line={"color": "#888", "dash": "dot", "width": 1},
                                 marker={"symbol": "x-thin-open", "size": 8, "color": "#888"},
                                 customdata=chance["condition"],
                                 hovertemplate="chance, %{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_layout(
        title=title, height=460, template="plotly_white",
        xaxis={"title": "hypernym questions seen in training (% of test hypernym questions)",
               "range": [-3, 103], "ticksuffix": "%"},
        yaxis={"title": "unseen per-category macro-F1", "range": [0, 1.05]},
        legend={"orientation": "h", "y": -0.22}, margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 60})
    return fig


# ---------------------------------------------------------------- 2. per category: coherence, LM probe

def category_table(rows: Iterable[Mapping], block: str = "unseen", labels: Mapping[str, str] | None = None,
                   coherence: Mapping[str, float] | None = None, probe: Mapping | None = None,
                   depths: Mapping[str, int | None] | None = None):
    """One row per category of the given training runs (meant: one model under one condition,
    several seeds): its yes/no macro-F1 in `block` (mean over the runs where it is defined, and in
    how many), beside its label, visual coherence, WordNet depth and the LM probe's per-category
    numbers (`probe_<name>`) when given. Index: category name."""
    import pandas as pd

    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
    values: dict[str, list[float]] = {}
    for r in _train(rows):
        for cat, s in _per_category(r["metrics"], block).items():
            if s.get("macro_f1_yes_no") is not None:
                values.setdefault(cat, []).append(float(s["macro_f1_yes_no"]))
    probe_cats = (probe or {}).get("per_category", {}) or {}
    records = []
    for cat in sorted(values):
        rec = {"category": cat, "label": (labels or {}).get(cat, cat),
               "f1": sum(values[cat]) / len(values[cat]), "n_runs": len(values[cat])}
        if coherence is not None:
            rec["coherence"] = _nan(coherence.get(cat))
        if depths is not None:
            rec["depth"] = depths.get(cat)
        for key in ("chat_macro_f1", "plain_macro_f1", "pairwise", "sentence", "chat_accuracy"):
            if any(key in v for v in probe_cats.values()):
                rec[f"probe_{key}"] = _nan((probe_cats.get(cat) or {}).get(key))
        records.append(rec)
    return pd.DataFrame.from_records(records).set_index("category") if records else \
        pd.DataFrame(columns=["label", "f1", "n_runs"]).rename_axis("category")


def versus(table, x: str, y: str = "f1") -> dict:
    """Statistics of `y` against `x` over the categories where both are finite: n, Spearman ρ and
    Pearson r with their p-values (None below 3 points or with a constant side, as
    core.results.correlations), and the least-squares line y = slope · x + intercept (None where
    x is constant or there are fewer than 2 points)."""
    import numpy as np

    if table.empty or x not in table.columns or y not in table.columns:
        return {**results.correlations([], []), "slope": None, "intercept": None}
    both = table[[x, y]].astype(float)
    both = both[np.isfinite(both[x]) & np.isfinite(both[y])]
    out = {**results.correlations(both[x].tolist(), both[y].tolist()), "slope": None, "intercept": None}
    if len(both) >= 2 and both[x].nunique() >= 2:
        slope, intercept = np.polyfit(both[x].to_numpy(), both[y].to_numpy(), 1)
        out.update(slope=float(slope), intercept=float(intercept))
    return out


def stats_line(stats: Mapping) -> str:
    """'Spearman ρ = 0.52 (p = 0.03) · Pearson r = 0.47 (p = 0.05) · n = 18' or why undefined."""
    if stats.get("spearman") is None:
        return f"correlation undefined (n = {stats.get('n', 0)} categories; needs 3 with varying values)"
    return (f"Spearman ρ = {stats['spearman']:.2f} (p = {stats['spearman_p']:.2g}) · Pearson r = "
            f"{stats['pearson']:.2f} (p = {stats['pearson_p']:.2g}) · n = {stats['n']} categories")


LABELLED_POINTS = 15      # above this many categories only the ones farthest from the line are named


# A named point's label sits above it: in 10 px text on the ~700 x 340 px plot area, about this
# share of the plot's height, and of its width per character.
LABEL_HEIGHT, LABEL_CHAR_WIDTH = 0.045, 0.009
F1_RANGE = (-0.05, 1.08)  # the y axis of a versus_figure: room above F1 = 1 for a label


def outliers(table, x: str, y: str, stats: Mapping, k: int = 10) -> set[str]:
    """Up to `k` categories farthest (vertically) from the fitted line, or from the mean of `y`
    without one: the ones worth naming on a crowded scatter. Taken farthest first, skipping one whose
    label would overprint a label already taken (many categories share F1 = 1.0 or 0)."""
    if stats.get("slope") is not None:
        resid = (table[y] - (stats["slope"] * table[x] + stats["intercept"])).abs()
    else:
        resid = (table[y] - table[y].mean()).abs()
    xs, ys = table[x].astype(float), table[y].astype(float)
    x_span = float(xs.max() - xs.min()) or 1.0
    y_span = F1_RANGE[1] - F1_RANGE[0]
    chars = {cat: len(str(table.at[cat, "label"])) if "label" in table else len(str(cat)) for cat in table.index}

    def clear_of(cat, other) -> bool:
        return abs(ys[cat] - ys[other]) / y_span >= LABEL_HEIGHT or \
            abs(xs[cat] - xs[other]) / x_span >= LABEL_CHAR_WIDTH * (chars[cat] + chars[other]) / 2

    taken: list[str] = []
    for cat in resid.sort_values(ascending=False, kind="stable").index:
        if len(taken) < k and all(clear_of(cat, other) for other in taken):
            taken.append(cat)
    return set(taken)


def line_equation(slope: float, intercept: float) -> str:
    """'y = 1.25·x − 0.41' (a true minus sign, never '+ -0.41'; an intercept that rounds to zero
    reads '+ 0.00')."""
    b = round(float(intercept), 2)
    sign = "−" if b < 0 else "+"
    return f"y = {slope:.2f}·x {sign} {abs(b):.2f}"


def plotted_points(fig) -> int:
    """How many data points a figure draws (finite (x, y) pairs over its traces; 0 for None): a
    figure with none is an empty frame, not worth drawing or exporting."""
    if fig is None:
        return 0
    n = 0
    for trace in fig.data:
        xs, ys = getattr(trace, "x", None), getattr(trace, "y", None)
        if xs is None or ys is None:
            continue
        n += sum(1 for x, y in zip(xs, ys) if _finite(x) and _finite(y))
    return n


def _finite(v) -> bool:
    """A value a figure draws: a number that is not NaN or infinite, or a label (a bar's category)."""
    if isinstance(v, str):
        return True
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def versus_figure(table, x: str, x_title: str, y: str = "f1", y_title: str = "per-category macro-F1",
                  title: str | None = None, x_range: tuple[float, float] | None = None):
    """Labelled points (one per category), the least-squares line, and the Spearman / Pearson
    statistics as the subtitle. Above LABELLED_POINTS categories only up to 10 farthest from the
    line carry their name, none overprinting another (every point names itself on hover)."""
    import numpy as np
    import plotly.graph_objects as go

    stats = versus(table, x, y)
    fig = go.Figure()
    if not table.empty and x in table.columns:
        both = table[np.isfinite(table[x].astype(float)) & np.isfinite(table[y].astype(float))]
        named = set(both.index) if len(both) <= LABELLED_POINTS else outliers(both, x, y, stats)
        fig.add_trace(go.Scatter(
            x=both[x], y=both[y], mode="markers+text", customdata=both["label"],
            text=[lab if cat in named else "" for cat, lab in zip(both.index, both["label"])],
            textposition="top center", textfont={"size": 10, "color": "#444"},
            marker={"size": 9, "color": "#1f77b4", "opacity": 0.85}, cliponaxis=False, showlegend=False,
            hovertemplate="<b>%{customdata}</b><br>" + x_title + ": %{x:.3f}<br>" + y_title + ": %{y:.3f}<extra></extra>"))
        if stats["slope"] is not None:
            grid = np.linspace(float(both[x].min()), float(both[x].max()), 2)
            fig.add_trace(go.Scatter(x=grid, y=stats["slope"] * grid + stats["intercept"], mode="lines",
                                     name="least squares: " + line_equation(stats["slope"], stats["intercept"]),
                                     line={"color": "#d62728", "dash": "dash"}, hoverinfo="skip"))
        if len(both) > LABELLED_POINTS:
            fig.add_annotation(text=f"named: {len(named)} of the farthest from the line, no label over another (hover for the rest)",
                               xref="paper", yref="paper", x=1, y=0, xanchor="right", yanchor="bottom",
                               showarrow=False, font={"size": 10, "color": "#777"})
    head = f"{title}<br>" if title else ""
    fig.update_layout(
        title={"text": f"{head}<sup>{stats_line(stats)}</sup>"}, height=480, template="plotly_white",
        xaxis={"title": x_title, **({"range": list(x_range)} if x_range else {})},
        yaxis={"title": y_title, "range": list(F1_RANGE)}, showlegend=True,
        legend={"orientation": "h", "y": -0.18}, margin={"l": 60, "r": 30, "t": 80 if title else 60, "b": 60})
    return fig


def category_depths(ds) -> dict[str, int | None]:
    """Category name -> WordNet depth of its synset (edges from the root on the longest chain,
    core.taxonomy.depth); None for a category without a (known) synset."""
    from core import taxonomy

    out: dict[str, int | None] = {}
    for name, cat in ds.categories.items():
        try:
            out[name] = taxonomy.depth(cat.synset) if cat.synset else None
        except taxonomy.TaxonomyError:
            out[name] = None
    return out


def find_coherence(dataset: str | None, encoder: str | None, images: str = "train",
                   split_percent: str | None = None, concepts: int | None = None):
    """The cached coherence table (core.geometry, `taxolens coherence`) for this dataset and
    encoder over `images` (the training images of the table's seed, the paper's; or "all"),
    preferring the one of the largest (subset of the) dataset, then seed 0: (DataFrame indexed by
    category with original / cross / within columns, its meta dict), or None. A table from before
    the images choice (its meta has no "image_set") was computed over all images. A train table
    is of one split (split_percent, TrainConfig's when None): the setting's runs'. `concepts`: the
    setting's subset size (its max_concepts), whose table (`taxolens coherence --max-concepts N`) is
    preferred where there is one."""
    import json

    import pandas as pd

    from core import paths

    root = paths.runs_dir() / "coherence"
    found = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            try:
                meta = json.loads((folder / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(meta, dict) or meta.get("image_set", "all") != images:
                continue
            if images == "train" and meta.get("split_percent", SPLIT_PERCENT) != (split_percent or SPLIT_PERCENT):
                continue
            if meta.get("dataset") == dataset and meta.get("encoder") == encoder and \
                    (folder / "coherence.csv").is_file():
                size = meta.get("dataset_images", meta.get("images")) or 0
                other_size = concepts is not None and meta.get("concepts") != concepts
                found.append((other_size, -size, meta.get("seed") != 0, folder.name, folder, meta))
    if not found:
        return None
    *_, folder, meta = min(found)
    table = pd.read_csv(folder / "coherence.csv", index_col="category")
    return table.drop(index="all", errors="ignore"), {**meta, "path": str(folder)}


def coherence_hint(dataset: str | None, encoder: str | None, split_percent: str | None = None) -> str:
    if split_percent and split_percent != SPLIT_PERCENT:
        return (f"No visual coherence table over the categories' training images under a {split_percent} split "
                f"for {encoder} on {dataset} yet: `taxolens coherence --dataset {dataset} --encoder {encoder} "
                f"--split-percent {split_percent}`.")
    return (f"No visual coherence table (over the categories' training images) for {encoder} on {dataset} yet: "
            f"`taxolens coherence --dataset {dataset} --encoder {encoder}` (or **Compute features and coherence** "
            "on the Geometry page).")


def probe_hint(lm: str | None, dataset: str | None) -> str:
    return (f"No LM probe of {lm} on {dataset} yet: `taxolens probe-lm --lm {lm} --dataset {dataset}` "
            "(or the `probe` job the paper sweep queues).")


# ---------------------------------------------------------------- 3. by hypernym depth

DEPTH_COLUMNS = ["model", "condition", "depth", "mean", "ci_low", "ci_high", "n_seeds", "n_categories",
                 "categories"]


def depth_table(rows: Iterable[Mapping], depths: Mapping[str, int | None], block: str = "all"):
    """Per (model, condition, WordNet depth): the mean over seeds (95 % t-CI) of each run's mean
    per-category macro-F1 over its categories at that depth, in `block`; how many categories sit
    at that depth. Categories without a depth are left out."""
    import pandas as pd

    per_group: dict[tuple, list[float]] = {}
    cats_at: dict[tuple, set[str]] = {}
    for r in _train(rows):
        by_depth: dict[int, list[float]] = {}
        for cat, s in _per_category(r["metrics"], block).items():
            d = depths.get(cat)
            if d is None or s.get("macro_f1_yes_no") is None:
                continue
            by_depth.setdefault(int(d), []).append(float(s["macro_f1_yes_no"]))
            cats_at.setdefault((model_of(r), r["condition"], int(d)), set()).add(cat)
        for d, vals in by_depth.items():
            per_group.setdefault((model_of(r), r["condition"], d), []).append(sum(vals) / len(vals))
    records = []
    for (model, condition, d), vals in per_group.items():
        mean, lo, hi = _ci(vals)
        cats = sorted(cats_at[(model, condition, d)])
        records.append({"model": model, "condition": condition, "depth": d, "mean": mean, "ci_low": lo,
                        "ci_high": hi, "n_seeds": len(vals), "n_categories": len(cats), "categories": " ".join(cats)})
    frame = pd.DataFrame.from_records(records, columns=DEPTH_COLUMNS)
    if frame.empty:
        return frame
    frame["_order"] = frame["condition"].map(results.condition_order)
    return frame.sort_values(["_order", "model", "depth"], ignore_index=True).drop(columns="_order")


def depth_figure(table, title: str | None = None, y_title: str = "per-category macro-F1"):
    """Mean per-category macro-F1 by WordNet depth, one line per (model · condition), 95 % CI error
    bars; each depth's tick says how many categories sit there, and hovering a point too."""
    import plotly.express as px
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = px.colors.qualitative.D3 + px.colors.qualitative.Dark24
    series = list(dict.fromkeys(zip(table["model"], table["condition"])))
    for i, (model, condition) in enumerate(series):
        sel = table[(table["model"] == model) & (table["condition"] == condition)].sort_values("depth")
        up = [0.0 if h is None or h != h else h - m for m, h in zip(sel["mean"], sel["ci_high"])]
        down = [0.0 if lo is None or lo != lo else m - lo for m, lo in zip(sel["mean"], sel["ci_low"])]
        name = condition if len({m for m, _ in series}) == 1 else f"{model} · {condition}"
        fig.add_trace(go.Scatter(
            x=sel["depth"], y=sel["mean"], mode="lines+markers", name=name,
            line={"color": palette[i % len(palette)], "dash": "dash" if model == "random-init LM" else "solid"},
            marker={"size": 8},
            error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "thickness": 1.2},
            customdata=list(zip(sel["n_categories"], sel["n_seeds"])),
            hovertemplate="depth %{x}: %{y:.3f}<br>%{customdata[0]} categor(ies), %{customdata[1]} seed(s)"
                          f"<extra>{model} · {condition}</extra>"))
    depths = sorted(set(int(d) for d in table["depth"])) if not table.empty else []
    counts = {d: int(table.loc[table["depth"] == d, "n_categories"].max()) for d in depths}
    fig.update_layout(title=title, height=440, template="plotly_white", showlegend=True,
                      xaxis={"title": "WordNet depth of the category (edges from entity.n.01; categories at that depth)",
                             "tickmode": "array", "tickvals": depths,
                             "ticktext": [f"{d}<br>({counts[d]})" for d in depths]},
                      yaxis={"title": y_title, "range": [0, 1.05]},
                      legend={"orientation": "h", "y": -0.25}, margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 60})
    return fig


def titled(fig, title: str):
    """A copy of the figure with `title` on top (for exported files; the page has headings)."""
    import plotly.graph_objects as go

    out = go.Figure(fig)
    old = out.layout.title.text
    out.update_layout(title={"text": f"{title}<br>{old}" if old else title},
                      margin={"t": max(out.layout.margin.t or 0, 90 if old else 60)})
    return out


# ---------------------------------------------------------------- 4. leaf F1 per concept

LEAF_COLUMNS = ["model", "condition", "concept", "label", "mean", "ci_low", "ci_high", "n_seeds", "chance"]


def leaf_table(rows: Iterable[Mapping], labels: Mapping[str, str] | None = None):
    """Per (model, condition, concept): the leaf yes/no macro-F1 of the questions about that
    concept (mean and 95 % t-CI over seeds) and a fair coin's level on them. Sorted within each
    (model, condition) from best to worst."""
    import pandas as pd

    groups: dict[tuple, list[tuple[float, float | None]]] = {}
    for r in _train(rows):
        for concept, s in (r["metrics"].get("leaf", {}).get("per_concept") or {}).items():
            if s.get("macro_f1_yes_no") is not None:
                groups.setdefault((model_of(r), r["condition"], concept), []).append(
                    (float(s["macro_f1_yes_no"]), s.get("chance_macro_f1_yes_no")))
    records = []
    for (model, condition, concept), vals in groups.items():
        mean, lo, hi = _ci([v for v, _ in vals])
        chance = [c for _, c in vals if c is not None]
        records.append({"model": model, "condition": condition, "concept": concept,
                        "label": (labels or {}).get(concept, concept), "mean": mean, "ci_low": lo, "ci_high": hi,
                        "n_seeds": len(vals), "chance": sum(chance) / len(chance) if chance else None})
    frame = pd.DataFrame.from_records(records, columns=LEAF_COLUMNS)
    if frame.empty:
        return frame
    frame["_order"] = frame["condition"].map(results.condition_order)
    frame["_neg"] = -frame["mean"]
    return frame.sort_values(["_order", "model", "_neg", "concept"], ignore_index=True).drop(columns=["_order", "_neg"])


def leaf_series(table) -> list[str]:
    """'model · condition' of each series in a leaf_table, in its order."""
    return list(dict.fromkeys(f"{m} · {c}" for m, c in zip(table["model"], table["condition"])))


LABELLED_CONCEPTS = 60   # up to this many concepts the x axis names each one


def leaf_figure(table, series: str | None = None, title: str | None = None):
    """One series' leaf F1 per concept, best to worst (error bars: 95 % CI over seeds), its mean
    as a dashed line and a fair coin's mean level as a dotted one. Concepts are named on the axis
    up to LABELLED_CONCEPTS, and on hover always."""
    import plotly.graph_objects as go

    names = leaf_series(table)
    series = series or (names[0] if names else None)
    fig = go.Figure()
    if series is None:
        return fig
    model, condition = series.split(" · ", 1)
    sel = table[(table["model"] == model) & (table["condition"] == condition)]
    sel = sel.sort_values(["mean", "concept"], ascending=[False, True])
    n = len(sel)
    xs = list(range(1, n + 1))
    up = [0.0 if h is None or h != h else h - m for m, h in zip(sel["mean"], sel["ci_high"])]
    down = [0.0 if lo is None or lo != lo else m - lo for m, lo in zip(sel["mean"], sel["ci_low"])]
    fig.add_trace(go.Scatter(
        x=xs, y=sel["mean"], mode="markers", name=series, marker={"size": 7 if n <= 150 else 4, "color": "#1f77b4"},
        error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down, "thickness": 1,
                 "color": "rgba(31,119,180,0.5)"},
        text=sel["label"], customdata=sel["n_seeds"],
        hovertemplate="<b>%{text}</b> (#%{x}): %{y:.3f}, %{customdata} seed(s)<extra></extra>"))
    if n:
        mean = float(sel["mean"].mean())
        fig.add_hline(y=mean, line_dash="dash", line_color="#1f77b4",
                      annotation_text=f"mean {mean:.3f} over {n} concepts (every seed's)", annotation_position="bottom left")
        chance = sel["chance"].dropna()
        if not chance.empty:
            fig.add_hline(y=float(chance.mean()), line_dash="dot", line_color="#888",
                          annotation_text=f"chance {float(chance.mean()):.3f}", annotation_position="top right")
    labelled = n <= LABELLED_CONCEPTS
    fig.update_layout(
        title=title, height=460 if labelled else 400, template="plotly_white", showlegend=False,
        xaxis={"title": "concepts, best to worst" if labelled else f"{n} concepts, best to worst (hover for names)",
               **({"tickmode": "array", "tickvals": xs, "ticktext": list(sel["label"]), "tickangle": -60,
                   "tickfont": {"size": 10}} if labelled else {}), "range": [0, n + 1]},
        yaxis={"title": f"leaf yes/no macro-F1 per concept ({series})", "range": [-0.02, 1.05]},
        margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 120 if labelled else 50})
    return fig


# ---------------------------------------------------------------- export

def export_problem() -> str | None:
    """None when PNG/SVG export can run here, else one line saying why and what to do."""
    try:
        import kaleido
    except ImportError:
        return "PNG/SVG export needs the `kaleido` package (pinned in requirements.txt: run `make setup`)."
    version = getattr(kaleido, "__version__", "1")
    if int(str(version).split(".")[0]) < 1:
        return f"PNG/SVG export needs kaleido >= 1 (found {version}): run `make setup`."
    try:
        from choreographer.browsers.chromium import Chromium
        browser = Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - any failure to look is "not found"
        browser = None
    if not browser:
        return ("PNG/SVG export needs a Chromium or Chrome on PATH (kaleido drives it): `make browser`, "
                "or set BROWSER_PATH. The CSV downloads work without it.")
    return None


def to_image(fig, fmt: str = "svg", width: int = 1000, height: int | None = None, scale: float = 2.0) -> bytes:
    """The figure as SVG or PNG bytes (plotly + kaleido). Raises ExportUnavailable with
    export_problem()'s message when that cannot run here."""
    if fmt not in ("svg", "png"):
        raise ValueError(f"format must be svg or png, got {fmt!r}")
    problem = export_problem()
    if problem:
        raise ExportUnavailable(problem)
    height = height or fig.layout.height or 480
    try:
        return fig.to_image(format=fmt, width=width, height=height, scale=scale if fmt == "png" else 1)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ExportUnavailable(f"PNG/SVG export failed: {exc}") from exc


# ---------------------------------------------------------------- all figures of one setting

FIGURE_NAMES = ("ablation", "coherence", "probe", "depth", "leaf")
TITLES = {"ablation": "Unseen macro-F1 against the share of hypernyms seen",
          "coherence": "Per-category F1 against visual coherence",
          "probe": "Per-category F1 against the LM probe",
          "depth": "F1 by hypernym depth",
          "leaf": "Leaf F1 per concept"}


def default_condition(rows: Iterable[Mapping], block: str = "unseen") -> str | None:
    """The condition the per-category figures show first: the one whose runs have the most
    categories in `block` (ties: the paper's order), else any."""
    counts: dict[str, int] = {}
    for r in _train(rows):
        counts[r["condition"]] = max(counts.get(r["condition"], 0), len(_per_category(r["metrics"], block)))
    if not counts:
        return None
    return min(counts, key=lambda c: (-counts[c], results.condition_order(c)))


def setting_figures(chosen: list[dict], everything: list[dict], key: tuple | None,
                    condition: str | None = None, block: str | None = None, model: str = "pretrained LM",
                    leaf_series_name: str | None = None, ds=None,
                    depths: Mapping[str, int | None] | None = None) -> dict[str, dict]:
    """Every figure of one setting, as {name: {"table": DataFrame, "figure": go.Figure | None,
    "note": str | None, "stats": dict | None}}; a figure that lacks its runs / inputs has no
    figure and a note naming the command that produces them. `ds`: the dataset for labels and
    depths (loaded from the setting when None); `depths`: category_depths(ds), if already known."""
    setting = dict(key) if key is not None else {}
    ds = ds if ds is not None else _load_dataset(setting.get("dataset"))
    cat_labels = {k: c.label for k, c in ds.categories.items()} if ds else {}
    concept_labels = {k: c.label for k, c in ds.concepts.items()} if ds else {}
    out: dict[str, dict] = {}

    table = ablation_table(chosen)
    out["ablation"] = {"table": table, "stats": None,
                       "figure": ablation_figure(table) if not table.empty else None,
                       "note": None if not table.empty else
                       "No runs under random:r or systematic:N with unseen questions in this setting yet: "
                       + sweep_hint(setting.get("dataset"), setting, ds) + "."}

    train = [r for r in _train(chosen) if model_of(r) == model] or _train(chosen)
    # with no run of the asked model the figures fall back to every run: the labels name those
    model = " + ".join(sorted({model_of(r) for r in train})) or model
    block = block or ("unseen" if default_condition(train, "unseen") and
                      any(_per_category(r["metrics"], "unseen") for r in train) else "all")
    condition = condition or default_condition(train, block)
    picked = [r for r in train if r["condition"] == condition]
    what = f"{model} · {condition} · {len(picked)} run(s)"
    found = find_coherence(setting.get("dataset"), setting.get("encoder"), split_percent=setting.get("split_percent"),
                           concepts=setting.get("max_concepts"))
    labeling = labeling_of(condition)
    if found is None:
        out["coherence"] = {"table": category_table(picked, block, cat_labels), "figure": None, "stats": None,
                            "note": coherence_hint(setting.get("dataset"), setting.get("encoder"),
                                                   setting.get("split_percent"))}
    else:
        coh, meta = found
        col = labeling if labeling in coh.columns else "original"
        t = category_table(picked, block, cat_labels, coherence=coh[col].to_dict())
        out["coherence"] = {"table": t, "stats": versus(t, "coherence"), "meta": meta,
                            "figure": versus_figure(t, "coherence", f"visual coherence ({col} labels)",
                                                    y_title=f"{block} per-category macro-F1", title=what),
                            "note": None if not t.empty else f"No {block} hypernym questions under {condition}."}
        why_not = (meta.get("not_possible") or {}).get(col)
        if why_not and coh[col].isna().all():       # a shuffle this subset has no room for: say so
            out["coherence"]["note"] = f"No {col}-labelling coherence in this table: {why_not}."
    probes = results.probes_for(everything, setting.get("lm"), setting.get("dataset"))
    if not probes:
        out["probe"] = {"table": category_table(picked, block, cat_labels), "figure": None, "stats": None,
                        "note": probe_hint(setting.get("lm"), setting.get("dataset"))}
    else:
        t = category_table(picked, block, cat_labels, probe=probes[0]["metrics"])
        x = "probe_chat_macro_f1" if "probe_chat_macro_f1" in t.columns else \
            next((c for c in t.columns if c.startswith("probe_")), None)
        out["probe"] = {"table": t, "stats": versus(t, x) if x else None, "probe": probes[0]["name"],
                        "figure": versus_figure(t, x, f"LM alone: {x.removeprefix('probe_')} per category "
                                                f"({probes[0]['name']})",
                                                y_title=f"{block} per-category macro-F1", title=what,
                                                x_range=(-0.05, 1.05)) if x else None,
                        "note": None if x and not t.empty else "The probe has no per-category numbers."}
    depths = depths if depths is not None else category_depths(ds) if ds else {}
    t = depth_table(train, depths, block)
    out["depth"] = {"table": t, "stats": None,
                    "figure": depth_figure(t, y_title=f"{block} per-category macro-F1 ({model})")
                    if not t.empty else None,
                    "note": None if not t.empty else
                    (f"No category of {setting.get('dataset') or 'this dataset'} has a WordNet synset (an imported "
                     f"dataset's categories have none), so there is no depth to plot." if not any(depths.values()) else
                     f"None of the {'' if block == 'all' else block + ' '}hypernym questions is about a category "
                     f"with a WordNet depth.")}
    t = leaf_table(chosen, concept_labels)
    out["leaf"] = {"table": t, "stats": None,
                   "figure": leaf_figure(t, leaf_series_name) if not t.empty else None,
                   "note": None if not t.empty else "No leaf questions in these runs."}
    for name, entry in out.items():       # a figure with no point is an empty frame: none, and why
        if entry["figure"] is not None and not plotted_points(entry["figure"]):
            entry.update(figure=None, note=entry.get("note") or empty_note(name, block, condition))
    out["_choice"] = {"condition": condition, "block": block, "model": model}
    return out


def empty_note(name: str, block: str | None, condition: str | None) -> str:
    """Why a figure has nothing to draw when its table is not empty (no category with both sides)."""
    side = {"coherence": "a coherence value", "probe": "a probe score"}.get(name)
    if side:
        return (f"Nothing to plot: no category under {condition} has both {side} and "
                f"{block or 'a'} per-category macro-F1.")
    return f"Nothing to plot under {condition} ({block} questions)."


@contextlib.contextmanager
def export_session():
    """One Chromium for every to_image inside (kaleido's sync server) instead of one started per
    figure: 8 SVG/PNG exports took 22.8 s one-shot and 4.2 s in one session (5.5x, 2 cores). A
    session already running (the caller's own) is left running."""
    import warnings

    import kaleido
    from kaleido._sync_server import GlobalKaleidoServer     # the singleton start_sync_server opens
    started = False
    if not GlobalKaleidoServer().is_running():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kaleido.start_sync_server(silence_warnings=True)
            started = True
        except Exception:  # noqa: BLE001 - no session: each export starts its own, as without one
            pass
    try:
        with warnings.catch_warnings():
            # plotly passes its own kaleido options, which a running server ignores and warns about
            warnings.filterwarnings("ignore", message="The kopts argument is ignored")
            yield
    finally:
        if started:
            kaleido.stop_sync_server(silence_warnings=True)


def _load_dataset(name: str | None):
    from core.data import datasets

    try:
        return datasets.load_dataset(name or datasets.DEFAULT_NAME)
    except datasets.DatasetError:
        return None


def write_all(rows: list[dict], out_dir: Path, formats: Sequence[str] = ("svg", "png"),
              progress=None) -> dict:
    """`taxolens results figures`: for every training setting on disk, each figure's data as CSV
    and (where export works) the figure as SVG / PNG under out_dir (one sub-folder per setting when
    there are several), all images through one export_session. Returns a manifest: settings, files
    written, notes, export problem. progress(fraction, message) after each setting's figure."""
    problem = export_problem() if formats else None
    with export_session() if formats and not problem else contextlib.nullcontext():
        return _write_all(rows, Path(out_dir), formats, problem, progress or (lambda f, m: None))


def _write_all(rows: list[dict], out_dir: Path, formats: Sequence[str], problem: str | None, report) -> dict:
    keys = results.settings(rows)
    manifest: dict = {"out": str(out_dir), "settings": [], "export": problem or "ok"}
    for i, key in enumerate(keys):
        folder = out_dir if len(keys) == 1 else out_dir / f"setting-{i + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        chosen = results.in_setting(rows, key)
        figs = setting_figures(chosen, rows, key)
        choice = figs.pop("_choice")
        # each file whole or not at all (write_atomic): an interrupted export never leaves a torn CSV or image
        files.write_atomic(folder / "setting.txt", results.describe_setting(key) + "\n" +
                           f"per-category figures: {choice['model']}, {choice['condition']}, {choice['block']} questions\n")
        entry = {"setting": results.describe_setting(key), "folder": str(folder), **choice, "files": [], "notes": {}}
        for j, (name, fig) in enumerate(figs.items(), 1):
            table = fig["table"]
            path = folder / f"{name}.csv"
            files.write_atomic(path, table.to_csv(index=name in ("coherence", "probe")))
            entry["files"].append(str(path))
            if fig.get("stats"):
                entry.setdefault("stats", {})[name] = {k: v for k, v in fig["stats"].items()}
            if fig["figure"] is None:
                entry["notes"][name] = fig["note"]
            for fmt in formats if not problem and fig["figure"] is not None else ():
                path = folder / f"{name}.{fmt}"
                files.write_atomic(path, to_image(titled(fig["figure"], TITLES[name]), fmt))
                entry["files"].append(str(path))
            report((i + j / len(figs)) / len(keys),
                   f"setting {i + 1}/{len(keys)}: {name}")
        manifest["settings"].append(entry)
    return manifest


def finite(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def file_stem(name: str) -> str:
    """A download file name stem: 'taxolens_<name>' with anything odd replaced."""
    return "taxolens_" + _SAFE.sub("_", name).strip("_")
