"""Sweeps: a grid of runs expanded into individual job specs, the `paper` preset, and aggregation.

A sweep spec (JSON) is either a preset, {"preset": "paper", "scale": "cpu"}, or grids:

    {"name": "ablation-r", "base": {"epochs": 2, "max_concepts": 30},     # TrainConfig fields
     "grids": [{"conditions": ["random", "cross"], "ratios": [0.5, 0.9], "seeds": [0, 1, 2],
                "encoders": [...], "lms": [...], "lm_inits": ["pretrained"]},
               {"kind": "baseline", "baselines": ["lm_only"], "seeds": [0, 1, 2]}]}

(a single grid may also sit at the top level instead of under "grids"). A bare "random" in
`conditions` is crossed with `ratios`; "random:0.5", "systematic:2", "cross", ... are used as is.
Each grid is the product encoders × LMs × lm_inits × conditions × seeds; jobs are ordered seed by
seed so the first complete picture (every condition at seed 0) arrives first. `--scale` supplies
default TrainConfig fields (subset size, epochs) under the spec's own `base`.

aggregate() turns finished results into mean and bootstrap 95% CI across seeds per (condition,
metric).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from core.config import TrainConfig

GRID_KEYS = {"kind", "conditions", "ratios", "seeds", "encoders", "lms", "lm_inits", "baselines", "config"}
SPEC_KEYS = {"name", "base", "grids", "preset", "scale"}
GROUP_COLUMNS = ["kind", "condition", "lm_init", "encoder", "lm", "baseline"]

# Default TrainConfig fields per scale.
# `cpu`: 80 concepts (of 385) is the smallest subset where the within-category shuffle moves most
# concepts (65 of 80; at 40 only 12 move, most category sets being singletons) and 19 categories
# have >= 3 concepts; 3 epochs, since the training loss is still falling after 2. Measured on the
# 2-core reference machine: a train step (batch 32) costs 5.6 s and scoring 59 ms per question
# (1 thread), so the `paper` preset's 27 train jobs (on average 27 steps/epoch, 390 val and 390 test
# questions each) plus 6 baselines come to about 4.3 hours with one worker: an afternoon or a night.
# (The heaviest of them, random:0 with 37 steps/epoch, took 69 min end to end through the worker on
# that machine while other work kept its load average at 7-14; unshared it is about 13 min.)
# `full`: the whole dataset with the default 3 epochs, for a GPU (Slurm). `smoke`: short jobs that
# check the pipeline end to end, nothing more; 40 concepts because below 33 no two concepts of a
# seeded subset share a category set, so the preset's within-shuffle jobs are refused at submit.
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"max_concepts": 40, "images_per_concept": 3, "epochs": 1},
    "cpu": {"max_concepts": 80, "images_per_concept": None, "epochs": 3},
    "full": {"max_concepts": None, "images_per_concept": None, "epochs": 3},
}
DEFAULT_SCALE = "cpu"
PRESETS = ("paper",)


def _spec_error(message: str) -> Exception:
    from core.jobs.kinds import JobSpecError  # lazy: kinds imports this module lazily too
    return JobSpecError(message)


def preset(name: str, scale: str = DEFAULT_SCALE) -> dict:
    """The grid spec of a named preset at a scale."""
    if name != "paper":
        raise _spec_error(f"unknown sweep preset {name!r} (known: {', '.join(PRESETS)})")
    seeds = [0, 1, 2]
    return {
        "name": f"paper-{scale}",
        "scale": scale,
        "grids": [
            # Main result: pretrained LM under every deprivation condition.
            {"conditions": ["random", "systematic:4", "cross", "within"], "ratios": [0, 0.5, 0.9, 1.0],
             "seeds": seeds},
            # Control: the same architecture with a random-init (frozen) LM cannot bring taxonomic
            # knowledge, so unseen pairs should fall to chance; r = 0.5 has both seen and unseen pairs.
            {"conditions": ["random:0.5", "random:1"], "lm_inits": ["random"], "seeds": seeds},
            # Text-only LM answering "Is a squirrel a mammal?"-style questions, and the majority floor.
            {"kind": "baseline", "baselines": ["lm_only", "majority"], "conditions": ["none"], "seeds": seeds},
        ],
    }


def _as_list(value: Any, key: str) -> list:
    if not isinstance(value, list) or not value:
        raise _spec_error(f"sweep grid: {key} must be a non-empty list, got {value!r}")
    return value


def _conditions(grid: dict) -> list[str]:
    out = []
    ratios = grid.get("ratios")
    for cond in _as_list(grid.get("conditions", ["none"]), "conditions"):
        if not isinstance(cond, str):
            raise _spec_error(f"sweep grid: conditions must be strings, got {cond!r}")
        if cond == "random":
            if ratios is None:
                raise _spec_error("sweep grid: a bare 'random' condition needs 'ratios' (e.g. [0.5, 0.9])")
            for r in _as_list(ratios, "ratios"):
                if isinstance(r, bool) or not isinstance(r, (int, float)):
                    raise _spec_error(f"sweep grid: ratios must be numbers, got {r!r}")
                out.append(f"random:{r:g}")
        else:
            out.append(cond)
    return out


def expand(spec: dict) -> list[dict]:
    """Grid spec → [{"kind": "train"|"baseline", "spec": {...}}], unvalidated, ordered by seed."""
    if not isinstance(spec, dict):
        raise _spec_error(f"a sweep spec must be a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - SPEC_KEYS - GRID_KEYS)
    if unknown:
        raise _spec_error(f"sweep spec has unknown field(s) {', '.join(unknown)}")
    scale = spec.get("scale", DEFAULT_SCALE)
    if scale not in SCALES:
        raise _spec_error(f"unknown scale {scale!r} (known: {', '.join(SCALES)})")
    base = spec.get("base", {})
    if not isinstance(base, dict):
        raise _spec_error("sweep spec: base must be an object of training options")
    if "grids" in spec:
        if set(spec) & (GRID_KEYS - {"config"}):
            raise _spec_error("sweep spec: put grid fields either at the top level or under 'grids', not both")
        grids = _as_list(spec["grids"], "grids")
    else:
        grids = [{k: v for k, v in spec.items() if k in GRID_KEYS}]
    defaults = TrainConfig()
    jobs: list[tuple[int, int, dict]] = []
    for g_index, grid in enumerate(grids):
        if not isinstance(grid, dict):
            raise _spec_error(f"sweep grid {g_index}: must be an object")
        bad = sorted(set(grid) - GRID_KEYS)
        if bad:
            raise _spec_error(f"sweep grid {g_index}: unknown field(s) {', '.join(bad)} "
                              f"(allowed: {', '.join(sorted(GRID_KEYS))})")
        kind = grid.get("kind", "train")
        if kind not in ("train", "baseline"):
            raise _spec_error(f"sweep grid {g_index}: kind must be 'train' or 'baseline', got {kind!r}")
        overrides = {**SCALES[scale], **base, **grid.get("config", {})}
        seeds = _as_list(grid.get("seeds", [overrides.get("seed", defaults.seed)]), "seeds")
        axes = [
            _as_list(grid.get("encoders", [overrides.get("encoder", defaults.encoder)]), "encoders"),
            _as_list(grid.get("lms", [overrides.get("lm", defaults.lm)]), "lms"),
            _as_list(grid.get("lm_inits", [overrides.get("lm_init", defaults.lm_init)]), "lm_inits"),
            _conditions(grid),
            _as_list(grid.get("baselines", [None]) if kind == "baseline" else [None], "baselines"),
        ]
        for seed in seeds:
            for encoder, lm, lm_init, condition, baseline in itertools.product(*axes):
                config = {**overrides, "encoder": encoder, "lm": lm, "lm_init": lm_init,
                          "condition": condition, "seed": seed}
                if kind == "train":
                    job = {"kind": "train", "spec": {"config": config, "eval_splits": ["test"]}}
                else:
                    job = {"kind": "baseline", "spec": {"baseline": baseline, "config": config}}
                jobs.append((seed if isinstance(seed, int) else 0, len(jobs), job))
    jobs.sort(key=lambda t: (t[0], t[1]))
    seen, out = set(), []
    for _, _, job in jobs:  # a grid may name one run twice (e.g. "none" and random:0 elsewhere)
        key = json.dumps(job, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(job)
    return out


def resolve(spec: dict | str | Path, scale: str | None = None) -> dict:
    """A preset name, a JSON file path, or a spec dict → a grid spec (scale applied)."""
    if isinstance(spec, (str, Path)):
        if str(spec) in PRESETS:
            return preset(str(spec), scale or DEFAULT_SCALE)
        path = Path(spec)
        if not path.is_file():
            raise _spec_error(f"no sweep preset or spec file {str(spec)!r} (presets: {', '.join(PRESETS)})")
        from core import files
        try:   # through a cap, like every file a user points at
            spec = json.loads(files.read_text(path, files.MAX_JSON_BYTES))
        except (files.FileReadError, json.JSONDecodeError) as exc:
            raise _spec_error(f"cannot read sweep spec {path}: {exc}") from exc
    if not isinstance(spec, dict):
        raise _spec_error(f"a sweep spec must be a JSON object, got {type(spec).__name__}")
    if "preset" in spec:
        extra = sorted(set(spec) - {"preset", "scale"})
        if extra:
            raise _spec_error(f"a preset sweep takes only 'scale', not {', '.join(extra)}")
        return preset(spec["preset"], scale or spec.get("scale", DEFAULT_SCALE))
    return {**spec, "scale": scale} if scale else dict(spec)


def normalize(spec: dict) -> dict:
    """What a sweep job stores: its name, the source spec and every child job, each validated
    (so a bad combination is rejected at submit, not hours later)."""
    from core.jobs import kinds

    grid = resolve(spec)
    jobs = expand(grid)
    validated = []
    for i, job in enumerate(jobs):
        try:
            validated.append({"kind": job["kind"], "spec": kinds.validate(job["kind"], job["spec"])})
        except kinds.JobSpecError as exc:
            raise kinds.JobSpecError(f"sweep job {i + 1}/{len(jobs)} ({job['kind']} "
                                     f"{job['spec']['config']['condition']} seed "
                                     f"{job['spec']['config']['seed']}): {exc}") from exc
    name = grid.get("name") or f"sweep-{grid.get('scale', DEFAULT_SCALE)}"
    return {"name": str(name), "source": spec, "jobs": validated}


# -- results -------------------------------------------------------------------------------------

def headline_metrics(metrics: Mapping) -> dict[str, float]:
    """The numbers compared across conditions: core.metrics.headline plus macro F1s for a
    summarize()-style dict; numeric leaves (dotted names) for anything else."""
    if "hypernym" in metrics and "leaf" in metrics:
        from core.metrics import headline
        out = dict(headline(metrics))
        h = metrics["hypernym"]
        out.update(hypernym_macro_f1=h.get("macro_f1"), seen_macro_f1=h.get("seen", {}).get("macro_f1"),
                   unseen_macro_f1=h.get("unseen", {}).get("macro_f1"))
        return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flat: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix] = float(value)
    walk("", metrics)
    return flat


def sweep_results(store, sweep_id: int) -> list[dict]:
    """One row per child job of a sweep: its grouping fields, seed, status and (when finished)
    its test metrics."""
    rows = []
    for job in sorted(store.list(parent_id=sweep_id), key=lambda j: j.id):
        cfg = job.spec.get("config", {})
        metrics = (job.result or {}).get("metrics", {}).get("test") if job.status == "succeeded" else None
        rows.append({"job_id": job.id, "status": job.status, "kind": job.kind,
                     "condition": cfg.get("condition"), "lm_init": cfg.get("lm_init"),
                     "encoder": cfg.get("encoder"), "lm": cfg.get("lm"),
                     "baseline": job.spec.get("baseline"), "seed": cfg.get("seed"), "metrics": metrics})
    return rows


def bootstrap_ci(values: Iterable[float], n_boot: int = 10000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean, resampling the values (seeds)."""
    import numpy as np

    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if v.size == 1:
        return float(v[0]), float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(v.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def aggregate(results: Iterable[Mapping]):
    """DataFrame with one row per (group, metric): mean and bootstrap 95% CI across seeds.

    results: rows as from sweep_results() (kind, condition, lm_init, encoder, lm, baseline, seed,
    metrics); rows without metrics (unfinished or failed jobs) are skipped. A metric undefined for
    some seed (None, e.g. unseen F1 at r = 0) is averaged over the seeds where it is defined.
    """
    import pandas as pd

    groups: dict[tuple, dict[str, list[float]]] = {}
    for row in results:
        if not row.get("metrics"):
            continue
        key = tuple(row.get(c) for c in GROUP_COLUMNS)
        per_metric = groups.setdefault(key, {})
        for metric, value in headline_metrics(row["metrics"]).items():
            per_metric.setdefault(metric, []).append(value)
    records = []
    for key, per_metric in groups.items():
        for metric, values in sorted(per_metric.items()):
            mean, low, high = bootstrap_ci(values)
            records.append({**dict(zip(GROUP_COLUMNS, key)), "metric": metric, "mean": mean,
                            "ci_low": low, "ci_high": high, "n_seeds": len(values)})
    columns = GROUP_COLUMNS + ["metric", "mean", "ci_low", "ci_high", "n_seeds"]
    return pd.DataFrame.from_records(records, columns=columns)
