"""Configs as plain dataclasses, with validation that fails early with one clear line.

`TrainConfig` is what a training run is reproducible from (with the dataset contents); it is stored
verbatim in every checkpoint's JSON and in every job spec. `validate()` checks ranges without reading
anything; `core.rundata.check(cfg)` adds the ids, the dataset and the condition (this module imports
nothing of core but core.base, so every other module can import it).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from core.base import ConfigError  # noqa: F401  (core.config.ConfigError is the same class)


PRECISIONS = ("auto", "bf16", "fp32")
PROJECTOR_INPUTS = ("features", "posterior", "features+posterior")
POSTERIOR_INPUTS = ("posterior", "features+posterior")    # the projector holds a concept probe
MAX_AUGMENT_VIEWS = 16                 # core.augment.MAX_VIEWS (config stays free of image imports)
MAX_LINE_ART_VIEWS = 2                 # core.augment.LINE_ART_KINDS
# What a run is compared with (core.evaluate.baseline): the majority answer per question kind, and
# a linear probe on the encoder's features with no LM (core.image_probe).
BASELINES = ("majority", "image-probe")
# What a baseline's answers depend on: the run data its test questions and TRAIN answers come from
# (subset, split, condition, seed; hard negatives add TRAIN "no"s, which the majority counts; the
# image probe fits TRAIN images, not questions) and, for the image probe, the encoder. Not the LM,
# projector or recipe: configs that differ only there share one baseline (one folder, one row).
BASELINE_DEPENDS_ON = {"majority": ("dataset", "max_concepts", "images_per_concept", "split_percent", "condition",
                                    "seed", "hard_negatives"),
                       "image-probe": ("dataset", "max_concepts", "images_per_concept", "split_percent", "condition",
                                       "seed", "encoder")}

# How each concept's images are split into train / val / test, in percent (questions.split_images).
# The default set has 5-11 images per concept, so 60/20/20 gives every concept a validation image
# for early stopping and a test image; the paper's 70/5/25 (THINGS, ~14 images per concept) is the
# option for collections that size (`--split-percent 70/5/25`).
SPLIT_PERCENT = "60/20/20"
PAPER_SPLIT_PERCENT = "70/5/25"
PAPER_SPLIT_IMAGES = 14                  # images per concept (on average) from which the paper's split fits


# The leaf stage (`taxolens train --leaf-stage`; how the shipped checkpoint is trained): a second run
# from a trained run's best projector that ranks each TRAIN image's leaf against its known
# category-mates, at a lower learning rate. The yes/no loss never asks one image about two leaves,
# and the first stage leaves the model saying yes to its category-mates; ranking them from the start
# did worse, once categories are grounded it helps (docs/training.md, "Sibling ranking negatives").
LEAF_STAGE = {"epochs": 2, "lr": 3e-4, "patience": 0, "rank_negatives": 4, "rank_siblings": 1.0}
# Options that act on ranking groups: given with --leaf-stage to a first stage that has none, they go
# to the leaf stage alone.
LEAF_ONLY = ("rank_soft",)

# What the shipped checkpoint changes of the default config (SHIPPED_COMMAND trains, evaluates and
# installs it): the projector reads a linear probe's concept posterior instead of the feature, which
# answers and ranks leaves better on held-out images (docs/training.md, "The probe-posterior input");
# that probe is fitted on, and the projector shown, two augmented renderings of every training image
# besides the image, which lifts the true leaf's recall (docs/training.md, "Augmented views for the
# probe-posterior input"), and two line drawings of it (its colour regions' borders, on white and over
# its colours), which ground the emoji styles drawn in black outline (docs/training.md, "Line-art
# views"; test leaf accuracy 0.912 over 3 seeds against 0.894 without them); and the leaf stage's
# ranking targets follow that posterior (rank_soft, a LEAF_ONLY option: the first stage trains without
# it), which makes the true leaf the best guess more often (docs/training.md, "Ranking targets spread
# by the posterior"). The study's default stays the paper's feature input; the app offers runs of
# either recipe.
SHIPPED_RECIPE = {"projector_input": "posterior", "augment_views": 2, "line_art_views": 2, "rank_soft": 1.0}
SHIPPED_COMMAND = "taxolens train " + " ".join(         # rank_soft 1.0 reads --rank-soft 1
    f"--{name.replace('_', '-')} {value if isinstance(value, str) else format(value, 'g')}"
    for name, value in SHIPPED_RECIPE.items()) + " --leaf-stage --ship"


# A sweep's scales (core.jobs.sweeps; kept here, below every layer that reads them, e.g. the Results
# page's hints): default TrainConfig fields per scale. Both real scales train with the default recipe
# (at most 6 epochs with early stopping). `cpu`: 80 concepts (of 385) is the smallest subset
# where the within-category shuffle moves most concepts (65 of 80; at 40 only 12 move, most
# category sets being singletons) and 19 categories have >= 3 concepts; on a loaded 2-core machine
# a training update of 16 costs 2-3 s, so the preset's 48 train jobs take a night there.
# `full`: the whole dataset, for a GPU (Slurm). `smoke`: short jobs that check the pipeline end to
# end, nothing more; 40 concepts because below 33 no two concepts of a seeded subset share a
# category set, so the preset's within-shuffle jobs are refused at submit.
SCALES: dict[str, dict[str, Any]] = {
    "smoke": {"max_concepts": 40, "images_per_concept": 3, "epochs": 1},
    "cpu": {"max_concepts": 80, "images_per_concept": None},
    "full": {"max_concepts": None, "images_per_concept": None},
}
DEFAULT_SCALE = "cpu"


PROJECTOR_HIDDEN = 384                   # TrainConfig's default GELU MLP width (see projector_hidden)


@dataclass
class TrainConfig:
    dataset: str = "concepts"
    encoder: str = "efficientnet-lite2"
    lm: str = "smollm2-135m"
    lm_init: str = "pretrained"          # "pretrained" | "random" (random-init control, frozen)
    projector: str = "gelu-mlp"          # "linear" | "gelu-mlp" | "gelu-mlp-norm" (core/models/projector.py)
    image_tokens: int = 1                # encoder grid pooled to this many tokens (1 = global pool)
    # Four LM tokens from each pooled token (ClipCap's prefix from one global feature) through a
    # 384-wide GELU MLP: on the full set (seeds 0, 1) test leaf accuracy 0.853 against one token's
    # 0.846 in 3/4 of the updates, and a better every-leaf ranking after the leaf stage (seed 0;
    # docs/training.md, "Several LM tokens"); 384 keeps the projector (1.38 M parameters, 2.8 MB in fp16) inside the
    # 3 MB a shipped checkpoint may take.
    projector_hidden: int | None = PROJECTOR_HIDDEN  # the GELU MLP's inner width (None: the LM's hidden size)
    projector_tokens: int = 4            # LM tokens the projector makes from each pooled token
    # "probe": the projector's first layer starts as a softmax regression from TRAIN images to their
    # concepts (core/models/projector.py, init_as_probe); "random": the default initialisation.
    projector_init: str = "random"
    # What the projector reads: "features", the encoder's pooled feature; "posterior", a frozen linear
    # probe's concept posterior of it (the probe is fitted on TRAIN images before training and stored
    # with the projector; training sees out-of-fold posteriors; core/models/projector.py). Needs one
    # image token and the whole grid (the probe reads the global pool); augmented views join the
    # probe's fit and training shows their out-of-fold posteriors (core/train.py, posterior_inputs).
    # "features+posterior": both side by side, each through a LayerNorm of its own (the posterior
    # names the concept, the feature keeps what the image looks like); the posterior's needs apply.
    projector_input: str = "features"
    # With a posterior input: after the projector's tokens, one more LM token for each of the posterior's
    # K most likely concepts, in rank order (a trained row per concept, started at its name's word
    # embedding, plus a map of its share; core/models/projector.py). 0: none.
    projector_topk: int = 0
    prompt: str = "plain"                # "plain" | "chat" (core/models/vlm.py)
    condition: str = "none"              # see core.conditions.parse_condition
    seed: int = 0
    # The paper's align-stage recipe: AdamW, lr 1e-3, no weight decay, 3 % linear warmup then cosine
    # decay, gradient clipping at 1.0, batch 16. Training stops early when the validation accuracy
    # on the questions the condition keeps has not improved for `patience` epochs; the best epoch's
    # projector is the one evaluated. Two choices differ, by measurement (README, "Training"): the
    # default set has ~5 training images per concept where the paper's has ~10, so 6 epochs instead
    # of 5 (about 3,700 updates at full size; the four-token projector's validation leaf accuracy
    # levels off after epoch 4 of 6, the one-token projector's after epoch 5 of 8), and each epoch
    # draws new random "no" leaves (a fixed one per image is memorised: docs/training.md, "Fresh
    # negatives").
    epochs: int = 6                      # at most this many epochs
    max_steps: int | None = None         # and at most this many optimizer updates (None: no cap)
    batch_size: int = 16                 # questions per update (whole images: a batch closes at >= this)
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.03                 # share of the planned updates with linear warmup
    grad_clip: float = 1.0               # max gradient norm (0: no clipping)
    patience: int = 3                    # epochs without improvement before stopping (0: never)
    hard_negatives: int = 0              # extra "no" leaf questions per TRAIN image about its siblings
    fresh_negatives: bool = True         # redraw the random "no" leaf questions every epoch
    rank_negatives: int = 0              # per TRAIN image in a batch: its leaf ranked against N random ones
    rank_siblings: float = 0.0           # share of those N drawn from its known category-mates (questions.py)
    rank_mined: int = 0                  # and M more: the leaves the current projector most says yes to...
    mine_pool: int = 24                  # ...among this many random others, scored without gradient each step
    rank_soft: float = 0.0               # share of each ranking target spread by the image's probe posterior
    dropout: float = 0.0                 # dropout on the projector's (normalised) input while training
    grid_crop: int = 0                   # train on a random side x side window of the encoder grid (0: whole)
    concept_mixup: float = 0.0           # share of a batch's images mixed with another image of their concept
    # Augmented renderings per TRAIN image (core.augment: crop, rotation, flip, colour), encoded once
    # and cached; each epoch shows every image as itself or one of them, in turn (0: the images only).
    augment_views: int = 0
    # Line-art renderings per TRAIN image (core.augment.line_drawing): 1, its colour regions' borders as
    # thick black strokes on white; 2, also those strokes over its colours. Shown and fitted as views
    # are. Why: the probe recognises line-art styles (Fluent High Contrast, OpenMoji) far worse than
    # colour ones (test top-1 0.34 against 0.75-0.86), and the LM misses a leaf mostly where the probe
    # does; docs/training.md, "Line-art views".
    line_art_views: int = 0
    # Weight of a naming term: each TRAIN image in a batch also trains the LM to continue "Is there"
    # with the name of the concept it is shown as (a softmax over the whole vocabulary, where a
    # yes/no question compares two words). Leaf evidence only: no category name is ever a target.
    name_loss: float = 0.0
    max_concepts: int | None = None      # deterministic subset (by seed) for quick runs and tests
    images_per_concept: int | None = None
    split_percent: str = SPLIT_PERCENT    # train/val/test percent of each concept's images (see SPLIT_PERCENT)
    device: str = "auto"                 # "auto" | "cpu" | "cuda"
    # The frozen LM's weights while training: bf16 runs ~2x faster on CUDA and on CPUs with native
    # bf16 matmul (AMX); "auto" picks it there and fp32 elsewhere. Evaluation always scores in fp32
    # on the CPU (bf16 autocast on CUDA), so runs trained either way are compared on equal terms.
    precision: str = "auto"              # "auto" | "bf16" | "fp32"
    # Start the projector from another run's best checkpoint instead of a fresh initialisation: a
    # second training stage with another recipe (e.g. ranking negatives once categories are
    # grounded). That run must share this one's models, data and condition (core.train checks), so
    # its TRAIN images are this run's and it saw no hypernym question this run's condition withholds.
    init_from: str | None = None         # a run id or run directory

    def validate(self) -> "TrainConfig":
        """Range and choice checks, without reading anything (ids, the dataset and the condition
        are checked by core.rundata.check). Returns self so calls can chain."""
        if self.lm_init not in ("pretrained", "random"):
            raise ConfigError(f"lm_init must be 'pretrained' or 'random', got {self.lm_init!r}")
        if self.projector not in ("linear", "gelu-mlp", "gelu-mlp-norm"):
            raise ConfigError(f"projector must be 'linear', 'gelu-mlp' or 'gelu-mlp-norm', got {self.projector!r}")
        if self.prompt not in ("plain", "chat"):
            raise ConfigError(f"prompt must be 'plain' or 'chat', got {self.prompt!r}")
        _check_int("image_tokens", self.image_tokens, 1, 256)
        if self.projector_hidden is not None:
            _check_int("projector_hidden", self.projector_hidden, 1, 65536)
            if self.projector == "linear":
                raise ConfigError("projector_hidden needs a gelu-mlp projector (a linear one has no hidden layer)")
        _check_int("projector_tokens", self.projector_tokens, 1, 64)
        if self.projector_init not in ("random", "probe"):
            raise ConfigError(f"projector_init must be 'random' or 'probe', got {self.projector_init!r}")
        if self.projector_init == "probe" and self.projector == "linear":
            raise ConfigError("projector_init 'probe' needs a gelu-mlp projector (it fills the hidden layer)")
        if self.projector_init == "probe" and self.init_from:
            raise ConfigError("projector_init 'probe' and init_from both set the starting projector; choose one")
        if self.projector_input not in PROJECTOR_INPUTS:
            raise ConfigError(f"projector_input must be one of {', '.join(map(repr, PROJECTOR_INPUTS))}, "
                              f"got {self.projector_input!r}")
        if self.reads_posterior:
            clash = [f"{name} {value}" for name, value, ok in (
                ("image_tokens", self.image_tokens, self.image_tokens == 1),
                ("grid_crop", self.grid_crop, not self.grid_crop),
                ("projector_init", repr(self.projector_init), self.projector_init == "random")) if not ok]
            if clash:
                raise ConfigError(f"projector_input {self.projector_input!r} reads a probe of the global-pooled "
                                  f"feature: it needs "
                                  f"image_tokens 1, no grid_crop and projector_init 'random' "
                                  f"(got {', '.join(clash)})")
        _check_int("projector_topk", self.projector_topk, 0, 64)
        if self.projector_topk and not self.reads_posterior:
            raise ConfigError("projector_topk needs projector_input 'posterior' or 'features+posterior' (its "
                              "tokens are the posterior's most likely concepts)")
        if self.image_tokens * self.projector_tokens > 256:
            raise ConfigError(f"image_tokens x projector_tokens gives {self.image_tokens * self.projector_tokens} "
                              "image tokens per image; at most 256")
        _check_int("epochs", self.epochs, 1, 1000)
        if self.max_steps is not None:
            _check_int("max_steps", self.max_steps, 1, 10**9)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("patience", self.patience, 0, 1000)
        _check_int("hard_negatives", self.hard_negatives, 0, 100)
        _check_int("rank_negatives", self.rank_negatives, 0, 100)
        _check_number("rank_siblings", self.rank_siblings, 0, 1)
        if self.rank_siblings and not self.rank_negatives:
            raise ConfigError("rank_siblings needs rank_negatives > 0 (it says which of them are siblings)")
        _check_int("rank_mined", self.rank_mined, 0, 100)
        _check_int("mine_pool", self.mine_pool, 1, 1000)
        if self.rank_mined > self.mine_pool:
            raise ConfigError(f"rank_mined ({self.rank_mined}) keeps the top of mine_pool ({self.mine_pool}) "
                              "candidates, so it cannot exceed it")
        _check_number("rank_soft", self.rank_soft, 0, 1)
        if self.rank_soft and not (self.rank_negatives or self.rank_mined):
            raise ConfigError("rank_soft needs ranking groups (rank_negatives or rank_mined > 0)")
        if self.rank_soft and not self.reads_posterior:
            raise ConfigError("rank_soft spreads ranking targets by the probe posterior, so it needs "
                              "projector_input = posterior or features+posterior")
        _check_number("lr", self.lr, 0, 1, low_open=True)
        _check_number("weight_decay", self.weight_decay, 0, 10)
        _check_number("warmup", self.warmup, 0, 0.5)
        _check_number("grad_clip", self.grad_clip, 0, 1e6)
        if not isinstance(self.fresh_negatives, bool):
            raise ConfigError(f"fresh_negatives must be true or false, got {self.fresh_negatives!r}")
        _check_number("dropout", self.dropout, 0, 0.9)
        _check_int("grid_crop", self.grid_crop, 0, 64)
        _check_number("concept_mixup", self.concept_mixup, 0, 1)
        _check_int("augment_views", self.augment_views, 0, MAX_AUGMENT_VIEWS)
        _check_int("line_art_views", self.line_art_views, 0, MAX_LINE_ART_VIEWS)
        views = [name for name in ("augment_views", "line_art_views") if getattr(self, name)]
        if views and self.grid_crop:
            raise ConfigError(f"{' and '.join(views)} and grid_crop cannot be combined (views are cached pooled)")
        _check_number("name_loss", self.name_loss, 0, 10)
        if self.max_concepts is not None:
            _check_int("max_concepts", self.max_concepts, 2, 10**6)
        if self.images_per_concept is not None:
            _check_int("images_per_concept", self.images_per_concept, 3, 10**6)
        parse_split_percent(self.split_percent)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.init_from is not None and (not isinstance(self.init_from, str) or not self.init_from.strip()):
            raise ConfigError(f"init_from must be a run id or run directory, got {self.init_from!r}")
        return self

    def __post_init__(self):
        # 0 asks for the LM's width (as the Train form and --projector-hidden 0 say); a linear
        # projector has no hidden layer, so the default width does not apply to it (a width asked for
        # explicitly still fails validate()).
        if self.projector_hidden == 0 or (self.projector == "linear" and self.projector_hidden == PROJECTOR_HIDDEN):
            self.projector_hidden = None
        # One spelling per split ("70,5,25" and "0.7/0.05/0.25" are "70/5/25"), so configs that
        # split alike are the same run; a value that does not parse is left for validate() to name.
        try:
            self.split_percent = canonical_split_percent(self.split_percent)
        except ConfigError:
            pass

    @property
    def reads_posterior(self) -> bool:
        """The projector holds a concept probe and reads its posterior (alone or beside the feature)."""
        return self.projector_input in POSTERIOR_INPUTS

    @property
    def split_fractions(self) -> tuple[float, float, float]:
        """split_percent as train / val / test fractions (what questions.split_images takes)."""
        return parse_split_percent(self.split_percent)

    def leaf_stage(self, first_run: str, **leaf_only) -> "TrainConfig":
        """The second stage `taxolens train --leaf-stage` trains after this config's run: LEAF_STAGE's
        recipe, starting from that run's best projector, plus `leaf_only` (split_leaf_only)."""
        # It starts from the first stage's projector, so not from a probe fit again.
        return dataclasses.replace(self, init_from=str(first_run), projector_init="random", **LEAF_STAGE,
                                   **leaf_only)

    def split_leaf_only(self) -> tuple["TrainConfig", dict[str, Any]]:
        """For `--leaf-stage`: this config without the options that shape ranking groups when it has
        none of its own (only the leaf stage ranks), and those options for leaf_stage()."""
        if self.rank_negatives or self.rank_mined:
            return self, {}
        moved = {name: getattr(self, name) for name in LEAF_ONLY if getattr(self, name)}
        return dataclasses.replace(self, **{name: 0.0 for name in moved}), moved

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> "TrainConfig":
        """The config a run's config.json records. A run written before a field existed trained the
        way that field's BEFORE_FIELD value says, not as today's default would (a missing key in a
        job or sweep spec, by contrast, means today's default: from_dict)."""
        return cls.from_dict({**BEFORE_FIELD, **d})


# What a stored run that lacks a field did, for fields whose default is not that behaviour: runs
# before `fresh_negatives` asked fixed negatives; runs before `precision` trained in fp32; runs before
# the projector's shape was configurable made one token through an MLP as wide as the LM.
BEFORE_FIELD: dict[str, Any] = {"fresh_negatives": False, "precision": "fp32", "projector_tokens": 1,
                                "projector_hidden": None}


def parse_split_percent(text: Any) -> tuple[float, float, float]:
    """"70/5/25" (or "70,5,25", or fractions "0.7/0.05/0.25") -> (0.7, 0.05, 0.25): three positive
    shares of train, val and test summing to 100 % (a run needs a validation image for early stopping
    and a test image to be measured); ConfigError with the reason otherwise."""
    parts = str(text).replace(",", "/").split("/") if isinstance(text, str) else []
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    total = sum(values)
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"split_percent must be train/val/test percentages like {SPLIT_PERCENT} or "
                          f"{PAPER_SPLIT_PERCENT}, got {text!r}")
    # percentages or fractions, to the precision people write them ("33.333/33.333/33.334")
    if not (math.isclose(total, 100.0, abs_tol=1e-3) or math.isclose(total, 1.0, abs_tol=1e-5)):
        raise ConfigError(f"split_percent {text!r} sums to {total:g}; the train, val and test shares must sum to 100")
    if min(values) <= 0:
        raise ConfigError(f"split_percent {text!r}: train, val and test each need a share above 0 (a run "
                          f"stops early on val and is measured on test)")
    return tuple(v / total for v in values)


def canonical_split_percent(text: Any) -> str:
    """The one spelling of a split: "70,5,25" and "0.7/0.05/0.25" are "70/5/25" (ConfigError as
    parse_split_percent)."""
    return "/".join(f"{f * 100:.6g}" for f in parse_split_percent(text))


def parse_seeds(text: str) -> list[int]:
    """"0, 1, 2" or "0-4" → [0, 1, 2] / [0, 1, 2, 3, 4]; ConfigError with the reason otherwise."""
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
        try:
            if "-" in part[1:]:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo or hi - lo > 99:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ConfigError(f"seeds: {part!r} is not a seed or a range like 0-4") from None
    if not seeds:
        raise ConfigError("seeds: give at least one seed, e.g. 0 or 0, 1, 2")
    return list(dict.fromkeys(seeds))


def _check_number(name: str, value: Any, lo: float, hi: float, low_open: bool = False) -> None:
    """A finite real number in [lo, hi] ((lo, hi] when low_open); NaN, inf and bools are refused."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and (lo < value if low_open else lo <= value) and value <= hi
    if not ok:
        raise ConfigError(f"{name} must be a number in {'(' if low_open else '['}{lo:g}, {hi:g}], got {value!r}")


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def number_arg(kind: type, lo: float, hi: float) -> Callable[[str], Any]:
    """An argparse `type=` for a command-line number: an int or a finite float in [lo, hi], with the
    same checks (and message) as the config fields."""
    def parse(text: str):
        import argparse
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        try:
            (_check_int if kind is int else _check_number)("the value", value, lo, hi)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "", 1)) from None
        return value
    parse.__name__ = kind.__name__       # argparse names the type in its own messages
    return parse


def baseline_identity(kind: str, config: dict) -> dict:
    """The fields of a (stored) config that baseline `kind` depends on, defaults filled in. The
    default split is left out, so a baseline's folder (named by a hash of this) is the one it had
    before split_percent existed."""
    defaults = TrainConfig().to_dict()
    identity = {"baseline": kind, **{f: config.get(f, defaults[f]) for f in BASELINE_DEPENDS_ON[kind]}}
    if identity["split_percent"] == SPLIT_PERCENT:
        del identity["split_percent"]
    return identity
