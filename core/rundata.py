"""Run data: config -> dataset (subset) -> split -> deprivation -> questions, in one place.

    check(cfg) -> cfg             ranges, model ids, the dataset on disk, the condition against it
    check_splits(cfg)             >= 2 concepts and a train, val and test image (what a run needs)
    prepare(cfg) -> RunData       what training, evaluation, baselines and Browse all see
    load_subset(cfg)              just the dataset (and its table hash): a checkpoint's vocabulary
    image_split(cfg)              image id -> train | val | test, without questions (Browse)
    posterior_columns(ds)         concept -> its column in a posterior-input projector's probe

A pure function of the config and the dataset tables, so evaluation rebuilds exactly what training
used; no model is involved.
"""
from __future__ import annotations

from collections import Counter

from dataclasses import dataclass

from core import conditions, questions, runs
from core.data import datasets, things
from core.base import ConfigError
from core.config import TrainConfig


@dataclass
class RunData:
    """Everything about a run that follows from its config and the dataset, without models."""
    dataset: "datasets.Dataset"
    split: dict[str, str]                          # image id -> train | val | test
    deprivation: "conditions.Deprivation"
    questions: dict[str, list]                     # split -> ALL its questions (nothing removed)
    table_sha256: str
    config: TrainConfig | None = None

    def images(self, split: str) -> list:
        return [im for im in self.dataset.images if self.split[im.id] == split]

    def training_questions(self, epoch: int = 0) -> list:
        """TRAIN questions the condition keeps (removed (concept, category) pairs dropped). With
        `fresh_negatives`, epoch e > 0 asks a new random draw of "no" leaf questions; the number of
        questions of each kind is the same every epoch."""
        asked = self.questions["train"]
        if epoch and self.config is not None and self.config.fresh_negatives:
            asked = _questions(self.dataset, self.images("train"), self.deprivation, self.config, "train", draw=epoch)
        return [q for q in asked if self.deprivation.keeps(q)]


def check(cfg: TrainConfig, started: bool = False, splits: bool = True) -> TrainConfig:
    """cfg.validate() and what needs more than the config: the encoder and LM ids against the model
    registry (no model loads), the dataset on disk and the condition against it, and the run
    cfg.init_from names -- unless the run has `started`: its own checkpoint then holds the projector,
    and the source may be gone (a shipped leaf stage travels without its first stage). With `splits`,
    also that the run's (subset of the) dataset can be trained and measured at all (check_splits).
    Returns the config as a new run records it (runs.as_recorded_on), or cfg itself for a run that
    has started."""
    from core.models import registry  # lazy: the registry imports torch

    cfg.validate()
    registry.check_encoder_id(cfg.encoder)
    registry.check_grid_fit(cfg)          # image_tokens / grid_crop against a grid known without loading
    registry.check_lm_id(cfg.lm)
    ds = datasets.load_dataset(cfg.dataset)
    if splits:
        check_splits(cfg, ds)
    conditions.parse_condition(cfg.condition).check(ds)
    if cfg.init_from and not started:
        runs.init_source(cfg)
    # a new run records the subset it trains, a limit the dataset does not reach as none; a resumed
    # run keeps what its records hold
    return cfg if started else runs.as_recorded_on(cfg, ds)


# A "no" leaf question asks about another concept than the image's; a concept needs 1, 2 and 3
# images for one in train, test and val (questions.split_images, whatever the split_percent: each
# share is above 0). The import says the same (things).
MIN_CONCEPTS = things.MIN_CONCEPTS
SPLIT_NEEDS = {"train": 1, "test": 2, "val": things.IMAGES_FOR_EVERY_SPLIT}


def _subset(cfg: TrainConfig, ds):
    """The seeded subset of `ds` the config asks for (`ds` itself when it asks for none)."""
    if cfg.max_concepts is not None or cfg.images_per_concept is not None:
        ds = ds.subset(max_concepts=cfg.max_concepts, images_per_concept=cfg.images_per_concept, seed=cfg.seed)
    return ds


def _too_few_concepts(ds, what: str) -> str | None:
    if len(ds.concepts) < MIN_CONCEPTS:
        return (f"{what} has {len(ds.concepts)} concept(s); a run needs at least {MIN_CONCEPTS} "
                f"(a \"no\" leaf question asks about another concept)")
    return None


def _short_of(cfg: TrainConfig, ds, missing: list[str]) -> str:
    """Why `missing` splits are empty: the images a concept needs for the hardest, and who has fewer."""
    hardest = max(missing, key=SPLIT_NEEDS.get)
    need = SPLIT_NEEDS[hardest]
    have = Counter(im.concept for im in ds.images)
    short = sorted(c for c in ds.concepts if have[c] < need)
    shown = ", ".join(f"{c} ({have[c]})" for c in short[:8]) + (f" and {len(short) - 8} more" if len(short) > 8 else "")
    return (f"each concept's images are split {cfg.split_percent} within the concept, and a concept needs {need} or more "
            f"images for one in the {hardest} split; concepts with fewer: {shown}")


def check_splits(cfg: TrainConfig, ds=None) -> None:
    """ConfigError unless the run's (subset of the) dataset can be trained on and measured: at least
    MIN_CONCEPTS concepts, and at least one image in each of train, val and test (split_images
    splits within each concept: one image only trains, two give a test image, three or more a val
    image too); the message names the concepts with too few images for what is missing."""
    ds = _subset(cfg, datasets.load_dataset(cfg.dataset) if ds is None else ds)
    what = f"dataset '{cfg.dataset}'" + (" (the subset asked for)" if ds.info.get("subset") else "")
    problem = _too_few_concepts(ds, what)
    if problem:
        raise ConfigError(problem)
    present = set(questions.split_images(ds, cfg.seed, cfg.split_fractions).values())
    missing = [name for name in runs.SPLITS if name not in present]
    if missing:
        raise ConfigError(f"{what} has no {' or '.join(missing)} image, so a run can be neither trained nor "
                          f"measured: {_short_of(cfg, ds, missing)}")


def check_measurable(cfg: TrainConfig, split: str, run_id: str) -> None:
    """ConfigError when a run of `cfg` has nothing to measure on `split`: fewer than MIN_CONCEPTS
    concepts or no image in that split (a run trained before check_splits refused such data).
    Loads no model: evaluate and an evaluate job's submit both ask it."""
    ds, _ = load_subset(cfg)
    problem = _too_few_concepts(ds, f"run {run_id} (dataset '{cfg.dataset}')")
    if problem:
        raise ConfigError(f"{problem}, so there is nothing to evaluate")
    if split not in questions.split_images(ds, cfg.seed, cfg.split_fractions).values():
        raise ConfigError(f"run {run_id} has no {split} image, so there is nothing to evaluate: {_short_of(cfg, ds, [split])}")


def prepare(cfg: TrainConfig) -> RunData:
    """Dataset (+ subset), split, deprivation and questions of every split: a pure function of
    `cfg` and the dataset tables, so evaluation rebuilds exactly what training used."""
    ds, table_sha = load_subset(cfg)
    split = questions.split_images(ds, cfg.seed, cfg.split_fractions)
    dep = conditions.parse_condition(cfg.condition).apply(ds, cfg.seed)
    # Hard (sibling) negatives only shape training; val and test keep one random negative, so
    # every run is measured on the same questions.
    qs = {name: _questions(ds, [im for im in ds.images if split[im.id] == name], dep, cfg, name)
          for name in runs.SPLITS}
    data = RunData(ds, split, dep, qs, table_sha, cfg)
    if not data.training_questions():
        raise ConfigError(f"no training questions left for dataset '{cfg.dataset}' under condition "
                          f"'{cfg.condition}'")
    return data


def _questions(ds, images: list, dep, cfg: TrainConfig, split: str, draw: int = 0) -> list:
    hard = cfg.hard_negatives if split == "train" else 0
    # Siblings by the categories the run's kept hypernym questions tell it, not the taxonomy's.
    known = questions.known_categories(ds, dep) if hard else None
    return questions.build_questions(ds, images, dep.labeling, cfg.seed, draw=draw,
                                     hard_negatives=hard, known=known)


def load_subset(cfg: TrainConfig) -> tuple["datasets.Dataset", str]:
    """The dataset a run uses (its seeded subset when the config asks for one) and the hash of
    the full dataset's tables. Enough for a vocabulary: no split, no questions."""
    ds = datasets.load_dataset(cfg.dataset)
    return _subset(cfg, ds), datasets.version_sha256(ds)


def image_split(cfg: TrainConfig) -> dict[str, str]:
    """Which split each image of the run's (sub)set is in: prepare(cfg).split, without building
    the deprivation or any question."""
    ds, _ = load_subset(cfg)
    return questions.split_images(ds, cfg.seed, cfg.split_fractions)


def posterior_columns(ds) -> dict[str, int]:
    """Concept -> its column in a posterior-input projector's probe (the dataset's concepts, sorted):
    the order training fits the probe in, and what reading its posterior back needs."""
    return {c: j for j, c in enumerate(sorted(ds.concepts))}
