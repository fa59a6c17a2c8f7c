"""Configs as plain dataclasses, with validation that fails early with one clear line.

`TrainConfig` is what a training run is reproducible from (with the dataset contents); it is stored
verbatim in every checkpoint's JSON and in every job spec. `validate()` checks ranges and ids without
loading any model, so the CLI, the job queue and the app's forms can all reject bad input up front.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is shown as-is (CLI: exit code 2)."""


@dataclass
class TrainConfig:
    dataset: str = "concepts"
    encoder: str = "efficientnet-lite2"
    lm: str = "smollm2-135m"
    lm_init: str = "pretrained"          # "pretrained" | "random" (random-init control, frozen)
    projector: str = "gelu-mlp"          # "linear" | "gelu-mlp"
    image_tokens: int = 4                # encoder grid pooled to this many LM tokens
    condition: str = "none"              # see core.conditions.parse_condition
    seed: int = 0
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    max_concepts: int | None = None      # deterministic subset (by seed) for quick runs and tests
    images_per_concept: int | None = None
    device: str = "auto"                 # "auto" | "cpu" | "cuda"

    def validate(self, deep: bool = False) -> "TrainConfig":
        """Range checks always; with deep=True also ids (encoder, LM, dataset, condition) against
        the registry and the dataset on disk. Returns self so calls can chain."""
        if self.lm_init not in ("pretrained", "random"):
            raise ConfigError(f"lm_init must be 'pretrained' or 'random', got {self.lm_init!r}")
        if self.projector not in ("linear", "gelu-mlp"):
            raise ConfigError(f"projector must be 'linear' or 'gelu-mlp', got {self.projector!r}")
        _check_int("image_tokens", self.image_tokens, 1, 256)
        _check_int("epochs", self.epochs, 1, 1000)
        _check_int("batch_size", self.batch_size, 1, 4096)
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_float("lr", self.lr, 0, 1, lo_open=True)
        # decoupled decay shrinks weights by lr * weight_decay per step: above 1 it would flip them
        _check_float("weight_decay", self.weight_decay, 0, 1)
        if self.max_concepts is not None:
            _check_int("max_concepts", self.max_concepts, 2, 10**6)
        if self.images_per_concept is not None:
            _check_int("images_per_concept", self.images_per_concept, 3, 10**6)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if deep:
            from core import conditions, datasets  # lazy: keeps config import-light
            from core.models import registry
            registry.check_encoder_id(self.encoder)
            registry.check_lm_id(self.lm)
            ds = datasets.load_dataset(self.dataset)
            conditions.parse_condition(self.condition).check(ds)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**d)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (lo <= value <= hi):
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_float(name: str, value: Any, lo: float, hi: float, lo_open: bool = False,
                 hi_open: bool = False) -> None:
    """A finite real number in the range ("(" / ")" when an end is open). NaN fails every comparison
    and would slip through a plain `value < lo` test, so finiteness is checked first; bools and
    strings are refused rather than coerced (True is not a learning rate)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must be a finite number in {interval}, got {value!r}")


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
            (_check_int if kind is int else _check_float)("the value", value, lo, hi)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).replace("the value ", "", 1)) from None
        return value
    parse.__name__ = kind.__name__       # argparse names the type in its own messages
    return parse
