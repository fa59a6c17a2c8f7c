"""Results across runs: what is on disk, grouped into comparable settings, and the statistics over
seeds — the one place the Results page, `taxolens sweep show` and `taxolens results report` get
their numbers from.

    collect() -> rows                 every evaluated run (test split), baseline and LM probe on disk
    settings(rows) / in_setting(rows, key) / describe_setting(key)   the comparable settings among them
    aggregate(rows) -> DataFrame      mean and 95 % t-based CI over seeds per (group, metric), in [0, 1],
                                      for the rows of one setting (in_setting); aggregated() adds `model`
    per_run_table(rows) / wide(table) one row per run / per group, for printing
    t_ci(values) -> (mean, lo, hi)    the CI itself (lo/hi None below two seeds)
    report_markdown(rows, probes)     docs/results.md

Runs are read from disk rather than from the job registry so runs trained from the CLI count too.
A metrics.json written before the current headline existed is summarized again from its
questions.csv and written back once, keeping its file time (load_eval); a run trained under the
former meaning of random:<r> is listed as the pairs:<r> it used. Pure pandas/scipy, no Streamlit.
"""
from __future__ import annotations

import csv
import json
import datetime as dt
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from core import metrics as metrics_mod
from core.base import ConfigError

GROUP_COLUMNS = ["kind", "condition", "lm_init", "encoder", "lm", "prompt", "baseline"]
AGGREGATE_COLUMNS = GROUP_COLUMNS + ["metric", "mean", "ci_low", "ci_high", "n_seeds"]
# Fields that do not make two runs incomparable: what is varied across a grid, and where it ran.
VARIED_FIELDS = ("condition", "lm_init", "seed", "device")
# Baselines do not train, so only the data decide whether they are comparable.
SAME_DATA_FIELDS = ("dataset", "max_concepts", "images_per_concept", "split_percent")   # a baseline beside a setting
# The columns tables lead with (core.metrics.HEADLINE order), then the yes-class numbers.
MAIN_METRICS = ("seen_category_f1", "unseen_category_f1", "seen_chance_f1", "unseen_chance_f1",
                "leaf_accuracy", "leaf_concept_f1", "unseen_share")
LEFT_OUT_NAMED = 10      # the report names this many runs of another dataset version, then counts
PROBE_METRICS = ("chat_accuracy", "chat_macro_f1", "plain_accuracy", "plain_macro_f1", "pairwise",
                 "sentence")


# ---------------------------------------------------------------- statistics

def t_ci(values: Iterable[float], level: float = 0.95,
         bounds: tuple[float, float] | None = None) -> tuple[float, float | None, float | None]:
    """(mean, low, high): mean ± t_{(1+level)/2, n-1} · s / √n over the values (seeds), as the
    paper reports, clipped to `bounds` when given (an F1 of two seeds otherwise gets intervals like
    [-0.9, 1.7]). With one value the interval is undefined (None, None)."""
    from scipy import stats

    v = [float(x) for x in values]
    if not v:
        raise ValueError("t_ci needs at least one value")
    mean = sum(v) / len(v)
    if len(v) < 2:
        return mean, None, None
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    half = float(stats.t.ppf((1 + level) / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, low, high


def correlations(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float | None]:
    """Spearman and Pearson correlation (with p-values) of paired values; None where undefined
    (fewer than 3 pairs, or a constant side)."""
    from scipy import stats

    pairs = [(float(x), float(y)) for x, y in zip(xs, ys)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    out: dict[str, float | None] = {"n": len(pairs), "spearman": None, "spearman_p": None,
                                    "pearson": None, "pearson_p": None}
    if len(pairs) < 3 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return out
    a, b = zip(*pairs)
    rho, p_rho = stats.spearmanr(a, b)
    r, p_r = stats.pearsonr(a, b)
    out.update(spearman=float(rho), spearman_p=float(p_rho), pearson=float(r), pearson_p=float(p_r))
    return out


def are_shares(metrics: Mapping) -> bool:
    """Whether every number headline_metrics takes from `metrics` is a share in [0, 1] (an F1, an
    accuracy, a chance level): true of an evaluation summary and of an LM probe's."""
    return metrics.get("kind") == "probe" or ("hypernym" in metrics and "leaf" in metrics)


def headline_metrics(metrics: Mapping) -> dict[str, float]:
    """The numbers compared across conditions, as floats: core.metrics.headline plus the yes-class
    macro means for a summarize() dict; a probe's summary numbers for an LM probe; numeric leaves
    (dotted names) for anything else. Undefined numbers are left out."""
    if metrics.get("kind") == "probe":
        out: dict[str, Any] = {k: metrics.get(k) for k in PROBE_METRICS}
    elif "hypernym" in metrics and "leaf" in metrics:
        out = dict(metrics_mod.headline(metrics))
        h = metrics["hypernym"]
        out.update(hypernym_macro_f1=h.get("macro_f1"), seen_macro_f1=h.get("seen", {}).get("macro_f1"),
                   unseen_macro_f1=h.get("unseen", {}).get("macro_f1"))
    else:
        out = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                out[prefix] = value
        walk("", metrics)
    return {k: float(v) for k, v in out.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def aggregate(results: Iterable[Mapping]):
    """DataFrame with one row per (group, metric): mean and 95 % t-based CI across seeds.

    results: rows with kind, condition, lm_init, encoder, lm, prompt, baseline, seed, metrics (as collect()
    or core.jobs.sweeps.sweep_results give them) of one setting (in_setting: training runs of two
    settings in one group raise ConfigError); rows without metrics (unfinished or failed jobs)
    are skipped. A metric undefined for some seed (e.g. unseen F1 at r = 0) is averaged over the
    seeds where it is defined, and n_seeds says how many those were.
    """
    import pandas as pd

    groups: dict[tuple, dict[str, list[float]]] = {}
    setting_of: dict[tuple, tuple] = {}  # group -> the setting its training runs are of
    unbounded: set[tuple] = set()        # (group, metric) with a value that need not be a share
    for row in results:
        if not row.get("metrics"):
            continue
        key = tuple(row.get(c) for c in GROUP_COLUMNS)
        # seeds of one setting, never runs of two (a 6-concept test run beside the 385-concept one)
        if row.get("kind") == "train" and setting_of.setdefault(key, setting_key(row)) != setting_key(row):
            two = sorted(describe_setting(k) for k in (setting_of[key], setting_key(row)))
            raise ConfigError(
                f"these rows put training runs of different settings in one group ({two[0]}; {two[1]}), which "
                f"would average them as if they were seeds: aggregate one setting at a time, `for key in "
                f"results.settings(rows): results.aggregated(results.in_setting(rows, key))`")
        per_metric = groups.setdefault(key, {})
        shares = are_shares(row["metrics"])
        for metric, value in headline_metrics(row["metrics"]).items():
            per_metric.setdefault(metric, []).append(value)
            if not shares:
                unbounded.add((key, metric))
    records = []
    for key, per_metric in groups.items():
        for metric, values in sorted(per_metric.items()):
            mean, low, high = t_ci(values, bounds=None if (key, metric) in unbounded else (0.0, 1.0))
            records.append({**dict(zip(GROUP_COLUMNS, key)), "metric": metric, "mean": mean,
                            "ci_low": low, "ci_high": high, "n_seeds": len(values)})
    return pd.DataFrame.from_records(records, columns=AGGREGATE_COLUMNS)


def wide(table, metrics: Sequence[str] = MAIN_METRICS, digits: int = 3):
    """One row per group, one column per metric: "mean [lo, hi]" (or "mean" for one seed), plus
    the number of seeds. For printing (sweep show) and the report."""
    import pandas as pd

    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    if table.empty:
        return pd.DataFrame()
    unknown = [m for m in metrics if m not in set(table["metric"])]
    if len(unknown) == len(metrics):              # (some unknown beside known ones: e.g. no unseen pairs)
        raise ConfigError(f"none of the metrics {', '.join(map(repr, unknown)) or '(none given)'} is in the table; it holds "
                          f"{', '.join(sorted(set(table['metric'])))}")
    records: dict[tuple, dict] = {}
    for rec in table.to_dict("records"):
        if rec["metric"] not in metrics:
            continue
        key = tuple(rec[c] for c in GROUP_COLUMNS)
        row = records.setdefault(key, {**{c: rec[c] for c in GROUP_COLUMNS}, "n": 0})
        row[rec["metric"]] = format_ci(rec["mean"], rec["ci_low"], rec["ci_high"], digits)
        row["n"] = max(row["n"], int(rec["n_seeds"]))
    frame = pd.DataFrame.from_records(list(records.values()))
    present = [m for m in metrics if m in frame.columns]
    keep = [c for c in GROUP_COLUMNS if frame[c].notna().any()]
    return frame[keep + ["n"] + present]


def format_ci(mean, low, high, digits: int = 3) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if low is None or high is None or (isinstance(low, float) and math.isnan(low)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


# ---------------------------------------------------------------- reading runs from disk

def _bool(text: str) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def read_question_rows(path: Path) -> list[dict]:
    """A questions.csv as summarize() rows (answer / pred / seen as bools, mass as float or None)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["answer"], r["pred"], r["seen"] = _bool(r["answer"]), _bool(r["pred"]), _bool(r.get("seen", "True"))
        r["mass"] = float(r["mass"]) if r.get("mass") not in (None, "", "None") else None
    return rows


def load_eval(folder: Path, split: str = "test") -> dict | None:
    """An evaluation's metrics: metrics.json, or — when it predates the current headline — the
    same recomputed from its questions.csv (marked `recomputed`) and written back over it, so it is
    summarized once. None if neither is usable."""
    from core import runs

    out = runs.eval_dir(folder, split)
    try:
        stored = runs.read_json(out / runs.METRICS_JSON) if (out / runs.METRICS_JSON).is_file() else None
    except runs.RunError:
        stored = None
    if not isinstance(stored, dict):              # damaged: the questions may still say what it held
        stored = None
    if stored is not None and metrics_mod.is_current(stored):
        return stored
    table = out / runs.QUESTIONS_CSV
    if not table.is_file():
        return stored
    try:
        fresh = metrics_mod.summarize(read_question_rows(table))
    except (OSError, KeyError, ValueError):
        return stored
    about = {k: v for k, v in (stored or {}).items()
             if k in ("run_id", "kind", "split", "epoch", "status", "checkpoint", "config", "dataset_sha256")}
    if stored is not None:             # a damaged file stays as it is: what it held besides is unknown
        runs.rewrite_json_in_place(out / runs.METRICS_JSON, {**stored, **fresh})
    return {**fresh, **about, "recomputed": True}


def readable(metrics) -> bool:
    """Whether an evaluation has every number the comparison needs."""
    return isinstance(metrics, Mapping) and metrics_mod.is_current(metrics)


def train_seconds(info) -> float | None:
    """A run's training time, the sum of its epochs' (None when its records have none)."""
    epochs = [e for e in (info.checkpoint or {}).get("metrics", []) if isinstance(e, Mapping)]
    seconds = [e.get("train_seconds") for e in epochs if isinstance(e.get("train_seconds"), (int, float))]
    return sum(seconds) if seconds else None


def _train_facts(info) -> dict:
    """Provenance of a run for tables: device, training seconds, epochs, git commit, when."""
    ck = info.checkpoint or {}
    return {"device": ck.get("device"), "train_seconds": train_seconds(info),
            "epochs_done": info.epoch, "status": info.status, "git_commit": info.git_commit,
            "created": info.created, "finished": ck.get("finished")}


def collect(left_out: list[str] | None = None, repeated: list[str] | None = None,
            unreadable: list[str] | None = None, unevaluated: list[str] | None = None) -> list[dict]:
    """One row per evaluated run (test split), per baseline and per LM probe on disk:
    {kind: train|baseline|probe, name, baseline, <config fields>, metrics, ...provenance}. A config
    trained twice (two sweeps that ran at once, a rerun) is one row, the newest: the same seed
    again is not another seed; the older runs' names are appended to `repeated` when given. Configs
    are compared as recorded (a subset limit the data does not reach is no limit). Runs and
    baselines measured on another version of their dataset than the installed one are not rows
    (other images, other splits); their names are appended to `left_out` when given. LM probes read
    only the concept-category pairs and stay. Run folders that cannot be read are not rows either;
    "<folder>: <why>" of each is appended to `unreadable` when given (else runs.list_runs names them
    on stderr). Finished runs without a test evaluation (cancelled while it ran, say) are not rows;
    their names are appended to `unevaluated` when given."""
    from core import conditions, runs

    versions = runs.DatasetVersions()
    found: list = [] if unreadable is not None else None
    infos = list(runs.list_runs(found))
    if unreadable is not None:
        unreadable += [f"{folder.name}: {why}" for folder, why in found]
    configs = {info.run_id: info.config for info in infos}
    rows = []
    for info in infos:
        if "test" not in info.evaluated:
            if unevaluated is not None and info.status == "finished":
                unevaluated.append(info.run_id)
            continue
        if not versions.checkpoint_is_current(info.checkpoint, info.config.dataset):
            if left_out is not None:
                left_out.append(info.run_id)
            continue
        metrics = load_eval(info.path, "test")
        if not metrics:
            continue
        config = versions.as_recorded(info.config).to_dict()
        if config.get("init_from"):
            config["init_from"] = first_stage(info.config, configs)
        recorded = (info.checkpoint.get("condition") or {}).get("report")
        config["condition"] = conditions.legacy_spec(config["condition"], recorded)
        if config.get("precision") == "auto" and info.checkpoint.get("precision") in ("bf16", "fp32"):
            # what "auto" resolved to where it trained: a run of bf16 and one of auto-that-was-bf16
            # trained alike and belong in one setting
            config["precision"] = info.checkpoint["precision"]
        rows.append({"kind": "train", "name": info.run_id, "baseline": None, **config,
                     "metrics": metrics, "removal": removal_of(recorded), **_train_facts(info)})
    newest: dict[str, dict] = {}
    for row in rows:      # list_runs gives the newest first: it stays, older runs of its config go
        kept = newest.setdefault(repr(sorted((k, _hashable(row[k])) for k in _config_of(row))), row)
        if kept is not row and repeated is not None:
            repeated.append(row["name"])
    rows = list(newest.values())
    rows += collect_baselines(left_out, versions)
    rows += collect_probes()
    return rows


def removal_of(report: Mapping | None) -> str | None:
    """What a run's condition removed and how it labelled, as its recorded report says (concepts or
    categories removed, pairs removed, the shuffle's moves): equal for two conditions that trained
    the same data under two names. None for a run recorded without a report."""
    if not report:
        return None
    keep = ("removed_concepts", "categories", "removed_pairs", "moved", "groups", "singletons")
    return json.dumps({k: report.get(k) for k in keep}, sort_keys=True, default=str)


def same_removal(rows: list[dict]) -> dict[tuple[str, ...], list[int]]:
    """{conditions: seeds} for conditions whose training runs, of one model (LM init) and seed, removed
    the same pairs and labelled alike by their recorded reports: one run under several names (at a
    small scale random:0.25 and random:0.5 both take max(1, int(n r)) = 1 member of every small
    category). Shuffles are compared by what they moved, which tells cross from within."""
    from core.base import ConfigError
    from core.conditions import parse_condition
    groups: dict[tuple, list[str]] = {}
    for r in rows:
        if r.get("kind") == "train" and r.get("removal") is not None:
            try:
                shuffle = parse_condition(r["condition"]).shuffle_kind
            except ConfigError:          # a spelling this version does not read: not compared
                continue
            groups.setdefault((r.get("lm_init"), r.get("seed"), shuffle, r["removal"]), []).append(r["condition"])
    out: dict[tuple[str, ...], set] = {}
    for (_, seed, _, _), conds in groups.items():
        conds = sorted(set(conds), key=condition_order)
        if len(conds) > 1:
            out.setdefault(tuple(conds), set()).add(seed)
    return {k: sorted(v) for k, v in out.items()}


def first_stage(config, configs: Mapping) -> str:
    """How a setting names the run a leaf stage (TrainConfig.init_from) started from: by what that
    first stage did differently from this stage, not by its id, which differs per seed, so the seeds
    of one two-stage recipe are one setting with a CI. A first stage no longer on disk keeps its id."""
    source = configs.get(Path(config.init_from).name)
    if source is None:
        return config.init_from
    mine, theirs = config.to_dict(), source.to_dict()
    differ = [f"{k}={theirs[k]}" for k in sorted(theirs)
              if k not in VARIED_FIELDS and k != "init_from" and theirs[k] != mine[k]]
    if source.init_from:     # a stage of a stage: its own start stays named, chains do not merge
        differ.append(f"init_from={Path(source.init_from).name}")
    return "(a first stage with " + (", ".join(differ) if differ else "this stage's config") + ")"


def collect_baselines(left_out: list[str] | None = None, versions=None) -> list[dict]:
    """One row per baseline on disk (runs/baselines/*/eval/test) measured on the installed version
    of its dataset (collect). Folders holding the same baseline (config.baseline_identity: e.g.
    written for runs that differ only in the LM, or before folders were named by it) count once,
    the newest: they are one measurement, not several seeds."""
    from core import runs
    from core.config import baseline_identity

    versions = versions or runs.DatasetVersions()
    newest: dict[str, tuple[float, dict]] = {}
    for folder, config in runs.baseline_folders():
        metrics = load_eval(folder, "test")
        if not metrics:
            continue
        if not versions.current(config.get("dataset"), metrics.get("dataset_sha256")):
            if left_out is not None:
                left_out.append(f"baselines/{folder.name}")
            continue
        config = _limits_as_recorded(config, versions)
        key = repr(sorted(baseline_identity(config["baseline"], config).items()))
        written = _mtime(runs.eval_dir(folder, "test") / runs.METRICS_JSON)
        if key not in newest or written >= newest[key][0]:
            newest[key] = (written, {"kind": "baseline", "name": f"baselines/{folder.name}", **config,
                                     "metrics": metrics})
    return [row for _, row in sorted(newest.values(), key=lambda t: t[1]["name"])]


def _limits_as_recorded(config: dict, versions) -> dict:
    """A baseline's stored config with its subset limits as a run records them (a limit the data does
    not reach is none) and its split (one stored before split_percent existed split 60/20/20), so it
    sits beside the runs of the same data."""
    from core.config import TrainConfig
    try:
        cfg = versions.as_recorded(TrainConfig.from_stored({k: v for k, v in config.items() if k != "baseline"}))
    except (TypeError, ValueError):
        return config
    return {**config, "max_concepts": cfg.max_concepts, "images_per_concept": cfg.images_per_concept,
            "split_percent": cfg.split_percent}


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else 0.0


def collect_probes() -> list[dict]:
    """One row per LM probe on disk (runs/probes/<lm>_<dataset>/metrics.json)."""
    from core import paths
    from core.probe import load_summary

    root = paths.runs_dir() / "probes"
    rows = []
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            m = load_summary(folder)            # an older summary: redone from its probe.csv
            if isinstance(m, dict) and m.get("kind") == "probe":
                rows.append({"kind": "probe", "name": f"probes/{folder.name}", "baseline": None,
                             "lm": m.get("lm"), "lm_init": m.get("lm_init"), "dataset": m.get("dataset"),
                             "condition": None, "seed": m.get("seed"), "metrics": m})
    return rows


# ---------------------------------------------------------------- settings

def setting_key(row: Mapping) -> tuple:
    """Everything about a training run but what a grid varies (condition, LM init, seed, device)."""
    return tuple(sorted((k, _hashable(v)) for k, v in row.get("config_fields", _config_of(row)).items()
                        if k not in VARIED_FIELDS))


def _config_of(row: Mapping) -> dict:
    from core.config import TrainConfig
    names = TrainConfig.__dataclass_fields__
    return {k: row.get(k) for k in names}


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def describe_setting(key: tuple) -> str:
    """'concepts (80 concepts) · efficientnet-lite2 + smollm2-135m · gelu-mlp, 1 pooled token → 4 LM
    tokens · 3 epochs' plus any other field that differs from the defaults."""
    from core.config import TrainConfig

    d = dict(key)
    defaults = TrainConfig().to_dict()
    subset = ("all concepts" if d.get("max_concepts") is None else f"{d['max_concepts']} concepts") + \
        ("" if d.get("images_per_concept") is None else f" × {d['images_per_concept']} images")
    shown = {"dataset", "max_concepts", "images_per_concept", "encoder", "lm", "projector", "image_tokens",
             "projector_tokens", "epochs"}
    extra = [f"{k}={v}" for k, v in sorted(d.items()) if k not in shown and v != defaults.get(k)]
    pooled, per_token = d.get("image_tokens"), d.get("projector_tokens", defaults["projector_tokens"])
    # The encoder grid is pooled to `pooled` tokens and each becomes `per_token` LM tokens.
    tokens = f"{pooled} pooled token{'' if pooled == 1 else 's'}"
    if isinstance(pooled, int) and isinstance(per_token, int):
        tokens += f" → {pooled * per_token} LM token{'' if pooled * per_token == 1 else 's'}"
    return (f"{d.get('dataset')} ({subset}) · {d.get('encoder')} + {d.get('lm')} · {d.get('projector')}, "
            f"{tokens} · {d.get('epochs')} epoch{'' if d.get('epochs') == 1 else 's'}" + (" · " + ", ".join(extra) if extra else ""))


def settings(rows: list[dict]) -> list[tuple]:
    """Training settings present, the one with most runs first."""
    counts: dict[tuple, int] = {}
    for r in rows:
        if r["kind"] == "train":
            counts[setting_key(r)] = counts.get(setting_key(r), 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], describe_setting(k)))


def in_setting(rows: list[dict], key: tuple) -> list[dict]:
    """Training runs of this setting plus the baselines on the same data (not the probes)."""
    wanted = dict(key)
    out = []
    for r in rows:
        if r["kind"] == "train" and setting_key(r) == key:
            out.append(r)
        elif r["kind"] == "baseline" and all(r.get(f) == wanted.get(f) for f in SAME_DATA_FIELDS):
            out.append(r)
    return out


def probes_for(rows: list[dict], lm: str | None, dataset: str | None) -> list[dict]:
    """The probes of this LM on this dataset (any init), pretrained first."""
    found = [r for r in rows if r["kind"] == "probe" and r.get("lm") == lm and r.get("dataset") == dataset]
    return sorted(found, key=lambda r: (r.get("lm_init") != "pretrained", r["name"]))


def series_name(row: Mapping) -> str:
    if row["kind"] == "baseline":
        return {"majority": "majority", "image-probe": "image probe (no LM)"}.get(row["baseline"], str(row["baseline"]))
    if row["kind"] == "probe":
        return f"LM probe ({row.get('lm')})"
    return "random-init LM" if row.get("lm_init") == "random" else "pretrained LM"


def per_run_table(rows: list[dict]):
    """One row per run / baseline with provenance and its headline metrics (table and CSV)."""
    import pandas as pd

    records = []
    for r in rows:
        if r["kind"] == "probe":
            continue
        facts = {k: r.get(k) for k in ("device", "train_seconds", "git_commit")} if r["kind"] == "train" else {}
        records.append({"name": r["name"], "model": series_name(r), "condition": r["condition"],
                        "seed": r["seed"], **facts, **headline_metrics(r["metrics"])})
    return pd.DataFrame.from_records(records)


def aggregated(rows: list[dict]):
    """aggregate() of these rows with a `model` column (pretrained / random-init LM / baseline)."""
    # a baseline reads neither the LM's init nor its prompt: its seeds form one group whatever
    # config they were written under
    table = aggregate([{**r, **{k: r.get(k) if r["kind"] == "train" else None for k in ("lm_init", "prompt")}}
                       for r in rows if r["kind"] != "probe"])
    if table.empty:
        return table.assign(model=[])
    table["model"] = [series_name({"kind": k, "baseline": b, "lm_init": i})
                      for k, b, i in zip(table["kind"], table["baseline"], table["lm_init"])]
    return table


_RATIO = re.compile(r"random:([0-9.]+)")


def ratio_of(condition: str | None) -> float | None:
    """Ablation ratio of a condition: none = 0, random:r = r; anything else (pairs, systematic,
    shuffles, combinations) has none on the paper's ablation axis."""
    if condition == "none":
        return 0.0
    m = _RATIO.fullmatch(condition or "")
    return float(m.group(1)) if m else None


def condition_order(condition: str | None) -> tuple:
    """Sort key: none/random by r, then pairs, systematic, shuffles, combinations."""
    c = condition or ""
    r = ratio_of(c)
    if r is not None:
        return (0, r, "")
    rank = 1 if c.startswith("pairs") else 2 if c.startswith("systematic") else 3 if c in ("cross", "within") else 4
    return (rank, 0.0, c)


METRIC_LABELS = {"seen_category_f1": "seen", "unseen_category_f1": "unseen",
                 "hypernym_category_f1": "all hypernym", "leaf_concept_f1": "leaf per-concept",
                 "leaf_accuracy": "leaf accuracy"}


def ratio_curve_rows(table, metrics: tuple[str, ...] = ("unseen_category_f1", "seen_category_f1")) -> list[dict]:
    """Rows for figures.ratio_curves: trained models under none / random:r, one series per
    (model, metric)."""
    out = []
    for rec in table.to_dict("records"):
        r = ratio_of(rec["condition"])
        if rec["kind"] != "train" or r is None or rec["metric"] not in metrics:
            continue
        out.append({"series": f"{rec['model']} · {METRIC_LABELS.get(rec['metric'], rec['metric'])}",
                    "ratio": r, "mean": rec["mean"], "lo": finite_or_none(rec["ci_low"]), "hi": finite_or_none(rec["ci_high"]),
                    "n": rec["n_seeds"]})
    return out


def chance_curve_rows(table, metric: str = "unseen_chance_f1") -> list[dict]:
    """The fair coin's level on the same questions, per ratio (mean over models and seeds)."""
    by_ratio: dict[float, list[float]] = {}
    for rec in table.to_dict("records"):
        r = ratio_of(rec["condition"])
        if rec["kind"] == "train" and r is not None and rec["metric"] == metric:
            by_ratio.setdefault(r, []).append(rec["mean"])
    return [{"ratio": r, "mean": sum(v) / len(v)} for r, v in sorted(by_ratio.items())]


def finite_or_none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def baseline_levels(table, metric: str = "hypernym_category_f1") -> dict[str, float]:
    """Baseline model → its mean `metric` (pooled over the baseline's conditions)."""
    sel = table[(table["kind"] == "baseline") & (table["metric"] == metric)]
    return {model: float(group["mean"].mean()) for model, group in sel.groupby("model")}


def per_category(rows: list[dict], block: str = "unseen", score: str = "macro_f1_yes_no"):
    """Mean per-category `score` (default the yes/no macro-F1) per (category, model · condition)
    over seeds; block: all | seen | unseen."""
    import pandas as pd

    if block not in ("all", "seen", "unseen"):
        raise ConfigError(f"block must be all, seen or unseen, got {block!r}")

    records = []
    for r in rows:
        if r["kind"] == "probe":
            continue
        h = r["metrics"]["hypernym"]
        cats = (h if block == "all" else h.get(block, {})).get("per_category", {})
        for category, scores in cats.items():
            if scores.get(score) is not None:
                records.append({"category": category, "column": f"{series_name(r)} · {r['condition']}",
                                "value": scores[score]})
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records)
    return frame.pivot_table(index="category", columns="column", values="value", aggfunc="mean")


def probe_vs_vlm(rows: list[dict], probe: Mapping, block: str = "unseen"):
    """Per category: the VLM's yes/no macro-F1 (mean over the given training runs and seeds, in
    `block`) beside the probe's per-category numbers. Categories where either side is missing are
    left out of nothing: the missing side is NaN."""
    import pandas as pd

    vlm = per_category([r for r in rows if r["kind"] == "train"], block)
    probe_cats = pd.DataFrame.from_dict(probe.get("per_category", {}), orient="index")
    if probe_cats.empty and vlm.empty:
        return pd.DataFrame()
    out = pd.DataFrame(index=sorted(set(vlm.index) | set(probe_cats.index)))
    out["vlm_macro_f1"] = vlm.mean(axis=1) if not vlm.empty else float("nan")
    for col in ("chat_macro_f1", "chat_accuracy", "plain_macro_f1", "plain_accuracy", "pairwise", "sentence"):
        if col in probe_cats.columns:
            out[col] = probe_cats[col]
    return out


# ---------------------------------------------------------------- the report

def left_out_names(left_out: Sequence[str], quote: str = "") -> str:
    """collect's left-out items as one phrase: the first LEFT_OUT_NAMED by name, then a count."""
    named = ", ".join(f"{quote}{n}{quote}" for n in left_out[:LEFT_OUT_NAMED])
    more = f" and {len(left_out) - LEFT_OUT_NAMED} more" if len(left_out) > LEFT_OUT_NAMED else ""
    return named + more


def report_markdown(rows: list[dict], commit: str | None = None, now: dt.datetime | None = None,
                    left_out: Sequence[str] = (), repeated: Sequence[str] = (),
                    unreadable: Sequence[str] = ()) -> str:
    """docs/results.md from whatever is on disk: per setting and condition the seen / unseen
    per-category macro-F1 with 95 % t-CIs over seeds, chance, leaf numbers, baselines, LM probes,
    and per run its device, training time and git commit; `left_out`, `repeated` and `unreadable`
    (collect's) are named in notes."""
    now = now or dt.datetime.now()
    lines = [
        "# TaxoLens results", "",
        f"Generated by `taxolens results report` on {now:%Y-%m-%d %H:%M} (code at git {(commit or 'unknown')[:10]}) "
        "from every evaluated run, baseline and LM probe under the data directory; nothing here is typed by hand.",
        "",
        "**Metric.** Per-category yes/no macro-F1: within one category the mean of the yes-class and the "
        "no-class F1, then the mean over categories, for the hypernym questions about *seen* and *unseen* "
        "(concept, category) pairs. A category whose questions there hold one answer alone (after random "
        "ablation a one-concept category keeps only \"no\" among the seen pairs) has no yes/no macro-F1 and is "
        "left out of the mean; the per-run table says how many categories were scored where some were left out. "
        "*Chance* is a fair coin's expected value of the same average on the same "
        "questions (per category yes-F1 = π/(π+0.5), no-F1 = (1−π)/(1.5−π), π the category's yes share). "
        "Leaf: accuracy and the yes/no macro-F1 per target concept, averaged over concepts. Brackets: 95 % "
        "t-based confidence interval over seeds (mean ± t·s/√n, clipped to [0, 1]; none with one seed). *Unseen share*: the share "
        "of test hypernym questions whose pair the condition removed from training.", ""]
    if left_out:
        lines += [f"Left out: {len(left_out)} run(s) and baseline(s) measured on another version of their "
                  f"dataset than the one installed (other images and splits): {left_out_names(left_out, '`')}.", ""]
    if unreadable:
        lines += [f"Not counted: {len(unreadable)} run folder(s) that cannot be read: "
                  + "; ".join(f"`{u}`" for u in unreadable[:LEFT_OUT_NAMED])
                  + (f" and {len(unreadable) - LEFT_OUT_NAMED} more" if len(unreadable) > LEFT_OUT_NAMED else "")
                  + ".", ""]
    if repeated:
        lines += [f"Counted once: {len(repeated)} older run(s) of a config trained again (the same seed again is "
                  f"not another seed; the newest run is kept): {left_out_names(repeated, '`')}.", ""]
    train = [r for r in rows if r["kind"] == "train"]
    if not train:
        lines += ["No evaluated training runs yet: train some (`taxolens sweep submit paper`) and run "
                  "`taxolens results report` again.", ""]
    for key in settings(rows):
        chosen = in_setting(rows, key)
        runs_here = [r for r in chosen if r["kind"] == "train"]
        lines += [f"## {describe_setting(key)}", ""]
        devices = sorted({str(r.get("device")) for r in runs_here if r.get("device")})
        lines += [f"{len(runs_here)} run(s); device(s): {', '.join(devices) or 'not recorded'}.", ""]
        table = aggregated(chosen)
        lines += _setting_table(table)
        lines += ["", "Per run:", "", "| run | condition | LM | seed | seen | unseen | leaf acc | leaf F1/concept "
                  "| epochs | device | train time | git |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(runs_here, key=lambda r: (condition_order(r["condition"]), str(r.get("lm_init")), r["seed"])):
            h = metrics_mod.headline(r["metrics"])
            lines.append(f"| `{r['name']}` | {r['condition']} | {series_name(r)} | {r['seed']} | "
                         f"{_scored(r['metrics'], 'seen')} | {_scored(r['metrics'], 'unseen')} | {_f(h['leaf_accuracy'])} | "
                         f"{_f(h['leaf_concept_f1'])} | {r.get('epochs_done', '–')} | {r.get('device') or '–'} | "
                         f"{_duration(r.get('train_seconds'))} | {(r.get('git_commit') or '–')[:10]} |")
        lines.append("")
        probes = probes_for(rows, dict(key).get("lm"), dict(key).get("dataset"))
        if probes and runs_here:
            lines += _probe_correlation(runs_here, probes[0])
    lines += _lm_choice_section(rows)
    lines += _probe_section([r for r in rows if r["kind"] == "probe"])
    return "\n".join(lines).rstrip() + "\n"


def _scored(metrics: Mapping, block: str) -> str:
    """A run's per-category macro-F1 in `block`, with "(k of n categories)" when some categories
    held one answer alone and were left out of it."""
    b = metrics["hypernym"][block]
    left_out = b.get("n_one_answer") or 0
    scored = f" ({b['n_categories'] - left_out} of {b['n_categories']} categories)" if left_out else ""
    return _f(b.get("category_macro_f1")) + scored


def _f(v, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _setting_table(table) -> list[str]:
    if table.empty:
        return ["No evaluated runs in this setting.", ""]
    cell = {}
    for rec in table.to_dict("records"):
        cell[(rec["kind"], rec["condition"], rec["model"], rec["metric"])] = rec
    groups = sorted({(k, c, m) for k, c, m, _ in cell}, key=lambda g: (g[0] != "train", condition_order(g[1]), g[2]))
    out = ["| condition | model | seeds | unseen share | seen macro-F1 | unseen macro-F1 | chance seen / unseen "
           "| leaf accuracy | leaf F1 per concept |", "|---|---|---|---|---|---|---|---|---|"]
    for kind, cond, model in groups:
        def get(metric, ci=True):
            rec = cell.get((kind, cond, model, metric))
            if rec is None:
                return "–"
            return format_ci(rec["mean"], finite_or_none(rec["ci_low"]), finite_or_none(rec["ci_high"])) if ci else _f(rec["mean"])
        n = max((int(rec["n_seeds"]) for (k, c, m, _), rec in cell.items() if (k, c, m) == (kind, cond, model)),
                default=0)
        out.append(f"| {cond} | {model} | {n} | {get('unseen_share', False)} | {get('seen_category_f1')} | "
                   f"{get('unseen_category_f1')} | {get('seen_chance_f1', False)} / {get('unseen_chance_f1', False)} | "
                   f"{get('leaf_accuracy')} | {get('leaf_concept_f1')} |")
    return out


# What the `lms` preset varies; settings equal but for these are compared side by side.
LM_CHOICE_FIELDS = ("lm", "prompt")


def lm_choice(rows: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """The `lms` preset's comparison (which LM and prompt format to default to): pretrained-LM
    training runs grouped by setting but for the LM and the prompt format; for each group with at
    least two (LM, format) pairs, one entry per pair with its leaf accuracy and seen macro-F1 with
    every hypernym question kept (random:0), its unseen macro-F1 with none (random:1) — each
    (mean, CI low, CI high, seeds) — the mean training time, and that LM's probe row (or None)."""
    groups: dict[tuple, dict[tuple, list[dict]]] = {}
    for r in rows:
        if r["kind"] != "train" or r.get("lm_init") == "random" or r.get("condition") not in ("random:0", "random:1"):
            continue
        base = tuple(kv for kv in setting_key(r) if kv[0] not in LM_CHOICE_FIELDS)
        groups.setdefault(base, {}).setdefault((r.get("lm"), r.get("prompt")), []).append(r)
    out = []
    for base, pairs in groups.items():
        if len(pairs) < 2:
            continue
        entries = []
        for (lm, prompt), runs_here in sorted(pairs.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            table = aggregate(runs_here)   # one LM, format and init: one group per condition

            def stat(condition: str, metric: str):
                hit = table[(table["condition"] == condition) & (table["metric"] == metric)]
                if hit.empty:
                    return None, None, None, 0
                rec = hit.iloc[0]
                return (float(rec["mean"]), finite_or_none(rec["ci_low"]), finite_or_none(rec["ci_high"]),
                        int(rec["n_seeds"]))
            seconds = [r["train_seconds"] for r in runs_here if r.get("train_seconds")]
            probes = [p for p in probes_for(rows, lm, dict(base).get("dataset")) if p.get("lm_init") == "pretrained"]
            entries.append({"lm": lm, "prompt": prompt,
                            "leaf_accuracy": stat("random:0", "leaf_accuracy"),
                            "seen_category_f1": stat("random:0", "seen_category_f1"),
                            "unseen_category_f1": stat("random:1", "unseen_category_f1"),
                            "unseen_chance_f1": stat("random:1", "unseen_chance_f1"),
                            "train_seconds": sum(seconds) / len(seconds) if seconds else None,
                            "probe": probes[0] if probes else None})
        out.append((base, entries))
    return sorted(out, key=lambda g: -sum(e["leaf_accuracy"][3] + e["unseen_category_f1"][3] for e in g[1]))


def lm_choice_records(entries: list[dict]) -> list[dict[str, str]]:
    """lm_choice's entries of one setting as table rows of formatted cells (report and Results page)."""
    def cell(e: dict, key: str) -> str:
        mean, low, high, _ = e[key]
        return "–" if mean is None else format_ci(mean, finite_or_none(low), finite_or_none(high))

    records = []
    for e in entries:
        m = (e["probe"] or {}).get("metrics", {})
        records.append({
            "LM": str(e["lm"]), "prompt": str(e["prompt"]),
            "leaf accuracy (r = 0)": cell(e, "leaf_accuracy"), "seen macro-F1 (r = 0)": cell(e, "seen_category_f1"),
            "unseen macro-F1 (r = 1)": cell(e, "unseen_category_f1"), "chance (r = 1)": _f(e["unseen_chance_f1"][0]),
            "seeds r = 0 / r = 1": f"{e['leaf_accuracy'][3]} / {e['unseen_category_f1'][3]}",
            "probe macro-F1 chat / plain": (f"{_f(m.get('chat_macro_f1'))} / {_f(m.get('plain_macro_f1'))}"
                                            if e["probe"] else "not run"),
            "train time per run": _duration(e["train_seconds"])})
    return records


LM_CHOICE_NOTE = ("Pretrained LMs. *r = 0*: every hypernym question kept in training; *r = 1*: none, so every "
                  "test hypernym pair is unseen. *Probe*: the LM alone on the dataset's pairs (chat-template / "
                  "plain-format per-category macro-F1; a base model without a chat template has none).")


def _lm_choice_section(rows: list[dict]) -> list[str]:
    out = []
    for base, entries in lm_choice(rows):
        records = lm_choice_records(entries)
        out += ["## Which LM and prompt format (`taxolens sweep run lms`)", "",
                f"{describe_setting(base + (('lm', 'each LM'),))}. {LM_CHOICE_NOTE}", "",
                "| " + " | ".join(records[0]) + " |", "|" + "---|" * len(records[0])]
        out += ["| " + " | ".join(r.values()) + " |" for r in records] + [""]
    return out


def _probe_correlation(runs_here: list[dict], probe: Mapping) -> list[str]:
    """Does the VLM generalize better on the categories its LM knows? Spearman/Pearson per condition."""
    out = [f"LM knowledge (probe `{probe['name']}`, chat-template macro-F1 per category) against the "
           "VLM's unseen per-category macro-F1:", "",
           "| condition | model | categories | Spearman ρ | Pearson r |", "|---|---|---|---|---|"]
    any_row = False
    by_group: dict[tuple, list[dict]] = {}
    for r in runs_here:
        by_group.setdefault((r["condition"], series_name(r)), []).append(r)
    for (cond, model), group in sorted(by_group.items(), key=lambda kv: (condition_order(kv[0][0]), kv[0][1])):
        table = probe_vs_vlm(group, probe["metrics"], "unseen")
        if table.empty or "chat_macro_f1" not in table.columns:
            continue
        c = correlations(table["chat_macro_f1"].tolist(), table["vlm_macro_f1"].tolist())
        if c["n"] == 0:
            continue
        any_row = True
        out.append(f"| {cond} | {model} | {c['n']} | {_corr(c['spearman'], c['spearman_p'])} | "
                   f"{_corr(c['pearson'], c['pearson_p'])} |")
    return out + [""] if any_row else []


def _corr(v, p) -> str:
    return "–" if v is None else f"{v:.2f} (p = {p:.2g})"


def _probe_section(probes: list[dict]) -> list[str]:
    out = ["## LM knowledge probes (`taxolens probe-lm`)", ""]
    if not probes:
        return out + ["No probes yet: `taxolens probe-lm --lm <id>`.", ""]
    out += ["The LM alone on the dataset's own (concept, category) pairs — every concept with each of its "
            "categories (yes) and as many categories it is not in (no). *chat*: \"Is a dog a kind of animal?\" "
            "through the LM's chat template, the next token read over Yes / No / yes / no, answered yes when Yes "
            "outranks No; *plain*: \"Question: …\\nAnswer:\" with \" Yes\" / \" No\" (the former LM-only "
            "baseline); macro-F1 is the yes/no macro-F1 per category, then averaged; *says yes*: the share "
            "answered yes. *pairwise*: share of (concept, true category, wrong category) with P(yes | true) > "
            "P(yes | wrong), in the chat / plain format; *sentence*: share where log p(\"a dog is an animal\") > "
            "log p(\"a dog is a vehicle\").", "",
            "| LM | init | dataset | pairs | chat acc | chat macro-F1 | chat says yes | plain acc | plain macro-F1 "
            "| plain says yes | pairwise chat / plain | sentence | chance macro-F1 | template | time | device |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(probes, key=lambda r: r["name"]):
        m = r["metrics"]
        out.append(f"| {m.get('lm')} | {m.get('lm_init')} | {m.get('dataset')} | {m.get('n_pairs')} | "
                   f"{_f(m.get('chat_accuracy'))} | {_f(m.get('chat_macro_f1'))} | {_f(m.get('chat_yes_rate'))} | "
                   f"{_f(m.get('plain_accuracy'))} | {_f(m.get('plain_macro_f1'))} | {_f(m.get('plain_yes_rate'))} | "
                   f"{_f(m.get('chat_pairwise'))} / {_f(m.get('plain_pairwise'))} | {_f(m.get('sentence'))} | "
                   f"{_f(m.get('chance_macro_f1'))} | {m.get('chat_template') or 'none'} | "
                   f"{_duration(m.get('seconds'))} | {m.get('device') or '–'} |")
    return out + [""]
