"""What each kind of job is: how its spec is checked at submit time and what running it does.

A kind is a `validate(spec) -> spec` (raise JobSpecError with the reason; returns the normalized spec
that is stored) and an `execute(spec, ctx) -> result` (runs in the worker's child process, or on a
Slurm node). Results are JSON: paths and metrics (the files themselves are on disk, where core.runs
and core.results find them).
The built-in kinds validate with core.preflight, the very checks of the direct commands, so a job
is refused at submit for whatever `taxolens <command>` would refuse at once. A kind that creates an
output directory also says how to discard it when an attempt fails or is cancelled before it made
anything worth keeping (`discard_output`).

Kinds: train (train, then evaluate on the test split), evaluate (an existing run on a split),
baseline (majority), probe (what the LM alone knows: core.probe), coherence (visual coherence
table), clusters and lens (Geometry's trees and logit lens of one checkpoint: core.clusters,
core.lens), import (a collection in THINGS layout as a dataset: core.data.things); sweep (expands into child jobs) is registered by core.jobs.sweeps and sweep-run (a whole sweep
as one job, its runs trained together) by core.jobs.sweep_run, both imported by core/jobs/__init__.py,
so every kind is known once any core.jobs module is.
Extra kinds can be registered by modules named in TAXOLENS_JOB_PLUGINS (comma-separated; the
test suite uses this for quick test-only kinds).
"""
from __future__ import annotations

import contextvars
import dataclasses
import functools
import importlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.base import ConfigError, Progress
from core.conditions import canonical
from core.config import BASELINES, TrainConfig, canonical_split_percent

PLUGINS_ENV = "TAXOLENS_JOB_PLUGINS"


class JobSpecError(ConfigError):
    """A job spec that cannot run; the message says why (CLI: exit code 2)."""


class JobCancelled(Exception):
    """Raised inside a job when its cancellation was requested."""


def is_cancellation(exc: BaseException) -> bool:
    """Our JobCancelled, or core.train.Cancelled (train's should_stop contract)."""
    if isinstance(exc, JobCancelled):
        return True
    train = sys.modules.get("core.train")
    return train is not None and isinstance(exc, getattr(train, "Cancelled", ()))


@dataclass
class JobContext:
    """What a running job gets besides its spec."""
    job_id: int | None
    progress: Progress                  # progress(fraction 0..1, message)
    should_stop: Callable[[], bool]       # True once cancellation was requested
    output_dir: Path | None = None        # fixed at first start (so a retried job resumes in place)
    submit_children: Callable[[list[tuple[str, dict]]], list[int]] | None = None  # sweeps only

    def check_cancel(self) -> None:
        if self.should_stop():
            raise JobCancelled(f"job {self.job_id} cancelled")


@dataclass(frozen=True)
class JobKind:
    name: str
    validate: Callable[[dict], dict]
    execute: Callable[[dict, JobContext], dict]
    describe: Callable[[dict], str]
    # Creates the job's output directory on first start; None = the kind needs none.
    make_output_dir: Callable[[dict], Path] | None = None
    # Removes that directory after a failed or cancelled attempt unless it holds something to keep.
    discard_output: Callable[[Path], None] | None = None


_KINDS: dict[str, JobKind] = {}
_plugins_loaded: set[str] = set()


def register(kind: JobKind) -> None:
    _KINDS[kind.name] = kind


def _load_plugins() -> None:
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        if module not in _plugins_loaded:
            importlib.import_module(module)
            _plugins_loaded.add(module)


def get(name: str) -> JobKind:
    _load_plugins()
    if name not in _KINDS:
        raise JobSpecError(f"unknown job kind {name!r} (known: {', '.join(sorted(_KINDS))})")
    return _KINDS[name]


def names() -> list[str]:
    _load_plugins()
    return sorted(_KINDS)


# Whether the job being validated will run on this machine (the local worker) or elsewhere (Slurm):
# checks of this machine (its GPU, model weights in its caches) only apply to the former.
_RUNS_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar("taxolens_job_runs_here", default=True)


def runs_here() -> bool:
    return _RUNS_HERE.get()


def validate(kind: str, spec: Any, here: bool | None = None) -> dict:
    """The normalized spec, or JobSpecError with the reason. `here=False`: the job runs on another
    machine (Slurm); None keeps the caller's setting (a sweep's children inherit the sweep's)."""
    if not isinstance(spec, dict):
        raise JobSpecError(f"a {kind} job spec must be a JSON object, got {type(spec).__name__}")
    job_kind = get(kind)
    token = _RUNS_HERE.set(runs_here() if here is None else bool(here))
    try:
        return job_kind.validate(spec)
    except JobSpecError:
        raise
    except ConfigError as exc:
        raise JobSpecError(f"invalid {kind} job: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise JobSpecError(f"invalid {kind} job: {exc}") from exc
    finally:
        _RUNS_HERE.reset(token)


def discard_output(kind: JobKind, output_dir: str | Path | None) -> None:
    """After a failed or cancelled attempt (local worker or Slurm node): drop its output folder
    unless it holds something to keep (a checkpoint to resume from, finished metrics). Never masks
    the attempt's own outcome."""
    if output_dir is None or kind.discard_output is None:
        return
    try:
        kind.discard_output(Path(output_dir))
    except OSError as exc:
        print(f"(could not remove {output_dir}: {exc})", flush=True)


def sub_progress(progress: Progress, start: float, end: float) -> Progress:
    """Map a step's own 0..1 progress into [start, end] of the whole job."""
    def report(fraction: float, message: str = "") -> None:
        progress(start + (end - start) * min(1.0, max(0.0, float(fraction))), message)
    return report


# -- spec helpers ----------------------------------------------------------------------------------

def _keys(spec: dict, required: set[str], optional: set[str], kind: str) -> None:
    missing = sorted(required - set(spec))
    if missing:
        # the subjects `jobs submit` also takes positionally, as `taxolens evaluate RUN` does
        positional = {"run": "RUN or --run", "baseline": "BASELINE or --baseline", "root": "ROOT", "csv": "CSV"}
        flags = ", ".join(positional.get(k, "--" + k.replace("_", "-")) for k in missing)
        raise JobSpecError(f"{kind} job spec is missing {', '.join(missing)} (on the command line: {flags})")
    unknown = sorted(set(spec) - required - optional)
    if unknown:
        raise JobSpecError(f"{kind} job spec has unknown field(s) {', '.join(unknown)} "
                           f"(allowed: {', '.join(sorted(required | optional))})")


def _config(spec: dict, kind: str) -> TrainConfig:
    """The spec's TrainConfig, built (types and ranges are checked by core.preflight after)."""
    raw = spec.get("config", {})
    if not isinstance(raw, dict):
        raise JobSpecError(f"{kind} job: config must be an object of training options")
    try:
        cfg = TrainConfig.from_dict(raw)
        return dataclasses.replace(cfg, condition=canonical(cfg.condition))   # one spelling per condition
    except ConfigError as exc:
        raise JobSpecError(f"invalid {kind} job: {exc}") from exc
    except TypeError as exc:  # wrong value types reaching the dataclass
        raise JobSpecError(f"invalid {kind} job: {exc}") from exc


def _reuse(spec: dict, kind: str) -> dict:
    """The optional "reuse" field ({"reuse": true} when set; sweeps set it): take finished work of
    the same config instead of doing it again."""
    reuse = spec.get("reuse", False)
    if not isinstance(reuse, bool):
        raise JobSpecError(f"invalid {kind} job: reuse must be true or false, got {reuse!r}")
    return {"reuse": True} if reuse else {}


def _splits(value: Any) -> list[str]:
    from core.runs import SPLITS
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(s in SPLITS for s in value):
        raise JobSpecError(f"splits must be a list drawn from {', '.join(SPLITS)}, got {value!r}")
    return list(dict.fromkeys(value))


# -- train ---------------------------------------------------------------------------------------

def _train_validate(spec: dict) -> dict:
    from core import preflight
    _keys(spec, {"config"}, {"eval_splits", "reuse"}, "train")
    splits = _splits(spec.get("eval_splits", ["test"]))
    cfg = _config(spec, "train")
    cfg = preflight.check_train(cfg, here=runs_here())     # what `taxolens train` checks, as it records it
    return {"config": cfg.to_dict(), "eval_splits": splits, **_reuse(spec, "train")}


def _train_output_dir(spec: dict) -> Path:
    """A new run folder; with "reuse" (a sweep's runs), a finished run of the same config when there
    is one, else a cancelled one, claimed and resumed where it stopped (runs.ReusableRuns); decided
    when the job starts: the same config and seed train the same run."""
    from core import runs
    cfg = TrainConfig.from_dict(spec["config"])
    return (spec.get("reuse") and runs.ReusableRuns().take(cfg)) or runs.create_run_dir(cfg)


def _train_execute(spec: dict, ctx: JobContext) -> dict:
    from core.evaluate import evaluate
    from core.results import load_eval
    from core.train import train

    from core import runs

    cfg = TrainConfig.from_dict(spec["config"])
    splits = spec["eval_splits"]
    train_share = 0.8 if splits else 1.0
    # a finished run (reused, or a retried job whose training was done) returns at once
    reused = ctx.output_dir is not None and runs.is_finished(ctx.output_dir)
    resumed = not reused and ctx.output_dir is not None and runs.has_started(ctx.output_dir)
    if reused:
        ctx.progress(0.0, f"{Path(ctx.output_dir).name} is finished: not trained again")
    elif resumed:
        ctx.progress(0.0, f"resuming {Path(ctx.output_dir).name} where it stopped")
    run_dir = Path(train(cfg, run_dir=ctx.output_dir, progress=sub_progress(ctx.progress, 0, train_share),
                         should_stop=ctx.should_stop))
    metrics = {}
    for i, split in enumerate(splits):
        ctx.check_cancel()
        step = (1 - train_share) / len(splits)
        # through load_eval: an evaluation summarized before today's headline is summarized again
        current = load_eval(run_dir, split) if runs.evaluation_is_current(run_dir, split) else None
        metrics[split] = current or evaluate(run_dir, split=split,
                                             progress=sub_progress(ctx.progress, train_share + i * step,
                                                                   train_share + (i + 1) * step))
    # reused / resumed: this job's wall time is not a whole run's (sweeps.time_estimate)
    return {"run_dir": str(run_dir), "metrics": metrics, **({"reused": True} if reused else {}),
            **({"resumed": True} if resumed else {})}


def _train_discard(output_dir: Path) -> None:
    from core import runs
    runs.discard_unstarted(output_dir)    # keeps any run with a checkpoint: it can resume


def _on_dataset(cfg: dict) -> str:
    """" on NAME" for a dataset other than the default (unsaid for the default, as most jobs use it),
    so jobs on an imported dataset are told apart from the same config on the default one."""
    name = cfg.get("dataset", TrainConfig.dataset)
    return f" on {name}" if name != TrainConfig.dataset else ""


def _train_describe(spec: dict) -> str:
    """"train random:0.5 seed 1", plus the LM, prompt format and dataset where they are not the
    defaults (a sweep crossing LMs or formats lists otherwise identical lines)."""
    cfg, default = spec["config"], TrainConfig()
    extra = "".join([" random-LM" if cfg.get("lm_init") == "random" else "",
                     f" {cfg['lm']}" if cfg.get("lm", default.lm) != default.lm else "",
                     f" {cfg['prompt']} prompt" if cfg.get("prompt", default.prompt) != default.prompt else "",
                     _on_dataset(cfg)])
    return f"train {cfg['condition']} seed {cfg['seed']}{extra}"


register(JobKind("train", _train_validate, _train_execute, describe=_train_describe,
                 make_output_dir=_train_output_dir, discard_output=_train_discard))


# -- evaluate ------------------------------------------------------------------------------------

def _trained_run(spec: dict, kind: str):
    """The trained run a job of one run (evaluate, clusters, lens) names, checked as `taxolens
    <kind> RUN` checks it."""
    from core import preflight
    if not isinstance(spec["run"], str) or not spec["run"]:
        raise JobSpecError(f"invalid {kind} job: run must be a run id or directory, got {spec['run']!r}")
    return preflight.trained_run(spec["run"], here=runs_here())


def _evaluate_validate(spec: dict) -> dict:
    _keys(spec, {"run"}, {"split"}, "evaluate")
    split = _splits(spec.get("split", "test"))
    if len(split) != 1:
        raise JobSpecError("an evaluate job scores one split")
    run = _trained_run(spec, "evaluate")
    from core import rundata
    rundata.check_measurable(run.config, split[0], run.run_id)    # and evaluate, before its model loads
    return {"run": str(run.path), "split": split[0]}


def _evaluate_execute(spec: dict, ctx: JobContext) -> dict:
    from core import runs
    from core.evaluate import evaluate

    run = runs.load_run(spec["run"])
    metrics = evaluate(run.path, split=spec["split"], progress=ctx.progress)
    out = runs.eval_dir(run.path, spec["split"])
    return {"run_dir": str(run.path), "eval_dir": str(out), "metrics": {spec["split"]: metrics}}


def _evaluate_describe(spec: dict) -> str:
    """"evaluate RUN on test", with " (dataset NAME)" for a run of another dataset than the default,
    as train jobs say it; a run folder that cannot be read is named alone."""
    dataset = _dataset_of_run(str(spec["run"]))
    mine = f" (dataset {dataset})" if dataset != TrainConfig.dataset else ""
    return f"evaluate {Path(spec['run']).name} on {spec['split']}{mine}"


def _dataset_of_run(run: str) -> str:
    """A run's dataset from its config.json; the default dataset's name when it cannot be read."""
    from core import runs
    try:
        return _read_dataset_of_run(run)
    except (runs.RunError, OSError, AttributeError):
        return TrainConfig.dataset


@functools.lru_cache(maxsize=256)
def _read_dataset_of_run(run: str) -> str:
    """Read once per process: job tables describe every job on every rerun, and a run's config does
    not change once written. A failed read raises, so it is not cached: the folder may be mid-copy."""
    from core import runs
    return runs.read_json(Path(run) / runs.CONFIG_JSON).get("dataset", TrainConfig.dataset)


register(JobKind("evaluate", _evaluate_validate, _evaluate_execute, describe=_evaluate_describe))


# -- baseline ------------------------------------------------------------------------------------



def _baseline_validate(spec: dict) -> dict:
    from core import preflight
    _keys(spec, {"baseline"}, {"config", "reuse"}, "baseline")
    if spec["baseline"] not in BASELINES:
        raise JobSpecError(f"baseline must be one of {', '.join(BASELINES)}, got {spec['baseline']!r}")
    # what `taxolens baseline` checks; the config as recorded
    cfg = preflight.check_baseline(spec["baseline"], _config(spec, "baseline"), here=runs_here())
    return {"baseline": spec["baseline"], "config": cfg.to_dict(), **_reuse(spec, "baseline")}


def _baseline_output_dir(spec: dict) -> Path:
    """A new baseline folder; with "reuse" (a sweep's baselines), the evaluated folder of the same
    baseline on the installed dataset when there is one."""
    from core import runs
    from core.evaluate import find_baseline_dir
    from core.jobs.store import JobStoreError
    cfg = TrainConfig.from_dict(spec["config"])
    found = find_baseline_dir(spec["baseline"], cfg) if spec.get("reuse") else None
    if found is not None:
        return found
    try:
        return runs.new_baseline_dir(spec["baseline"], cfg)
    except PermissionError as exc:
        raise JobStoreError(str(exc)) from exc


def _baseline_execute(spec: dict, ctx: JobContext) -> dict:
    from core.evaluate import baseline
    from core.results import load_eval

    cfg = TrainConfig.from_dict(spec["config"])
    done = load_eval(Path(ctx.output_dir), "test") if spec.get("reuse") and ctx.output_dir else None
    if done:
        ctx.progress(1.0, f"{Path(ctx.output_dir).name} is evaluated: not run again")
    metrics = done or baseline(spec["baseline"], cfg, out_dir=ctx.output_dir, progress=ctx.progress)
    return {"run_dir": str(ctx.output_dir) if ctx.output_dir else None, "metrics": {"test": metrics},
            **({"reused": True} if done else {})}


def _baseline_discard(output_dir: Path) -> None:
    from core import runs
    # A baseline cannot resume: unless its metrics were written, the folder holds only its config.
    if not (runs.eval_dir(output_dir, "test") / runs.METRICS_JSON).is_file():
        shutil.rmtree(output_dir, ignore_errors=True)


register(JobKind("baseline", _baseline_validate, _baseline_execute,
                 describe=lambda s: f"baseline {s['baseline']} {s['config']['condition']} "
                                    f"seed {s['config']['seed']}{_on_dataset(s['config'])}",
                 make_output_dir=_baseline_output_dir, discard_output=_baseline_discard))


# -- probe ---------------------------------------------------------------------------------------

def _probe_validate(spec: dict) -> dict:
    from core import preflight
    _keys(spec, set(), {"lm", "dataset", "lm_init", "seed", "device"}, "probe")
    defaults = TrainConfig()
    normalized = {"lm": spec.get("lm", defaults.lm), "dataset": spec.get("dataset", defaults.dataset),
                  "lm_init": spec.get("lm_init", "pretrained"), "seed": spec.get("seed", 0),
                  "device": spec.get("device", "auto")}
    try:   # what `taxolens probe-lm` checks: ids, dataset, device, the LM's weights
        preflight.check_probe(**normalized, here=runs_here())
    except ConfigError as exc:
        raise JobSpecError(f"invalid probe job: {exc}") from exc
    return normalized


def _probe_execute(spec: dict, ctx: JobContext) -> dict:
    from core import probe

    def progress(fraction: float, message: str) -> None:
        ctx.check_cancel()            # called once per batch of LM calls: cancels within seconds
        ctx.progress(fraction, message)

    folder, metrics = probe.run(spec["lm"], spec["dataset"], spec["lm_init"], spec["seed"],
                                device=spec["device"], progress=progress)
    return {"run_dir": str(folder), "metrics": {"probe": probe.brief(metrics)}}


register(JobKind("probe", _probe_validate, _probe_execute,
                 describe=lambda s: f"probe {s['lm']}{' random-init' if s['lm_init'] == 'random' else ''} "
                                    f"on {s['dataset']}"))


# -- coherence -----------------------------------------------------------------------------------

def _coherence_validate(spec: dict) -> dict:
    from core import preflight
    _keys(spec, set(), {"dataset", "encoder", "seed", "max_concepts", "images_per_concept", "images",
                        "split_percent"}, "coherence")
    defaults = TrainConfig()
    out = {"dataset": spec.get("dataset", defaults.dataset), "encoder": spec.get("encoder", defaults.encoder),
           "seed": spec.get("seed", 0), "max_concepts": spec.get("max_concepts"),
           "images_per_concept": spec.get("images_per_concept"),
           "images": spec.get("images", "train"),     # the seed's training images (the paper's) or all
           "split_percent": spec.get("split_percent", defaults.split_percent)}
    # what `taxolens coherence` checks: images, ranges, ids, the subset, both shuffles on it, encoder weights
    preflight.check_coherence(**out, here=runs_here())
    if out["images"] == "all":          # every image: no split decides which, so none is kept
        del out["split_percent"]
    else:
        out["split_percent"] = canonical_split_percent(out["split_percent"])
    return out


def _coherence_execute(spec: dict, ctx: JobContext) -> dict:
    from core import geometry
    from core.data import datasets

    ds = datasets.load_dataset(spec["dataset"])
    if spec["max_concepts"] is not None or spec["images_per_concept"] is not None:
        ds = ds.subset(max_concepts=spec["max_concepts"], images_per_concept=spec["images_per_concept"],
                       seed=spec["seed"])
    images = spec.get("images", "train")          # a spec queued before the choice: the default
    split = spec.get("split_percent", TrainConfig.split_percent)
    table = geometry.coherence_table(ds, spec["encoder"], spec["seed"], progress=ctx.progress, images=images,
                                     split_percent=split)
    out = geometry.cache_dir(ds, spec["encoder"], spec["seed"], images, split)
    overall = {k: geometry.finite_or_none(float(v)) for k, v in table.loc["all"].items()}
    return {"run_dir": str(out), "metrics": {"coherence": overall}}


register(JobKind("coherence", _coherence_validate, _coherence_execute,
                 describe=lambda s: f"coherence {s['dataset']} {s['encoder']} seed {s['seed']}"
                                    + (" (all images)" if s.get("images") == "all" else
                                       f" (split {s['split_percent']})"
                                       if s.get("split_percent", TrainConfig.split_percent) != TrainConfig.split_percent
                                       else "")))


# -- clusters and lens (Geometry's views of one checkpoint) ---------------------------------------

def _clusters_validate(spec: dict) -> dict:
    from core import clusters
    _keys(spec, {"run"}, {"split", "sources"}, "clusters")
    split = spec.get("split", "test")
    if split not in ("train", "val", "test", "all"):
        raise JobSpecError(f"invalid clusters job: split must be train, val, test or all, got {split!r}")
    sources = spec.get("sources", list(clusters.SOURCES))
    if not isinstance(sources, list) or not sources or any(s not in clusters.SOURCES for s in sources):
        raise JobSpecError(f"invalid clusters job: sources must be a list drawn from "
                           f"{', '.join(clusters.SOURCES)}, got {sources!r}")
    run = _trained_run(spec, "clusters")
    return {"run": str(run.path), "split": split, "sources": [s for s in clusters.SOURCES if s in sources]}


def _clusters_execute(spec: dict, ctx: JobContext) -> dict:
    from core import clusters
    result = clusters.compute(spec["run"], split=spec["split"], sources=spec["sources"], progress=ctx.progress)
    return {"run_dir": spec["run"], "json": str(clusters.out_dir(spec["run"], spec["split"]) / "clusters.json"),
            "scores": clusters.score_table(result)}


def _clusters_describe(spec: dict) -> str:
    return f"clusters {Path(spec['run']).name} on {spec['split']} ({', '.join(spec['sources'])})"


register(JobKind("clusters", _clusters_validate, _clusters_execute, describe=_clusters_describe))


def _lens_validate(spec: dict) -> dict:
    _keys(spec, {"run"}, set(), "lens")
    return {"run": str(_trained_run(spec, "lens").path)}


def _lens_execute(spec: dict, ctx: JobContext) -> dict:
    from core import lens
    result = lens.summarize(spec["run"], progress=ctx.progress)
    return {"run_dir": spec["run"], "json": str(lens.out_path(spec["run"])), "n_images": result["n_images"]}


def _lens_describe(spec: dict) -> str:
    return f"lens {Path(spec['run']).name}"


register(JobKind("lens", _lens_validate, _lens_execute, describe=_lens_describe))


# -- import --------------------------------------------------------------------------------------

def _import_validate(spec: dict) -> dict:
    from core.data import things
    from core.data.datasets import DatasetError
    _keys(spec, {"root", "csv", "name"}, {"replace", "style"}, "import")
    for key in ("root", "csv", "name"):
        if not isinstance(spec[key], str) or not spec[key].strip():
            raise JobSpecError(f"invalid import job: {key} must be a non-empty string, got {spec[key]!r}")
    replace = spec.get("replace", False)
    if not isinstance(replace, bool):
        raise JobSpecError(f"invalid import job: replace must be true or false, got {replace!r}")
    # Absolute, so the worker (another process, another working directory) reads the same files.
    root, csv_path = (str(Path(spec[k].strip()).expanduser().absolute()) for k in ("root", "csv"))
    # The name, the table and the folders now; the images (slower) when the job runs.
    try:
        things.check_import(root, csv_path, spec["name"], replace=replace, style=spec.get("style", things.STYLE))
    except DatasetError as exc:      # "import of 'x' refused, 2 problem(s): ..." says what it is already
        raise JobSpecError(str(exc)) from exc
    return {"root": root, "csv": csv_path, "name": spec["name"], "replace": replace,
            "style": spec.get("style", things.STYLE)}


def _import_execute(spec: dict, ctx: JobContext) -> dict:
    from core.data import things

    # ctx.progress raises JobCancelled once a cancel is asked (the runner's progress_and_cancel): inside
    # the import's staging folder, which is removed on the way out
    ds = things.import_things(spec["root"], spec["csv"], spec["name"], progress=ctx.progress,
                              replace=spec["replace"], style=spec.get("style", things.STYLE))
    summary = ds.summary()
    unconfirmed = (ds.info.get("import") or {}).get("unconfirmed_synsets") or []
    return {"dataset": ds.name, "dataset_dir": str(ds.root),
            "metrics": {k: summary[k] for k in ("concepts", "categories", "images")},
            "unconfirmed_synsets": [u["concept"] for u in unconfirmed],
            "few_images": (ds.info.get("import") or {}).get("few_images") or {}}


register(JobKind("import", _import_validate, _import_execute,
                 describe=lambda s: f"import {s['name']} from {Path(s['root']).name}"
                                    f"{' (replacing)' if s['replace'] else ''}"))
