"""Everything a command or a job checks before it creates anything, in one place, so that
`taxolens <command>` and `taxolens jobs submit <kind>` (and every child of a sweep) refuse the same
input for the same reason: the direct command at once, the job before it is queued.

    check_config(cfg, here=True)          ranges, ids, dataset, condition syntax, the device -> the
                                            config as recorded (a subset limit the dataset does not
                                            reach becomes None: all)
    check_build(cfg, here=True)           the run's data (subset, split, condition, questions) and
                                            the encoder / LM weights
    check_train(cfg, here=True)           both -> the config as recorded
    check_baseline(kind, cfg, here=True)  config and data of a baseline -> the config as recorded
    check_probe(lm, dataset, lm_init, seed, device, here=True)   ids, dataset, device, LM weights
    check_coherence(..., here=True)       images choice, subset + both shuffles, encoder weights -> the dataset
    trained_run(ref, encoder, lm, here=True)  a run with a trained checkpoint, its models' weights

Nothing here writes a file or loads a model. `here=False` is for jobs that run on another machine
(Slurm): what depends on the machine that runs the job (a CUDA GPU, weights in a local cache) is
left to that machine.
"""
from __future__ import annotations

from core import paths
from core.base import ConfigError
from core.config import BASELINES, TrainConfig



def check_device(device: str, here: bool = True) -> None:
    """ConfigError when this machine cannot give `device` (here=False: a Slurm node decides)."""
    if device == "cuda" and here:
        from core.models.checkpoint import resolve_device
        resolve_device(device)


def check_config(cfg: TrainConfig, here: bool = True, started: bool = False, splits: bool = True) -> TrainConfig:
    """Everything about a training config that can be checked without building its data (`started`:
    resuming a run that has a checkpoint, see rundata.check; `splits`: that its data has the concepts
    and the train, val and test images a run needs, rundata.check_splits)."""
    from core import rundata
    from core.conditions import parse_condition

    parse_condition(cfg.condition)        # syntax and r range first: clearer than a dataset error
    cfg = rundata.check(cfg, started, splits)     # a subset limit the dataset does not reach: None (all)
    check_device(cfg.device, here)
    return cfg


def check_weights(encoder: str | None = None, lm: str | None = None, here: bool = True) -> None:
    if here:
        from core.models import registry
        registry.check_weights(encoder, lm)


def check_build(cfg: TrainConfig, here: bool = True):
    """What building a (checked) config's run needs: its data and its models. Returns its RunData."""
    from core import rundata

    data = rundata.prepare(cfg)           # the subset can make a condition impossible
    check_weights(cfg.encoder, cfg.lm, here)
    if cfg.prompt == "chat" and here:
        from core.models import registry
        registry.check_chat_template(cfg.lm)
    return data


def check_train(cfg: TrainConfig, here: bool = True) -> TrainConfig:
    """A training run's config, data and models, checked; returns the config as it will be
    recorded (check_config)."""
    cfg = check_config(cfg, here)
    check_build(cfg, here)
    return cfg


def check_baseline(kind: str, cfg: TrainConfig, here: bool = True) -> TrainConfig:
    """A baseline's config and data, and the encoder's weights for the image probe (the majority
    baseline loads no model); returns the config as recorded (check_config)."""
    from core import rundata

    if kind not in BASELINES:
        raise ConfigError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    cfg = check_config(cfg, here)
    rundata.prepare(cfg)
    if kind == "image-probe":
        check_weights(cfg.encoder, None, here)
    return cfg


def check_probe(lm: str, dataset: str, lm_init: str = "pretrained", seed: int = 0, device: str = "auto",
                here: bool = True):
    """An LM probe (core.probe): ids, dataset, the device and the LM's weights; returns the dataset."""
    from core import probe

    ds = probe.check(lm, dataset, lm_init, seed)
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    check_device(device, here)
    check_weights(None, lm, here)
    return ds


def check_coherence(dataset: str, encoder: str, seed: int, max_concepts: int | None = None,
                    images_per_concept: int | None = None, device: str = "auto", here: bool = True,
                    images: str = "train", split_percent: str = TrainConfig.split_percent):
    """The (subset of the) dataset whose coherence table these arguments ask for, checked: the
    images choice (core.geometry.IMAGE_SETS), ranges and the split, ids, the cross shuffle on that
    subset (a within shuffle it has no room for leaves that column empty), the encoder's weights."""
    from core import geometry
    from core.data import datasets

    geometry.check_images(images)
    cfg = TrainConfig(dataset=dataset, encoder=encoder, seed=seed, max_concepts=max_concepts,
                      images_per_concept=images_per_concept, device=device, split_percent=split_percent)
    check_config(cfg, here, splits=False)     # no run: coherence needs no val or test images
    ds = datasets.load_dataset(cfg.dataset)
    if cfg.max_concepts is not None or cfg.images_per_concept is not None:
        ds = ds.subset(max_concepts=cfg.max_concepts, images_per_concept=cfg.images_per_concept,
                       seed=cfg.seed)
    # what coherence_table applies first; a shuffle not possible on this subset leaves its column empty
    _, impossible = geometry.shuffled_labelings(ds, cfg.seed)
    if "cross" in impossible:                                 # too few concepts to compare
        raise ConfigError(impossible["cross"])
    check_weights(cfg.encoder, None, here)
    return ds


def trained_run(ref: str | None, encoder: str | None = None, lm: str | None = None, here: bool = True,
                weights: bool = True):
    """The run to evaluate or predict with: it exists, has a trained checkpoint, was trained with
    `encoder` / `lm` when they are given, and (weights=True: it will be loaded) its models' weights
    are here. Returns its RunInfo."""
    from core import runs

    if ref is None:
        default = runs.default_checkpoint()
        if default is None:
            from core.models.checkpoint import shipped_fit
            fits, why = shipped_fit()
            shipped = ("the shipped checkpoint fits but is not installed in the runs folder" if fits
                       else f"the shipped checkpoint cannot stand in: {why}")
            others = [i.run_id for i in runs.list_runs() if i.epoch >= 1][:3]    # newest first
            which = (f"runs with a checkpoint here: {', '.join(others)}; `taxolens runs` lists them all" if others
                     else f"there is no trained run in {paths.runs_dir()}")
            raise ConfigError(f"no finished run of the default config or the shipped recipe ({shipped}); "
                              f"pass --run RUN_ID ({which}) or train one with `taxolens train`")
        ref = str(default)
    info = runs.load_run(ref)
    if info.epoch < 1 or not runs.checkpoint_json(info.path).is_file():
        raise ConfigError(f"run {info.run_id} has no trained checkpoint yet (status: {info.status})")
    if encoder is not None or lm is not None:
        from core.models import registry
        if encoder is not None:
            registry.check_encoder_id(encoder)
        if lm is not None:
            registry.check_lm_id(lm)
        runs.check_compatible(info.path, encoder or info.config.encoder, lm or info.config.lm)
    if weights:
        check_weights(info.config.encoder, info.config.lm, here)
    return info
