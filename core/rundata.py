"""Run data: config -> dataset (subset) -> split -> deprivation -> questions, in one place.

    check(cfg) -> cfg             ranges, model ids, the dataset on disk, the condition against it
    prepare(cfg) -> RunData       what training, evaluation, baselines and Browse all see
    load_subset(cfg)              just the dataset (and its table hash): a checkpoint's vocabulary
    image_split(cfg)              image id -> train | val | test, without questions (Browse)
    DatasetVersions().current(name, sha)   whether a run or baseline used the installed dataset

A pure function of the config and the dataset tables, so evaluation rebuilds exactly what training
used; no model is involved.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from core import conditions, questions, runs
from core.data import datasets
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


def check(cfg: TrainConfig) -> TrainConfig:
    """cfg.validate() and what needs more than the config: the encoder and LM ids against the model
    registry (no model loads), the dataset on disk and the condition against it. Returns cfg."""
    from core.models import registry  # lazy: the registry imports torch

    cfg.validate()
    registry.check_encoder_id(cfg.encoder)
    registry.check_lm_id(cfg.lm)
    ds = datasets.load_dataset(cfg.dataset)
    conditions.parse_condition(cfg.condition).check(ds)
    return cfg


def prepare(cfg: TrainConfig) -> RunData:
    """Dataset (+ subset), split, deprivation and questions of every split: a pure function of
    `cfg` and the dataset tables, so evaluation rebuilds exactly what training used."""
    ds, table_sha = load_subset(cfg)
    split = questions.split_images(ds, cfg.seed)
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
    return questions.build_questions(ds, images, dep.labeling, cfg.seed, draw=draw,
                                     hard_negatives=cfg.hard_negatives if split == "train" else 0)


def load_subset(cfg: TrainConfig) -> tuple["datasets.Dataset", str]:
    """The dataset a run uses (its seeded subset when the config asks for one) and the hash of
    the full dataset's tables. Enough for a vocabulary: no split, no questions."""
    ds = datasets.load_dataset(cfg.dataset)
    table_sha = dataset_sha256(ds)
    if cfg.max_concepts is not None or cfg.images_per_concept is not None:
        ds = ds.subset(max_concepts=cfg.max_concepts, images_per_concept=cfg.images_per_concept,
                       seed=cfg.seed)
    return ds, table_sha


def image_split(cfg: TrainConfig) -> dict[str, str]:
    """Which split each image of the run's (sub)set is in: prepare(cfg).split, without building
    the deprivation or any question."""
    ds, _ = load_subset(cfg)
    return questions.split_images(ds, cfg.seed)


class DatasetVersions:
    """Which version of each dataset is installed, by dataset_sha256, read once per name. A run or
    baseline computed on another version (the default set gained six art styles on 2026-12-02) used
    other images and splits: it must not be averaged with, or reused for, runs on this one."""

    def __init__(self):
        self._sha: dict[str, str | None] = {}

    def installed(self, name: str) -> str | None:
        """The installed dataset's hash; None when no dataset of that name is installed."""
        if name not in self._sha:
            try:
                self._sha[name] = dataset_sha256(datasets.load_dataset(name))
            except datasets.DatasetError:
                self._sha[name] = None
        return self._sha[name]

    def current(self, name: str | None, recorded: str | None) -> bool:
        """Whether something that records dataset `name` at hash `recorded` belongs with the
        installed data: the hashes agree, or nothing of that name is installed to compare with.
        Nothing recorded (a baseline written before baselines recorded it) is not current."""
        installed = self.installed(name or datasets.DEFAULT_NAME)
        return installed is None or recorded == installed

    def checkpoint_is_current(self, ck: dict, name: str | None = None) -> bool:
        """current() for a run's checkpoint.json contents (its dataset's name, else `name`)."""
        recorded = ck.get("dataset") or {}
        return self.current(recorded.get("name") or name, recorded.get("table_sha256"))

    def run_is_current(self, run_dir: str | Path) -> bool:
        """current() for a run directory, from its checkpoint.json; False when that is unreadable
        (callers that must not skip a damaged run read the checkpoint themselves)."""
        try:
            ck = runs.read_json(runs.checkpoint_json(Path(run_dir)))
        except (runs.RunError, OSError):
            return False
        return isinstance(ck, dict) and self.checkpoint_is_current(ck)


def dataset_sha256(ds) -> str:
    """Hash of the dataset's tables (not the pixels: image ids are already content hashes; not
    dataset.json, whose build timestamp changes on an identical rebuild)."""
    h = hashlib.sha256()
    for name in ("concepts.csv", "categories.csv", "images.csv"):
        p = Path(ds.root) / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
