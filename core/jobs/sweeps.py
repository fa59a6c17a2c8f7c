"""Sweeps: a grid of runs expanded into individual job specs, the `paper` preset, and aggregation.

A sweep spec (JSON) is either a preset, {"preset": "paper", "scale": "cpu"}, or grids. The presets:
`paper` (the study's grid) and `lms` (which LM and prompt format: each bundled LM with each prompt
format it has, with all hypernym evidence and with none, and each LM's knowledge probe). A preset
runs on another dataset, or with other training options, through its `base`:
{"preset": "paper", "scale": "full", "base": {"dataset": "things"}} (`--dataset`, `--set` on the CLI;
the Train page passes the dataset it shows); its name then says so ("paper-full-things"), so its
manifest and results are its own.

    {"name": "ablation-r", "base": {"epochs": 2, "max_concepts": 30},     # TrainConfig fields
     "grids": [{"conditions": ["random", "cross"], "ratios": [0.5, 0.9], "seeds": [0, 1, 2],
                "encoders": [...], "lms": [...], "lm_inits": ["pretrained"]},
               {"kind": "baseline", "baselines": ["majority"], "seeds": [0, 1, 2]},
               {"kind": "probe", "lms": ["smollm2-135m", "gemma3-270m"]}]}

(a single grid may also sit at the top level instead of under "grids"). A bare "random" in
`conditions` is crossed with `ratios`; "random:0.5", "systematic:2", "cross+random:0.5", ... are
used as is. A probe grid (core.probe, the LM alone on the whole dataset) takes lms, lm_inits and
seeds, and no conditions.
Each grid is the product encoders × LMs × lm_inits × conditions × seeds; jobs are ordered seed by
seed so the first complete picture (every condition at seed 0) arrives first. `--scale` supplies
default TrainConfig fields (subset size, epochs) under the spec's own `base`.

sweep_results() reads a sweep's finished child jobs; core.results.aggregate turns them into the mean
and 95 % t-based CI across seeds per (condition, metric).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

from core.config import DEFAULT_SCALE, SCALES, TrainConfig  # noqa: F401 (SCALES: sweeps.SCALES)
from core.jobs import kinds
from core.jobs.kinds import JobContext, JobKind, JobSpecError, register

GRID_KEYS = {"kind", "conditions", "ratios", "seeds", "encoders", "lms", "lm_inits", "baselines", "config"}
SPEC_KEYS = {"name", "base", "grids", "preset", "scale"}

PRESETS = ("paper", "lms")
# What the `lms` preset compares: each bundled LM (core.models.registry.LMS) with each prompt format
# it has. Fixed, so a preset names the same grid on every machine; the bundled Gemma-3-270m is the
# base model, whose GGUF carries no chat template (registry.check_chat_template refuses `chat`).
# Another LM or format: a grid spec with "lms" and "config": {"prompt": ...}.
LM_FORMATS = (("smollm2-135m", "plain"), ("smollm2-135m", "chat"), ("gemma3-270m", "plain"))


def _spec_error(message: str) -> Exception:
    return JobSpecError(message)


def preset(name: str, scale: str = DEFAULT_SCALE, base: dict | None = None) -> dict:
    """The grid spec of a named preset at a scale; `base`: TrainConfig fields under every run of it
    (e.g. {"dataset": "things"}), which the spec's name records."""
    if name not in PRESETS:
        raise _spec_error(f"unknown sweep preset {name!r} (known: {', '.join(PRESETS)})")
    if name == "lms":
        spec = _lms_preset(scale)
    else:
        spec = _paper_preset(scale, _categories_of(scale, base or {}))
    return _with_base(spec, base) if base else spec


# The paper preset's systematic ablation removes 10 and 20 of the default set's 40 categories (the
# paper: 10-40 of THINGS' 53); on another dataset the same shares of its own categories, so the
# preset fits a collection of any size (smoke: half as many, a pipeline check).
DEFAULT_CATEGORIES = 40
SYSTEMATIC_SHARES = (0.25, 0.5)


def _categories_of(scale: str, base: dict) -> int:
    """How many categories (with a concept) the paper preset's runs see at `scale`: the fewest over
    its seeds' subsets of base's dataset (a subset can lose categories). DEFAULT_CATEGORIES for the
    default set, so its grid is the same on every machine, and for a dataset that cannot be read
    (its jobs' validation says why)."""
    dataset = base.get("dataset", TrainConfig.dataset)
    if dataset == TrainConfig.dataset:
        return DEFAULT_CATEGORIES
    from core.base import ConfigError
    from core.data import datasets
    limits = {k: base.get(k, v) for k, v in SCALES.get(scale, {}).items() if k in ("max_concepts", "images_per_concept")}
    args = (dataset, limits.get("max_concepts"), limits.get("images_per_concept"))
    try:
        try:      # the tables' files key the count (the ones a dataset version hashes): an edit counts anew
            folder = datasets.dataset_dir(dataset)
            stamp = tuple((i.st_mtime_ns, i.st_ino, i.st_size) for i in
                          ((folder / name).stat() for name in ("concepts.csv", "categories.csv", "images.csv")))
        except OSError:
            return _count_categories(*args)           # no tables on disk to key a cache by
        return _cached_count(*args, stamp)
    except (datasets.DatasetError, ConfigError, OSError, TypeError, ValueError):
        return DEFAULT_CATEGORIES     # unreadable, or a malformed limit: never cached, and validation says why


def _count_categories(dataset: str, max_concepts, images_per_concept) -> int:
    from core import conditions, rundata
    subsets = [rundata.load_subset(TrainConfig(dataset=dataset, seed=seed, max_concepts=max_concepts,
                                               images_per_concept=images_per_concept))[0] for seed in PAPER_SEEDS]
    return min(len(conditions.used_categories(ds)) for ds in subsets) or DEFAULT_CATEGORIES


@functools.lru_cache(maxsize=32)
def _cached_count(dataset: str, max_concepts, images_per_concept, stamp: tuple) -> int:  # noqa: ARG001 - stamp keys
    """_count_categories once per dataset version and subset size (the Train and Data pages resolve
    a preset on every rerun; subsets of a large collection take a while). A failure raises, so it is
    never cached."""
    return _count_categories(dataset, max_concepts, images_per_concept)


def systematic_counts(scale: str, categories: int = DEFAULT_CATEGORIES) -> list[int]:
    """The category counts the paper preset removes whole: 10 and 20 of 40 (smoke: 5 and 10)."""
    shares = [s / 2 for s in SYSTEMATIC_SHARES] if scale == "smoke" else SYSTEMATIC_SHARES
    return sorted({max(1, int(categories * s + 0.5)) for s in shares})


# What a sweep's grids vary (a grid field lists them): never one value for every run.
AXIS_FIELDS = {"seed": "seeds", "encoder": "encoders", "lm": "lms", "lm_init": "lm_inits", "condition": "conditions"}


def _with_base(spec: dict, base: dict) -> dict:
    """`spec` with `base`'s training options (the command line's) over its own base, and a name that
    tells it from `spec` run as it is (their manifests are named by it): the dataset's name when it
    changes the dataset, then a short hash of the other options that change a run. An option a grid
    varies (seed, condition, ...) or sets in its own "config" would not reach its runs: refused."""
    if not isinstance(base, dict):
        raise _spec_error(f"sweep spec: base must be an object of training options, got {base!r}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(base) - fields)
    if unknown:
        raise _spec_error(f"unknown training option(s) {', '.join(unknown)} (TrainConfig fields: "
                          f"{', '.join(sorted(fields))})")
    grids = spec.get("grids", [spec])
    for name in base:
        listing = [i for i, g in enumerate(grids) if isinstance(g, dict) and AXIS_FIELDS.get(name) in g]
        if name == "condition" or listing:          # a grid's conditions are its own ("none" when absent)
            raise _spec_error(f"{name} is what a sweep's grids vary (their {AXIS_FIELDS[name]!r}), not one "
                              f"option for every run: give it in a spec")
        setting = [i for i, g in enumerate(grids) if isinstance(g, dict) and name in (g.get("config") or {})]
        if setting:
            raise _spec_error(f"sweep grid {setting[0]} sets {name} itself, so the option would not reach its runs")
    dataset = base.get("dataset", TrainConfig.dataset)
    if not isinstance(dataset, str) or not dataset.strip():
        raise _spec_error(f"sweep spec: dataset must be a dataset's name, got {dataset!r}")
    own = {**dataclasses.asdict(TrainConfig()), **SCALES.get(spec.get("scale", DEFAULT_SCALE), {}),
           **(spec.get("base") or {})}
    try:   # each value as a run records it (one spelling of a split), to compare with the spec's own
        recorded = TrainConfig(**{**own, **base}).to_dict()
        before = TrainConfig(**own).to_dict()
    except (TypeError, ValueError):     # a bad value of the spec's own: its jobs' validation says why
        recorded, before = {**own, **base}, own
    changed = {k: recorded[k] for k in sorted(base) if recorded[k] != before[k]}
    parts = [sweep_name(spec)] + ([recorded["dataset"]] if "dataset" in changed else [])
    rest = {k: v for k, v in changed.items() if k != "dataset"}
    if rest:
        parts.append(hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6])
    return {**spec, "name": "-".join(parts),
            "base": {**(spec.get("base") or {}), **{k: recorded[k] for k in base}}}


PAPER_SEEDS = (0, 1, 2)


def _paper_preset(scale: str, categories: int = DEFAULT_CATEGORIES) -> dict:
    seeds = list(PAPER_SEEDS)
    ratios = [0, 0.25, 0.5, 0.75, 1.0]
    # Smoke removes fewer categories: it checks the pipeline, it does not reproduce the paper.
    systematic = systematic_counts(scale, categories)
    grids = [
        # Main result: the pretrained LM under the paper's ablation at every r (r = 1: leaf questions
        # only), whole categories removed, the two shuffles alone and with r = 0.5 (unseen pairs
        # scored under the shuffled labels).
        {"conditions": ["random", *[f"systematic:{n}" for n in systematic], "cross", "within",
                        "cross+random:0.5", "within+random:0.5"], "ratios": ratios, "seeds": seeds},
        # Control: the same architecture with a random-init (frozen) LM brings no taxonomic
        # knowledge, so whatever it does on unseen pairs comes from the images and the training.
        {"conditions": ["random"], "ratios": ratios, "lm_inits": ["random"], "seeds": seeds},
        # The majority floor on the same test questions, and the image side's ceiling on them: a
        # linear probe on the encoder's features, no LM.
        {"kind": "baseline", "baselines": ["majority", "image-probe"], "conditions": ["none"], "seeds": seeds},
    ]
    if scale != "smoke":   # the probe reads the whole dataset: minutes, not the seconds smoke is for
        grids.append({"kind": "probe", "seeds": [0]})       # what the LM alone knows, per category
    return {"name": f"paper-{scale}", "scale": scale, "grids": grids}


def _lms_preset(scale: str) -> dict:
    """Which LM and prompt format to default to (issue: the one that generalizes best to unseen
    hypernyms while grounding leaves): each pair with all hypernym evidence (r = 0: leaf accuracy,
    seen macro-F1) and with none (r = 1: unseen macro-F1), 3 seeds, and each LM's probe. Named as
    in the paper preset (random:0, not none), so the runs the two share are one run."""
    grids: list[dict] = [{"conditions": ["random:0", "random:1"], "lms": [lm], "config": {"prompt": fmt},
                          "seeds": [0, 1, 2]} for lm, fmt in LM_FORMATS]
    if scale != "smoke":
        grids.append({"kind": "probe", "lms": list(dict.fromkeys(lm for lm, _ in LM_FORMATS)), "seeds": [0]})
    return {"name": f"lms-{scale}", "scale": scale, "grids": grids}


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
    if not isinstance(scale, str) or scale not in SCALES:
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
        if not grids[0]:            # {} or only a base/name: no grid was written, so none is guessed
            raise _spec_error(f"sweep spec names no grid: give \"grids\": [...] or grid fields "
                              f"({', '.join(sorted(GRID_KEYS - {'config'}))}) at the top level, or a preset")
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise _spec_error(f"sweep spec: name must be a non-empty string, got {name!r}")
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
        if kind not in ("train", "baseline", "probe"):
            raise _spec_error(f"sweep grid {g_index}: kind must be 'train', 'baseline' or 'probe', got {kind!r}")
        config = grid.get("config", {})
        if not isinstance(config, dict):
            raise _spec_error(f"sweep grid {g_index}: config must be an object of training options, got {config!r}")
        overrides = {**SCALES[scale], **base, **config}
        seeds = _as_list(grid.get("seeds", [overrides.get("seed", defaults.seed)]), "seeds")
        axes = [
            _as_list(grid.get("encoders", [overrides.get("encoder", defaults.encoder)]), "encoders"),
            _as_list(grid.get("lms", [overrides.get("lm", defaults.lm)]), "lms"),
            _as_list(grid.get("lm_inits", [overrides.get("lm_init", defaults.lm_init)]), "lm_inits"),
            _conditions(grid) if kind != "probe" else [None],
            _as_list(grid.get("baselines", [None]) if kind == "baseline" else [None], "baselines"),
        ]
        for seed in seeds:
            for encoder, lm, lm_init, condition, baseline in itertools.product(*axes):
                config = {**overrides, "encoder": encoder, "lm": lm, "lm_init": lm_init,
                          "condition": condition, "seed": seed}
                if kind == "train":
                    # reuse: a run or baseline already done for the same config is not done again
                    job = {"kind": "train", "spec": {"config": config, "eval_splits": ["test"], "reuse": True}}
                elif kind == "baseline":
                    job = {"kind": "baseline", "spec": {"baseline": baseline, "config": config, "reuse": True}}
                else:       # the probe reads the whole dataset with the LM alone: no condition, no subset
                    job = {"kind": "probe", "spec": {"lm": lm, "dataset": config.get("dataset", defaults.dataset),
                                                     "lm_init": lm_init, "seed": seed}}
                jobs.append((seed if isinstance(seed, int) else 0, len(jobs), job))
    jobs.sort(key=lambda t: (t[0], t[1]))
    seen, out = set(), []
    for _, _, job in jobs:  # a grid may name one run twice (e.g. "none" and random:0 elsewhere)
        key = json.dumps(job, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(job)
    return out


def resolve(spec: dict | str | Path, scale: str | None = None, base: dict | None = None) -> dict:
    """A preset name, a JSON file path, or a spec dict → a grid spec (scale applied; `base`, training
    options from the command line, over the spec's own, and named as preset() names them)."""
    if isinstance(spec, (str, Path)):
        if str(spec) in PRESETS:
            return preset(str(spec), scale or DEFAULT_SCALE, base)
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
        extra = sorted(set(spec) - {"preset", "scale", "base"})
        if extra:
            raise _spec_error(f"a preset sweep takes only 'scale' and 'base', not {', '.join(extra)}")
        own = spec.get("base", {})
        if not isinstance(own, dict):
            raise _spec_error(f"sweep spec: base must be an object of training options, got {own!r}")
        return preset(spec["preset"], scale or spec.get("scale", DEFAULT_SCALE), {**own, **(base or {})})
    spec = {**spec, "scale": scale} if scale else dict(spec)
    return _with_base(spec, base) if base else spec


def normalize(spec: dict, here: bool | None = None) -> dict:
    """What a sweep job stores: its name, the source spec and every child job, each validated
    (so a bad combination is rejected at submit, not hours later); `here` as for kinds.validate."""
    grid = resolve(spec)
    jobs = expand(grid)
    validated = []
    for i, job in enumerate(jobs):
        try:
            validated.append({"kind": job["kind"], "spec": kinds.validate(job["kind"], job["spec"], here)})
        except kinds.JobSpecError as exc:
            cfg = job["spec"].get("config", job["spec"])
            raise kinds.JobSpecError(f"sweep job {i + 1}/{len(jobs)} ({job['kind']} "
                                     f"{cfg.get('condition', cfg.get('lm'))} seed {cfg.get('seed')}): {exc}") from exc
    return {"name": sweep_name(grid), "source": spec, "jobs": validated}


def sweep_name(grid: dict) -> str:
    """A resolved grid spec's name: its own, else sweep-<scale>."""
    return str(grid.get("name") or f"sweep-{grid.get('scale', DEFAULT_SCALE)}")


def describe_scale(scale: str) -> str:
    """"cpu: concepts: 80, images per concept: all" for a scale's defaults, as a form shows it (a limit
    the dataset does not reach is recorded as all)."""
    parts = []
    for key, value in SCALES[scale].items():
        what = key.replace("max_concepts", "concepts").replace("images_per_concept", "images per concept")
        parts.append(f"{what}: all" if value is None else f"{what}: {value}")
    return f"{scale}: " + ", ".join(parts)


def same_data_groups(jobs: list[dict]) -> list[tuple[list[str], dict]]:
    """(conditions, the config they share but for the condition) for each set of a sweep's training
    runs that differ only in a condition which, on their data, removes the same pairs and labels
    alike: they would train the same run under several names (random:0.25 and random:0.5 both remove
    max(1, int(n r)) = 1 concept of each 2-concept category). `jobs`: a normalized sweep's jobs."""
    from core import conditions, rundata
    groups: dict[str, dict[tuple, list[str]]] = {}
    subsets: dict[str, object] = {}
    for job in jobs:
        if job["kind"] != "train":
            continue
        cfg = TrainConfig.from_dict(job["spec"]["config"])
        rest = json.dumps({k: v for k, v in cfg.to_dict().items() if k != "condition"}, sort_keys=True)
        data_key = json.dumps([cfg.dataset, cfg.max_concepts, cfg.images_per_concept, cfg.seed])
        try:
            if data_key not in subsets:
                subsets[data_key] = rundata.load_subset(cfg)[0]
            dep = conditions.parse_condition(cfg.condition).apply(subsets[data_key], cfg.seed)
        except Exception:  # noqa: BLE001 - a note, never a reason to refuse: validation already ran
            continue
        what = (tuple(sorted(dep.removed)), tuple(sorted(dep.labeling.items())))
        groups.setdefault(rest, {}).setdefault(what, []).append(cfg.condition)
    return [(same, json.loads(rest)) for rest, by_effect in groups.items() for same in by_effect.values()
            if len(same) > 1]


def same_data_seeds(jobs: list[dict]) -> dict[tuple[str, ...], list[int]]:
    """same_data_groups folded to {conditions: seeds}, each condition set once however many LMs and
    LM inits repeat it (the Sweep tab's warning)."""
    seeds: dict[tuple[str, ...], set] = {}
    for group, cfg in same_data_groups(jobs):
        seeds.setdefault(tuple(group), set()).add(cfg["seed"])
    return {group: sorted(s) for group, s in seeds.items()}


def same_data_notes(jobs: list[dict]) -> list[str]:
    """One line per same_data_groups set, for the command line's dry run."""
    notes = []
    for same, cfg in same_data_groups(jobs):
        lm = cfg["lm"] + (", random-init" if cfg["lm_init"] == "random" else "")
        notes.append(f"{' and '.join(same)} remove the same pairs and label alike on {cfg['dataset']} "
                     f"(seed {cfg['seed']}, {lm}): they train the same run twice under two names")
    return notes


# TrainConfig fields that leave a run's training time as it is: the axes a sweep varies over runs
# of one cost (a condition changes the hypernym share a little; the median spans the grid's
# conditions), and optimiser and regularisation settings. Every other field (sizes, models, the
# projector's shape, negatives, views, naming loss, split, device, precision) keys the estimate.
TIME_NEUTRAL = frozenset({"seed", "condition", "lm_init", "lr", "weight_decay", "warmup", "grad_clip",
                          "dropout", "concept_mixup", "rank_soft", "rank_siblings", "projector_init",
                          "init_from"})


def time_estimate(grid: dict, known_runs: list, jobs: list | None = None) -> dict:
    """What a sweep would train here and how long such runs took: {"train_runs": its training runs,
    "to_train": those without a finished run to reuse, "minutes": the median minutes of finished
    runs on disk on the installed dataset whose configs differ from one of the sweep's only in
    TIME_NEUTRAL fields (None without any), "of": how many runs that median is of, "whole_jobs":
    whether those minutes are whole train jobs}. `known_runs`: runs.RunInfo of this machine's runs
    (the app passes its cached list). `jobs`: the job store's train jobs; a run one of them trained
    in one go (not reused, not resumed) is timed by that job's wall time, which adds loading the
    models and the test evaluation to the training and validation a run's own records time (those
    alone, the fallback, are ~40 % short of a job at the smoke scale)."""
    import statistics

    from core import runs
    versions = runs.DatasetVersions()

    def size(cfg: TrainConfig) -> tuple:
        recorded = dataclasses.asdict(versions.as_recorded(cfg))
        return tuple(sorted((k, repr(v)) for k, v in recorded.items() if k not in TIME_NEUTRAL))

    trains = [TrainConfig.from_dict(j["spec"]["config"]) for j in expand(grid) if j["kind"] == "train"]
    reusable = runs.ReusableRuns(versions)
    to_train = sum(reusable.take(c, resume=False) is None for c in trains)     # finished ones only: no claim
    sizes = {size(c) for c in trains}
    done = [info for info in known_runs if info.status == "finished" and size(info.config) in sizes
            and versions.checkpoint_is_current(info.checkpoint, info.config.dataset)]
    job_seconds = {Path(j.run_dir).name: j.finished - j.started for j in jobs or []
                   if j.kind == "train" and j.status == "succeeded" and j.run_dir and j.started and j.finished
                   and j.attempts <= 1 and not {"reused", "resumed"} & set(j.result or {})}
    whole = [job_seconds[info.path.name] / 60 for info in done if job_seconds and info.path.name in job_seconds]
    if whole:
        return {"train_runs": len(trains), "to_train": to_train, "minutes": statistics.median(whole),
                "of": len(whole), "whole_jobs": True}
    minutes = [s / 60 for s in map(run_seconds, done) if s is not None]
    return {"train_runs": len(trains), "to_train": to_train,
            "minutes": statistics.median(minutes) if minutes else None, "of": len(minutes), "whole_jobs": False}


def run_seconds(info) -> float | None:
    """A run's training and validation time from its own records (None when they have none)."""
    from core import results
    train = results.train_seconds(info)
    if train is None:
        return None
    epochs = [e for e in (info.checkpoint or {}).get("metrics", []) if isinstance(e, dict)]
    return train + sum(e["val_seconds"] for e in epochs if isinstance(e.get("val_seconds"), (int, float)))


# -- results -------------------------------------------------------------------------------------

def result_row(kind: str, spec: dict, status: str, metrics: dict | None, job_id: int | None = None) -> dict:
    """One row of a sweep's results (sweep_results, sweep_run.results_rows) from a job's kind and
    spec: its grouping fields, seed, status and metrics, for core.results.aggregate. A baseline
    reads no prompt and a probe no condition or encoder, so those stay empty."""
    if kind == "probe":
        fields = {"condition": None, "lm_init": spec.get("lm_init"), "encoder": None, "lm": spec.get("lm"),
                  "prompt": None, "seed": spec.get("seed")}
    else:
        cfg = spec.get("config", {})
        fields = {"condition": cfg.get("condition"), "lm_init": cfg.get("lm_init"), "encoder": cfg.get("encoder"),
                  "lm": cfg.get("lm"), "prompt": cfg.get("prompt") if kind == "train" else None,
                  "seed": cfg.get("seed")}
        # the whole config, so results.settings / in_setting tell a custom sweep's settings apart
        # (two grids at different epochs or subsets), and a baseline its data
        fields.update({"config_fields": cfg} if kind == "train" else
                      {f: cfg.get(f) for f in ("dataset", "max_concepts", "images_per_concept", "split_percent")})
    return {"job_id": job_id, "status": status, "kind": kind, **fields, "baseline": spec.get("baseline"),
            "metrics": metrics}


def sweep_results(store, sweep_id: int) -> list[dict]:
    """One row per child job of a sweep: its grouping fields, seed, status and (when finished) its
    test metrics (a probe's: its summary). core.results.aggregate turns them into means and CIs."""
    rows = []
    for job in sorted(store.list(parent_id=sweep_id), key=lambda j: j.id):
        done = job.status == "succeeded"
        which = "probe" if job.kind == "probe" else "test"
        metrics = (job.result or {}).get("metrics", {}).get(which) if done else None
        metrics = _current(job, metrics, which)
        rows.append(result_row(job.kind, job.spec, job.status, metrics, job.id))
    return rows


def _current(job, metrics, which: str):
    """A finished job's metrics as the headline reads them today: a result stored before it (a
    job's copy is never updated) is read again from its run's evaluation, summarized anew."""
    from core import metrics as metrics_mod
    from core import probe, results

    folder = (job.result or {}).get("run_dir")
    if not isinstance(metrics, dict) or (probe.is_current if which == "probe" else metrics_mod.is_current)(metrics):
        return metrics          # the in-memory check first: the disk only for a result from before
    if not folder or not Path(folder).is_dir():
        return metrics
    if which == "probe":
        again = probe.brief(probe.load_summary(Path(folder)))
    else:
        again = results.load_eval(Path(folder), "test")
    return again if again is not None else metrics


# -- the sweep job kind --------------------------------------------------------------------------

def _sweep_execute(spec: dict, ctx: JobContext) -> dict:
    if ctx.submit_children is None:
        raise JobSpecError("a sweep job needs a job store to add its child jobs to")
    children = ctx.submit_children([(job["kind"], job["spec"]) for job in spec["jobs"]])
    ctx.check_cancel()           # cancelled while expanding: the store added no children
    ctx.progress(1.0, f"expanded into {len(children)} jobs")
    return {"children": children}


register(JobKind("sweep", normalize, _sweep_execute,
                 describe=lambda s: f"sweep {s['name']} ({len(s['jobs'])} job{'' if len(s['jobs']) == 1 else 's'})"))
