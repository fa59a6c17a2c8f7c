"""A whole sweep in one process, on a machine you hold (a GPU for a few minutes, or this CPU):

    taxolens sweep run paper --scale full          # then docs/results.md is regenerated

The grid is expanded and checked exactly as `sweep submit` does (core.jobs.sweeps), but runs here,
without the job queue:
  1. every training run through core.train.train_many: runs that share the frozen LM (all the
     pretrained-LM runs of the paper grid; the random-init LM runs, whose LM is seeded, per seed)
     step together, one LM pass over all their batches per update -- one large batch instead of
     dozens of small ones, which is what keeps a GPU busy;
  2. each run's evaluation on its splits, sharing one fp32 copy of the frozen models per group;
  3. the baselines and the LM probes of the grid.

Resuming: the sweep's manifest (runs/sweeps/<name>.json) names each training run's directory, so
running the same sweep again resumes unfinished runs where they stopped and skips whatever is done
(finished runs, written evaluations, baselines, probes); a finished run of the same config, from
another sweep or any other command, is reused, not trained again, and a cancelled one is claimed
and resumed (runs.ReusableRuns; sweeps that run at the same time can still train one config twice;
core.results counts it once). Every run is an ordinary run on disk: the
app, `taxolens runs` and `results report` see it like any other.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from core import paths, runs
from core.base import ConfigError, Progress
from core.config import TrainConfig
from core.jobs import kinds, sweeps

SWEEPS_DIR = "sweeps"


def manifest_path(name: str) -> Path:
    return paths.runs_dir() / SWEEPS_DIR / f"{paths.safe_name(name)}.json"


def plan(spec, scale: str | None = None, base: dict | None = None) -> dict:
    """The checked jobs of a sweep (sweeps.normalize: every job validated) and its name."""
    return sweeps.normalize(sweeps.resolve(spec, scale, base))


def manifest_key(cfg: TrainConfig) -> str:
    """How a manifest names a run: its whole config."""
    return json.dumps(cfg.to_dict(), sort_keys=True)


def source_of(name_or_spec: str, scale: str | None = None, base: dict | None = None) -> dict:
    """The grid a sweep that ran here was given, for `sweep show`: a preset or JSON spec file (at
    `scale`, with `base` as `sweep run` was given it), else the name of a sweep whose manifest
    recorded its grid. JobSpecError saying what it can be when it is none of them."""
    if name_or_spec in sweeps.PRESETS or Path(name_or_spec).is_file():
        return sweeps.resolve(name_or_spec, scale, base)
    path = manifest_path(name_or_spec)
    manifest = runs.read_json(path) if path.is_file() else None
    if isinstance(manifest, dict) and isinstance(manifest.get("source"), dict):
        if scale is not None or base:
            raise kinds.JobSpecError(f"sweep {name_or_spec!r} ran with its own scale and options; --scale, "
                                     "--dataset and --set go with a spec")
        return manifest["source"]
    if isinstance(manifest, dict):
        raise kinds.JobSpecError(f"sweep {name_or_spec!r} ran before sweeps recorded their grid: give its spec "
                                 f"(`taxolens sweep show <spec.json | preset> --scale S`), or run it again")

    def has_grid(p: Path) -> bool:
        try:
            return isinstance(runs.read_json(p).get("source"), dict)
        except (runs.RunError, OSError, AttributeError):
            return False
    known = sorted(p.stem for p in path.parent.glob("*.json") if has_grid(p)) if path.parent.is_dir() else []
    raise kinds.JobSpecError(
        f"no sweep {name_or_spec!r}: give a sweep job id (`taxolens jobs list`), a preset "
        f"({', '.join(sweeps.PRESETS)}), a JSON spec file, or the name of a sweep run here"
        + (f" ({', '.join(known[:8])})" if known else ""))


def manifest_runs(manifest: dict, versions: runs.DatasetVersions) -> dict[str, str]:
    """A manifest's {config key: run directory here}, each key as the config is recorded now (a
    manifest written before a subset limit the data does not reach was recorded as none names such
    runs by the limit); runs.located_path places each entry."""
    out: dict[str, str] = {}
    for key, stored in manifest.get("runs", {}).items():
        run_dir = runs.located_path(stored)
        if run_dir is None:
            continue
        try:
            out.setdefault(manifest_key(versions.as_recorded(TrainConfig.from_stored(json.loads(key)))), run_dir)
        except (ValueError, TypeError, ConfigError):
            out.setdefault(key, run_dir)
    return out


def run_dirs(name: str, cfgs: list[TrainConfig], source: dict | None = None) -> list[Path]:
    """Each training run's directory: the one the manifest names (a rerun resumes it), else one
    runs.ReusableRuns takes: a finished run of the same config, whoever trained it (the `paper` and
    `lms` presets share runs, so run one after the other a shared run trains once), else a cancelled
    one, claimed and resumed (a "partial" one is left alone: it may be training in its own sweep
    right now); else new. A run trained on another version of its dataset than the installed one is
    never reused: the config trains again, in a new folder. `cfgs` are validated configs (recorded
    as a new run records them)."""
    path = manifest_path(name)
    versions = runs.DatasetVersions()
    # this sweep's own manifest is read strictly (a damaged one stops the run, RunError, rather than
    # being replaced and its runs forgotten); other sweeps' are only hints
    manifest = runs.read_json(path) if path.is_file() else {"name": name, "runs": {}}
    named = manifest_runs(manifest, versions)
    reusable = None                      # every run's records read once, when a config needs them
    out = []
    for cfg in cfgs:
        key = manifest_key(cfg)
        known = named.get(key)
        ck_path = runs.checkpoint_json(Path(known)) if known is not None else None
        # read strictly, as the manifest is: a damaged checkpoint stops the run (RunError) rather
        # than being replaced by a new folder
        stale = ck_path is not None and ck_path.is_file() \
            and not versions.checkpoint_is_current(runs.read_json(ck_path), cfg.dataset)
        if known is None or not Path(known).is_dir() or stale:
            reusable = reusable or runs.ReusableRuns(versions)
            known = str(reusable.take(cfg) or runs.create_run_dir(cfg))
        manifest["runs"][key] = runs.stored_path(known)
        out.append(Path(known))
    if source is not None:                # the grid, so `sweep show <name>` can list it
        manifest["source"] = source
    path.parent.mkdir(parents=True, exist_ok=True)
    runs.write_json(path, manifest)
    return out


def run_sweep(spec, scale: str | None = None, together: int | None = None,
              progress: Progress | None = None, should_stop=None, base: dict | None = None) -> dict:
    """Train, evaluate, and run the baselines and probes of a sweep; returns its runs, how many
    evaluations, baselines and probes were done now (not found done), and how long each stage took
    (seconds). should_stop: checked before every update (core.train.Cancelled,
    every run saved where it stood) and between evaluations."""
    from core import probe as lm_probe
    from core import train
    from core.evaluate import baseline, evaluate, find_baseline_dir
    from core.models import checkpoint

    report = progress or (lambda f, m: None)
    started = time.perf_counter()
    planned = plan(spec, scale, base)
    jobs = planned["jobs"]
    train_jobs = [j["spec"] for j in jobs if j["kind"] == "train"]
    cfgs = [TrainConfig.from_dict(j["config"]) for j in train_jobs]
    dirs = run_dirs(planned["name"], cfgs, sweeps.resolve(planned["source"]))
    reused = sum(runs.is_finished(d) for d in dirs)      # finished before this sweep started
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    try:
        if cfgs:
            train.train_many(cfgs, dirs, together=together, should_stop=should_stop,
                             progress=(lambda f, m: report(0.8 * f, m)) if progress else None)
    finally:   # runs that never saved a checkpoint leave no folder behind (a rerun makes them anew)
        _forget_unstarted(planned["name"], dirs)
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    todo = [(cfg, d, split) for cfg, d, job in zip(cfgs, dirs, train_jobs) for split in job["eval_splits"]
            if not runs.evaluation_is_current(d, split)]
    todo.sort(key=lambda t: repr(train.share_key(t[0])))     # each group's frozen models load once
    shared: dict[tuple, object] = {}     # one fp32 copy of the frozen models per share key
    for i, (cfg, d, split) in enumerate(tqdm(todo, desc="evaluate", unit="run", disable=progress is not None)):
        if should_stop is not None and should_stop():
            raise kinds.JobCancelled("sweep cancelled during its evaluations; run it again to go on")
        key = train.share_key(cfg)
        if key not in shared:
            shared.clear()               # groups come in order: free the last one's models first
            shared[key] = checkpoint.build_vlm(cfg, checkpoint.resolve_device(cfg.device))
        evaluate(d, split, frozen_from=shared[key])
        report(0.8 + 0.1 * (i + 1) / len(todo), f"evaluated {d.name} on {split}")
    shared.clear()
    seconds["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    baselines = 0
    for b in tqdm([j["spec"] for j in jobs if j["kind"] == "baseline"], desc="baselines", unit="baseline",
                  disable=progress is not None):
        cfg = TrainConfig.from_dict(b["config"])
        if find_baseline_dir(b["baseline"], cfg) is None:
            baseline(b["baseline"], cfg)
            baselines += 1
    seconds["baselines"] = time.perf_counter() - t

    t = time.perf_counter()
    probes = 0
    for p in [j["spec"] for j in jobs if j["kind"] == "probe"]:
        folder = lm_probe.out_dir(p["lm"], p["dataset"], p["lm_init"], p["seed"])
        if not (folder / runs.METRICS_JSON).is_file():
            report(0.95, f"probing {p['lm']}")
            lm_probe.run(p["lm"], p["dataset"], p["lm_init"], p["seed"], device=p["device"])
            probes += 1
    seconds["probes"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - started
    report(1.0, "done")
    # runs: every run of the sweep (reused or new); reused: those finished before it started;
    # evaluations, baselines, probes: the ones done now
    return {"name": planned["name"], "runs": [str(d) for d in dirs], "reused": reused, "evaluations": len(todo),
            "baselines": baselines, "probes": probes, "manifest": str(manifest_path(planned["name"])),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def _forget_unstarted(name: str, dirs: list[Path]) -> None:
    gone = {runs.stored_path(d) for d in dirs if runs.discard_unstarted(d)}
    if gone:
        path = manifest_path(name)
        manifest = runs.read_json(path)
        manifest["runs"] = {k: v for k, v in manifest["runs"].items() if v not in gone}
        runs.write_json(path, manifest)


def results_rows(source) -> list[dict]:
    """sweeps.sweep_results' rows for a sweep run in one process (`sweep show`): every job of the
    sweep, read from disk -- its runs with their test metrics (the run the manifest names, else a
    finished run of the same config that `sweep run` would reuse: one `sweep submit` or `taxolens
    train` made), its baselines' test metrics and its probes' summaries -- for
    core.results.aggregate. A run trained on another version of its dataset is shown queued, as
    `sweep run` would train it again."""
    from core import probe as lm_probe
    from core.evaluate import find_baseline_dir
    from core.results import load_eval
    grid = sweeps.resolve(source)             # expanded, not validated again: this only reads
    path = manifest_path(sweeps.sweep_name(grid))
    manifest = runs.read_json(path) if path.is_file() else {"runs": {}}
    versions = runs.DatasetVersions()
    named = manifest_runs(manifest, versions)
    reusable = None                           # indexed once, when a config is not named (finished ones only)
    rows = []
    for job in sweeps.expand(grid):
        spec = job["spec"]
        if "config" in spec:      # defaults filled in and the subset as recorded, as validation does
            spec = {**spec, "config": versions.as_recorded(TrainConfig.from_dict(spec["config"])).to_dict()}
        if job["kind"] == "probe":
            folder = lm_probe.out_dir(spec["lm"], spec["dataset"], spec["lm_init"], spec["seed"])
            metrics = lm_probe.brief(lm_probe.load_summary(folder))
            status = "succeeded" if metrics else "queued"
        elif job["kind"] == "baseline":
            d = find_baseline_dir(spec["baseline"], TrainConfig.from_dict(spec["config"]))
            metrics = load_eval(d, "test") if d else None
            status = "succeeded" if metrics else "queued"
        else:
            cfg = TrainConfig.from_dict(spec["config"])
            known = named.get(manifest_key(cfg))
            d = Path(known) if known else None
            ck_path = runs.checkpoint_json(d) if d else None
            ck = runs.read_json(ck_path) if ck_path and ck_path.is_file() else None
            status = ck.get("status", "partial") if ck else "queued"
            if ck and not versions.checkpoint_is_current(ck, spec["config"]["dataset"]):
                d, status = None, "queued"      # trained on another dataset version: runs again
            if status != "finished":            # what `sweep run` would take instead (no claim: it only reads)
                reusable = reusable or runs.ReusableRuns(versions)
                found = reusable.take(cfg, resume=False)
                if found is not None:
                    d, status = found, "finished"
            metrics = load_eval(d, "test") if d and d.is_dir() else None
            status = "succeeded" if metrics else status
        rows.append(sweeps.result_row(job["kind"], spec, status, metrics))
    return rows


# -- the job kind: a whole sweep as one job (the local worker, or one Slurm job) -------------------

def _validate(spec: dict) -> dict:
    if not isinstance(spec, dict) or "source" not in spec:
        raise kinds.JobSpecError("a sweep-run job needs {'source': <sweep spec>, 'together': N or null}")
    extra = sorted(set(spec) - {"source", "together"})
    if extra:
        raise kinds.JobSpecError(f"sweep-run job spec has unknown field(s) {', '.join(extra)}")
    together = spec.get("together")
    if together is not None and (isinstance(together, bool) or not isinstance(together, int) or together < 1):
        raise kinds.JobSpecError(f"together must be a positive number of runs, got {together!r}")
    source = sweeps.resolve(spec["source"])
    planned = sweeps.normalize(source)        # every job checked now, not hours later
    return {"source": source, "together": together, "name": planned["name"], "jobs": len(planned["jobs"])}


def _execute(spec: dict, ctx: kinds.JobContext) -> dict:
    done = run_sweep(spec["source"], together=spec["together"], progress=ctx.progress,
                     should_stop=ctx.should_stop)
    return {**{k: v for k, v in done.items() if k != "runs"}, "runs": len(done["runs"])}


kinds.register(kinds.JobKind("sweep-run", _validate, _execute,
                             describe=lambda s: f"sweep {s['name']} in one job ({s['jobs']} runs and jobs)"))
