"""What every command group of the CLI shares: the one-line usage-error parser, exit codes, the
tqdm progress bar, the Ctrl-C stop flag, the training-config options (derived once from TrainConfig's
fields) and JSON output."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from core.base import ConfigError, Progress
from core.conditions import FORMS, canonical
from core.config import TrainConfig

EXIT_USAGE = 2           # bad arguments / config, as argparse uses
EXIT_INTERRUPTED = 130   # Ctrl-C (a cancelled training run can be resumed)
EXIT_PIPE_CLOSED = 141   # stdout's reader went away (`taxolens jobs list | head`), as for SIGPIPE


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (the full usage is one --help away)."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# --- progress ----------------------------------------------------------------------------------

class ProgressBar:
    """progress(fraction, message) callback drawn as a tqdm bar on stderr."""

    STEPS = 1000

    def __init__(self, desc: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.STEPS, desc=desc, file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")

    def __call__(self, fraction: float, message: str = "") -> None:
        target = min(self.STEPS, max(0, round(float(fraction) * self.STEPS)))
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)
        if message:
            self.bar.set_postfix_str(message[:70], refresh=True)

    def write(self, line: str) -> None:
        """A line kept above the bar (an epoch's validation numbers), whole: the bar's own message
        is cut to fit one line and replaced by the next."""
        self.bar.write(line, file=sys.stderr)

    def sub(self, start: float, end: float) -> Progress:
        """A callback whose 0..1 fills [start, end] of this bar."""
        return lambda f, m="": self(start + (end - start) * float(f), m)

    def close(self) -> None:
        self.bar.close()


class StopFlag:
    """The first Ctrl-C or SIGTERM (what `timeout`, `kill` and Slurm's time limit send) asks training
    to stop at the next step: it saves and can resume, instead of dying mid-run with a half-made run
    folder or between a checkpoint's files and the record naming them. A second one interrupts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def __call__(self) -> bool:
        return self.requested

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            again = "Ctrl-C" if signum == signal.SIGINT else "a second signal"
            print(f"\nstopping after this step ({again} to abort)", file=sys.stderr)
        self._previous = {sig: signal.signal(sig, handler) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def check_output(path: str | os.PathLike, flag: str, folder: bool = False) -> Path:
    """files.check_output_target as a ConfigError naming the option: `path` can be written as a
    file (folder=True: a folder) by this user. Every output option runs it before the work, so a
    report is not lost after hours of training to a path that cannot take it."""
    from core import files
    try:
        return files.check_output_target(path, folder=folder)
    except files.FileWriteError as exc:
        raise ConfigError(f"{flag} {exc}" if str(path) else f"{flag}: {exc}") from None


def output_path(text: str) -> Path:
    """argparse type of an output option: a Path, but never from "" (Path("") is the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no file or folder")
    return Path(text)


# --- shared option groups ----------------------------------------------------------------------

# Help for each TrainConfig field; the flags themselves (name, type) come from the dataclass, so a
# new field without help here fails at once (KeyError) instead of silently missing from the CLI.
TRAIN_HELP = {
    "dataset": "dataset name (a folder of the data folder's datasets/: `taxolens data list`)",
    "encoder": "image encoder id",
    "lm": "language model id",
    "lm_init": "pretrained | random (random-init LM control)",
    "projector": "linear | gelu-mlp | gelu-mlp-norm (output tokens held at the LM's word norm)",
    "image_tokens": "encoder grid pooled to this many tokens (1 = the global-pooled feature)",
    "projector_hidden": "the gelu-mlp projector's inner width (0: the LM's hidden size; a linear projector has none)",
    "projector_tokens": "LM tokens the projector makes from each pooled token (the LM sees "
                        "image_tokens x projector_tokens)",
    "projector_init": "random | probe (the first layer starts as a softmax regression from training "
                      "images to their concepts)",
    "projector_input": "features | posterior (the projector reads a linear concept probe's posterior of the "
                       "pooled feature, fitted on the training images and stored with the projector) | "
                       "features+posterior (the feature and that posterior side by side)",
    "projector_topk": "with a posterior projector_input: one more LM token for each of the posterior's K most "
                      "likely concepts, in rank order (0: none)",
    "prompt": "plain | chat (the LM's chat template)",
    "condition": FORMS,
    "seed": "seed for subset, split, condition, negatives and initialisation",
    "epochs": "at most this many epochs (early stopping may end sooner)",
    "max_steps": "at most this many optimizer updates",
    "batch_size": "questions per update (whole images, so a batch may run a few over)",
    "lr": "AdamW peak learning rate",
    "weight_decay": "AdamW weight decay",
    "warmup": "share of updates with linear warmup before the cosine decay",
    "grad_clip": "max gradient norm (0: no clipping)",
    "patience": "stop after this many epochs without validation improvement (0: never)",
    "hard_negatives": "extra 'no' leaf questions per training image about sibling concepts",
    "rank_negatives": "per training image in a batch, a listwise loss ranking its own leaf question "
                      "above N random ones (added to the yes/no loss; 0: off)",
    "rank_siblings": "share of the ranking negatives drawn from concepts that share a category with "
                     "the image's, as far as the run's kept hypernym questions tell (0: all random)",
    "rank_mined": "per training image in a batch, add to its ranking group the N leaves the current "
                  "projector most says yes to among mine_pool random other leaves, scored without "
                  "gradient at each step: mined hard negatives (0: off)",
    "mine_pool": "random other leaves scored per image and step to mine rank_mined from",
    "rank_soft": "share of each ranking group's target spread over the group by the image's probe "
                 "posterior (out of fold), the rest on its own leaf (needs a posterior projector_input; "
                 "0: all on its own leaf)",
    "fresh_negatives": "ask a new random draw of 'no' leaf questions every epoch (same count)",
    "dropout": "dropout on the projector's input features while training (0: none)",
    "grid_crop": "train on a random N x N window of each image's encoder grid, a crop without "
                 "re-encoding (0: the whole grid)",
    "concept_mixup": "share of a batch's training images whose encoder features are mixed with those of "
                     "another training image of the same concept, in a random proportion (0: none)",
    "augment_views": "augmented renderings per training image (crop, rotation, flip, colour; encoded once "
                     "and cached), each epoch showing an image as itself or one of them in turn (0: none); with "
                     "a posterior projector_input they also join the probe's fit",
    "line_art_views": "line-art renderings per training image, shown and fitted as augmented views are: 1, "
                      "its colour regions' borders as thick black strokes on white; 2, also those strokes "
                      "over its colours (0: none)",
    "name_loss": "weight of a loss that trains the LM to name each training image's concept after "
                 "'Is there' (added to the yes/no loss; 0: off)",
    "max_concepts": "use a seeded subset of this many concepts",
    "images_per_concept": "use at most this many images per concept (>= 3)",
    "split_percent": "train/val/test percent of each concept's images, e.g. 70/5/25 (the paper's split)",
    "device": "auto | cpu | cuda",
    "precision": "frozen LM weights while training: auto (bf16 on CUDA and on CPUs with AMX / "
                 "AVX512-BF16, else fp32) | bf16 | fp32",
    "init_from": "start the projector from this run's best checkpoint (a run id or directory with the "
                 "same models, data, condition and seed): a second training stage with another recipe",
}
_FIELD_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}
TRAIN_DEST = "cfg_"          # args.cfg_<field>: present only when the flag was given


def add_train_options(p: argparse.ArgumentParser, config_file: bool = True) -> None:
    """One --flag per TrainConfig field (plus --config JSON when config_file); only flags given on
    the command line are set, as args.cfg_<field> (train_overrides collects them)."""
    g = p.add_argument_group("training config (defaults: core.config.TrainConfig)")
    if config_file:
        g.add_argument("--config", type=Path, metavar="JSON",
                       help="start from this config.json (options below override it)")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if str(f.type) == "bool":
            g.add_argument("--" + f.name.replace("_", "-"), dest=TRAIN_DEST + f.name,
                           action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=f"{TRAIN_HELP[f.name]} (default: {getattr(defaults, f.name)})")
            continue
        g.add_argument("--" + f.name.replace("_", "-"), dest=TRAIN_DEST + f.name, type=_FIELD_TYPES[str(f.type)],
                       default=argparse.SUPPRESS, metavar=f.name.upper(),
                       help=f"{TRAIN_HELP[f.name]} (default: {getattr(defaults, f.name)})")


def train_setting(text: str) -> tuple[str, Any]:
    """An argparse `type=` for `--set FIELD=VALUE`: a TrainConfig field and its value, read as that
    field's own flag reads it (a number, a string, true / false, or none for an optional field)."""
    field, sep, value = text.partition("=")
    field = field.strip().replace("-", "_")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if not sep or field not in fields:
        raise argparse.ArgumentTypeError(f"{text!r}: give FIELD=VALUE with a training option as FIELD "
                                         f"(one of {', '.join(sorted(fields))})")
    kind, value = str(fields[field].type), value.strip()
    if kind.endswith("| None") and value.lower() == "none":
        return field, None
    if kind == "bool":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise argparse.ArgumentTypeError(f"{field} takes true or false, got {value!r}")
        return field, value.lower() in ("true", "1", "yes")
    try:
        return field, _FIELD_TYPES[kind](value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{field} takes {kind.replace(' | None', ' or none')}, got {value!r}") from None


def train_overrides(args) -> dict:
    """The TrainConfig fields given as flags."""
    return {k[len(TRAIN_DEST):]: v for k, v in vars(args).items() if k.startswith(TRAIN_DEST)}


def read_json_object(path, what: str) -> dict:
    """A JSON object from a file the user named (`what`: "config file", "job spec"), read as a
    regular file through a cap (a FIFO or /dev/zero would hang or eat memory); ConfigError else."""
    from core import files
    try:
        value = files.read_json(path)
    except files.FileReadError as exc:
        if exc.kind == "missing":
            raise ConfigError(f"{what} {path} does not exist") from None
        raise ConfigError(f"{what} {path} is not readable JSON ({exc.reason})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} {path} must hold a JSON object")
    return value


def config_from(args) -> TrainConfig:
    base: dict = {}
    if getattr(args, "config", None) is not None:
        base = read_json_object(args.config, "config file")
    overrides = train_overrides(args)
    try:
        cfg = TrainConfig.from_dict({**base, **overrides})
    except TypeError as exc:
        raise ConfigError(f"bad training config ({exc})") from None
    return dataclasses.replace(cfg, condition=canonical(cfg.condition))


def emit(result: dict, out: Path | None = None) -> None:
    """Print the result as JSON; also write it atomically to `out` when given."""
    from core import runs

    text = json.dumps(result, indent=2, default=str)
    if out is not None:
        runs.write_text(out, text + "\n")
    print(text)


def headline(metrics: dict | None) -> dict | None:
    from core.metrics import headline
    return headline(metrics) if metrics else None

