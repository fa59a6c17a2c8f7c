"""Model ids -> builders: the one place that knows which encoders and LMs exist, and `create_vlm`,
the single factory every training, evaluation and prediction path goes through.

Encoder ids:  efficientnet-lite2 (default), efficientnet-lite0,
              open_clip:<arch>[:<pretrained tag | local checkpoint path>]   (tag defaults to the first listed),
              timm:<name>[:<local checkpoint path>]
LM ids:       smollm2-135m (default), gemma3-270m (optional asset), a hub repo id ("org/name"),
              a local folder (config.json + weights + tokenizer), or a .gguf file path.

`check_encoder_id` / `check_lm_id` validate an id's form (and that named files exist) without
loading any model and raise ConfigError with one line listing the valid forms. Weights that are
neither on disk nor downloadable from here raise ModelUnavailableError (a ConfigError) at creation,
and already from `check_weights`, which finds them the same way without loading anything (so a
command or a job submission can refuse before it creates a run folder).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Callable

import torch

from core.base import ConfigError
from core.config import TrainConfig
from core.models import ModelUnavailableError, encoders, lms
from core.models.encoders import EFFICIENTNET_GRIDS, EFFICIENTNET_SIZES, ImageEncoder
from core.models.lms import LanguageModel
from core.models.projector import Projector
from core.models.vlm import VLM

ENCODERS: tuple[str, ...] = tuple(EFFICIENTNET_SIZES)          # named encoders, default first
LMS: tuple[str, ...] = ("smollm2-135m", "gemma3-270m")          # named LMs (core.assets), default first
ENCODER_FORMS = ", ".join(ENCODERS) + ", open_clip:<arch>[:<tag or checkpoint path>], timm:<name>[:<checkpoint path>]"
LM_FORMS = ", ".join(LMS) + ", a hub id org/name, a local model folder, or a .gguf file path"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


# ---------------------------------------------------------------- encoders

def _parse_encoder(encoder_id: str) -> tuple[str, str, str | None]:
    """(family, name, source) of a valid encoder id; ConfigError otherwise."""
    if not isinstance(encoder_id, str) or not encoder_id.strip():
        raise ConfigError(f"encoder id must be a non-empty string; valid: {ENCODER_FORMS}")
    if encoder_id in ENCODERS:
        return "efficientnet", encoder_id, None
    family, _, rest = encoder_id.partition(":")
    name, _, source = rest.partition(":")
    if family == "open_clip" and name:
        import open_clip

        if name not in open_clip.list_models():
            raise ConfigError(f"unknown open_clip architecture {name!r} in encoder id {encoder_id!r}; "
                              f"see open_clip.list_models()")
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not source:
            if not tags:
                raise ConfigError(f"open_clip {name} has no pretrained tags: pass a checkpoint as "
                                  f"open_clip:{name}:/path/to/ckpt.pt")
            return "open_clip", name, tags[0]
        if source not in tags and not Path(source).expanduser().is_file():
            raise ConfigError(f"{source!r} in encoder id {encoder_id!r} is neither an open_clip tag of {name} "
                              f"({', '.join(tags) or 'none'}) nor an existing checkpoint file")
        return "open_clip", name, source
    if family == "timm" and name:
        import timm

        if not timm.is_model(name):
            raise ConfigError(f"unknown timm model {name!r} in encoder id {encoder_id!r}; see timm.list_models()")
        if source and not Path(source).expanduser().is_file():
            raise ConfigError(f"checkpoint {source!r} in encoder id {encoder_id!r} does not exist")
        return "timm", name, source or None
    raise ConfigError(f"unknown encoder {encoder_id!r}; valid: {ENCODER_FORMS}")


def check_encoder_id(encoder_id: str) -> None:
    _parse_encoder(encoder_id)


def grid_tokens(encoder_id: str) -> int | None:
    """Tokens in the feature grid of an encoder, when known without loading it (the named
    EfficientNets); None for open_clip / timm ids, whose grid is known once the model is built
    (ImageEncoder.grid_tokens, checked by create_vlm)."""
    family, name, _ = _parse_encoder(encoder_id)
    return EFFICIENTNET_GRIDS[name] ** 2 if family == "efficientnet" else None


def check_grid_fit(cfg: TrainConfig, n: int | None = None) -> None:
    """ConfigError unless cfg.image_tokens (and cfg.grid_crop) fit the encoder's grid of `n` tokens
    (None: the grid known without loading, registry.grid_tokens; nothing is checked when unknown).
    pool_tokens shrinks a grid of n tokens to any k in [1, n]; a grid_crop window of side c must fit
    the (square) grid, and training pools that window, so k <= c * c as well."""
    n = grid_tokens(cfg.encoder) if n is None else n
    if n is None:
        return
    side = math.isqrt(n)
    shape = f"a {side}x{side} grid of {n} tokens" if side * side == n else f"a grid of {n} tokens"
    if not 1 <= cfg.image_tokens <= n:
        raise ConfigError(f"image_tokens {cfg.image_tokens} does not fit encoder {cfg.encoder}, which gives {shape}: "
                          f"image_tokens must be in [1, {n}]")
    if cfg.grid_crop:
        if side * side != n or cfg.grid_crop > side:
            raise ConfigError(f"grid_crop {cfg.grid_crop} does not fit encoder {cfg.encoder}, which gives {shape}: "
                              + (f"grid_crop must be in [1, {side}] (or 0: the whole grid)" if side * side == n
                                 else "grid_crop needs a square grid"))
        if cfg.image_tokens > cfg.grid_crop ** 2:
            raise ConfigError(f"image_tokens {cfg.image_tokens} does not fit a grid_crop window of "
                              f"{cfg.grid_crop}x{cfg.grid_crop} = {cfg.grid_crop ** 2} tokens: image_tokens must be "
                              f"in [1, {cfg.grid_crop ** 2}] (or a larger grid_crop)")


def _efficientnet(encoder_id: str, name: str, source: str | None) -> ImageEncoder:
    from core import assets

    return encoders.EfficientNetLite(name, assets.efficientnet_weights(name))


def _open_clip(encoder_id: str, name: str, source: str) -> ImageEncoder:
    path = Path(source).expanduser()
    pretrained = str(path) if path.is_file() else encoders.open_clip_weights(name, source)
    return encoders.OpenClipVision(name, pretrained, encoder_id)


def _timm(encoder_id: str, name: str, source: str | None) -> ImageEncoder:
    checkpoint = Path(source).expanduser() if source else encoders.timm_weights(name)
    return encoders.TimmEncoder(name, checkpoint, encoder_id)


ENCODER_BUILDERS: dict[str, Callable[[str, str, str | None], ImageEncoder]] = {
    "efficientnet": _efficientnet, "open_clip": _open_clip, "timm": _timm}


def _encoder_weights(family: str, name: str, source: str | None) -> None:
    """Find an encoder's weights like its builder does, without building it."""
    if family == "efficientnet":
        from core import assets
        assets.efficientnet_weights(name, record=False)   # a check writes nothing
    elif family == "open_clip" and not Path(source).expanduser().is_file():
        encoders.open_clip_weights(name, source)
    elif family == "timm" and not source:
        encoders.timm_weights(name)


def _lm_weights(kind: str, value: str) -> None:
    if kind == "named":
        from core import assets
        assets.check_lm(value)
    elif kind == "hub":
        lms.hub_lm_source(value)
    # "gguf" and "folder": _parse_lm already checked the file / folder exists


def check_weights(encoder_id: str | None = None, lm_id: str | None = None) -> None:
    """ModelUnavailableError unless these models' weights are on disk or downloadable from here.
    Loads nothing; a random-init LM needs its source too (architecture config and tokenizer)."""
    from core import assets
    try:
        if encoder_id is not None:
            _encoder_weights(*_parse_encoder(encoder_id))
        if lm_id is not None:
            _lm_weights(*_parse_lm(lm_id))
    except assets.AssetError as exc:   # a bundled model that is not installed or fetched
        raise ModelUnavailableError(str(exc)) from None


def check_chat_template(lm_id: str) -> None:
    """ConfigError when a local LM folder (a bundled LM or a transformers folder) has no chat
    template, so `--prompt chat` is refused before anything loads. A GGUF file or a hub id is only
    known once its tokenizer loads (VLM's build_prompt says so then)."""
    kind, value = _parse_lm(lm_id)
    if kind not in ("named", "folder"):
        return
    folder = Path(LM_SOURCES[kind](value)[0])
    config = folder / "tokenizer_config.json"
    try:
        in_config = config.is_file() and "chat_template" in json.loads(config.read_text())
    except (OSError, ValueError):
        return                            # unreadable here: the tokenizer's own load will say why
    if not (in_config or (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file()):
        raise ConfigError(f"LM {lm_id} has no chat template (a base model); use the plain prompt format")


def create_encoder(encoder_id: str, device: str | torch.device = "cpu") -> ImageEncoder:
    """A frozen encoder on `device`."""
    family, name, source = _parse_encoder(encoder_id)
    return ENCODER_BUILDERS[family](encoder_id, name, source).to(device)


# ---------------------------------------------------------------- language models

def _parse_lm(lm_id: str) -> tuple[str, str]:
    """(kind, value): ("named", id) | ("gguf", path) | ("folder", path) | ("hub", repo id)."""
    if not isinstance(lm_id, str) or not lm_id.strip():
        raise ConfigError(f"LM id must be a non-empty string; valid: {LM_FORMS}")
    if lm_id in LMS:
        return "named", lm_id
    path = Path(lm_id).expanduser()
    if lm_id.lower().endswith(".gguf"):
        if not path.is_file():
            raise ConfigError(f"GGUF file {lm_id!r} does not exist")
        return "gguf", str(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"LM folder {lm_id!r} has no config.json (expected a transformers model folder)")
        return "folder", str(path)
    if _HUB_ID.match(lm_id):
        return "hub", lm_id
    raise ConfigError(f"unknown LM {lm_id!r}; valid: {LM_FORMS}")


def check_lm_id(lm_id: str) -> None:
    _parse_lm(lm_id)


def _named_lm_source(value: str) -> tuple[str | Path, str | None]:
    from core import assets

    return assets.lm_dir(value), None


LM_SOURCES: dict[str, Callable[[str], tuple[str | Path, str | None]]] = {
    # kind -> (folder or hub id to load from, GGUF file name in that folder)
    "named": _named_lm_source,
    "gguf": lambda value: (Path(value).parent, Path(value).name),
    "folder": lambda value: (value, None),
    "hub": lambda value: (lms.hub_lm_source(value), None),
}


def create_lm(lm_id: str, init: str = "pretrained", device: str | torch.device = "cpu",
              seed: int = 0) -> LanguageModel:
    """A frozen LM on `device`; init="random" gives seeded random weights of the same architecture.
    A .gguf path is dequantized on every load (about a minute for 135M parameters)."""
    kind, value = _parse_lm(lm_id)
    source, gguf_file = LM_SOURCES[kind](value)
    return lms.load_lm(lm_id, source, init, seed, gguf_file=gguf_file).to(device)


# ---------------------------------------------------------------- the VLM

def create_projector(cfg: TrainConfig, encoder_dim: int, lm, classes: int = 0) -> Projector:
    """A fresh projector of `cfg`, seeded by cfg.seed; `classes` > 0 gives it a concept-posterior
    input of that many concepts (cfg.projector_input "posterior", or "features+posterior" beside the
    feature) and cfg.projector_topk's tokens."""
    return Projector(cfg.projector, encoder_dim, lm.hidden_size, lm.token_norm(), seed=cfg.seed,
                     dropout=cfg.dropout, hidden=cfg.projector_hidden, tokens=cfg.projector_tokens,
                     classes=classes, topk=cfg.projector_topk if classes else 0,
                     keep_features=cfg.projector_input == "features+posterior")


def create_vlm(cfg: TrainConfig, device: str | torch.device = "cpu") -> VLM:
    """Encoder + LM (+ random init when cfg.lm_init says so) + a fresh projector seeded by cfg.seed.
    A posterior-input config's projector needs the number of concepts, known only from the run's
    data or checkpoint: training and loading then call use_posterior_input."""
    cfg.validate()
    device = torch.device(device)
    encoder = create_encoder(cfg.encoder, device)
    if cfg.image_tokens > 1 or cfg.grid_crop:    # an open_clip / timm grid is known only now
        check_grid_fit(cfg, encoder.grid_tokens)
    lm = create_lm(cfg.lm, cfg.lm_init, device, seed=cfg.seed)
    return VLM(encoder, lm, create_projector(cfg, encoder.dim, lm).to(device), cfg.image_tokens, cfg.prompt)


def vlm_sharing_frozen(cfg: TrainConfig, other: VLM) -> VLM:
    """A VLM of `cfg` whose encoder and LM are `other`'s own objects, with a fresh projector seeded
    by cfg.seed (the one create_vlm would build): many runs trained in one process (core.train.
    train_many) hold one copy of the frozen models. The caller checks that cfg names the same
    encoder, LM and LM init (and seed, for a random-init LM) as `other` was built from."""
    cfg.validate()
    if cfg.image_tokens > 1 or cfg.grid_crop:
        check_grid_fit(cfg, other.encoder.grid_tokens)
    projector = create_projector(cfg, other.encoder.dim, other.lm)
    return VLM(other.encoder, other.lm, projector.to(other.device), cfg.image_tokens, cfg.prompt)


def use_posterior_input(vlm: VLM, cfg: TrainConfig, classes: int) -> None:
    """Give `vlm` the fresh projector of a posterior-input config for `classes` concepts (its probe
    still zero: core.train fits it, a checkpoint loads it)."""
    if not cfg.reads_posterior:
        raise ValueError(f"use_posterior_input needs projector_input 'posterior' or 'features+posterior', "
                         f"got {cfg.projector_input!r}")
    device = vlm.device
    vlm.projector = create_projector(cfg, vlm.encoder.dim, vlm.lm, classes).to(device)
