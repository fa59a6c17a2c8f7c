"""Frozen image encoders: a picture in, a grid of feature tokens (B, N, D) out.

    EfficientNetLite   "efficientnet-lite2" (default; 260 px in, 9x9x1280 grid out), "efficientnet-lite0" (224 px, 7x7x1280)
    OpenClipVision     "open_clip:<arch>[:<pretrained tag | local checkpoint>]" (ViTs: patch tokens, no CLS)
    TimmEncoder        "timm:<name>[:<local checkpoint>]" (last feature map, or ViT patch tokens)

Every encoder is frozen (eval mode, no gradients) and owns its preprocessing: `preprocess(PIL)`
gives the normalised (3, S, S) tensor, and `transform_id` names that preprocessing exactly, so the
feature cache can tell features made one way from another. `pool_tokens` shrinks a grid to the k
tokens the language model sees (see core/models/vlm.py for the choice of k).

Ids are parsed and checked in core.models.registry; the builders here take parsed parts.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.models import ModelUnavailableError, hub_offline

EFFICIENTNET_SIZES = {"efficientnet-lite2": 260, "efficientnet-lite0": 224}
# The side of the square grid each gives at that input size (stride 32, "same" padding: ceil(S / 32)),
# known without loading its weights, so a config can be checked against it before any model loads.
EFFICIENTNET_GRIDS = {"efficientnet-lite2": 9, "efficientnet-lite0": 7}


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white (icons are drawn on transparent canvases;
    black behind them would change what the encoder sees)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def pool_tokens(grid: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, D) token grid -> (B, k, D) by average pooling.

    k = 1: the global mean. k a perfect square and N a perfect square (a square grid, as every
    encoder here produces for its square input): 2-D adaptive pooling to sqrt(k) x sqrt(k), so each
    token covers one region of the picture. Otherwise 1-D adaptive pooling over the flattened grid.
    A grid that already has k tokens comes back unchanged."""
    if grid.dim() != 3:
        raise ValueError(f"expected a (batch, tokens, dim) grid, got shape {tuple(grid.shape)}")
    b, n, d = grid.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot pool a {n}-token grid to {k} tokens (k must be in [1, {n}])")
    if k == n:
        return grid
    if k == 1:
        return grid.mean(dim=1, keepdim=True)
    side, out_side = math.isqrt(n), math.isqrt(k)
    if side * side == n and out_side * out_side == k:
        square = grid.transpose(1, 2).reshape(b, d, side, side)
        return F.adaptive_avg_pool2d(square, out_side).flatten(2).transpose(1, 2)
    return F.adaptive_avg_pool1d(grid.transpose(1, 2), k).transpose(1, 2)


def crop_grid(grid: torch.Tensor, side: int) -> torch.Tensor:
    """(B, S*S, D) square token grid -> (B, side*side, D): one random side x side window per image
    (torch's global RNG, so a resumed run draws the same windows). The cached encoder grid cropped
    like an image would be, without running the encoder again: training-time augmentation."""
    b, n, d = grid.shape
    s = math.isqrt(n)
    if s * s != n or not 1 <= side <= s:
        raise ValueError(f"cannot crop a {side}x{side} window from a {n}-token grid "
                         f"(needs a square grid of side >= {side})")
    if side == s:
        return grid
    top, left = torch.randint(0, s - side + 1, (2, b)).tolist()
    square = grid.view(b, s, s, d)
    return torch.stack([square[i, t:t + side, l:l + side] for i, (t, l) in enumerate(zip(top, left))]
                       ).reshape(b, side * side, d)


def file_fingerprint(path: Path) -> str:
    """sha256 (first 16 hex) of a checkpoint file: the cache must not mix two files at one path."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class ImageEncoder(nn.Module):
    """Base of the frozen encoders. Subclasses set id, dim, image_size, transform_id, weights_id
    and implement `preprocess` and `_grid`."""

    id: str
    dim: int
    image_size: int
    transform_id: str
    weights_id: str       # which weights: a pinned file, a hub tag, or a local file's hash

    def freeze(self) -> "ImageEncoder":
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "ImageEncoder":
        # Frozen for good: batch-norm statistics and dropout must never switch to training.
        return super().train(False)

    @property
    def cache_key(self) -> str:
        """Folder name in the feature cache: readable id + hash of (id, weights, preprocessing)."""
        digest = hashlib.sha256(f"{self.id}\n{self.weights_id}\n{self.transform_id}".encode()).hexdigest()[:12]
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.id)[:60]
        return f"{slug}-{digest}"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        raise NotImplementedError

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) preprocessed images -> (B, N, D) feature tokens."""
        with torch.no_grad():
            return self._grid(x.to(self.device))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def grid_tokens(self) -> int:
        """Tokens in the grid this encoder gives (what pool_tokens can shrink), found once by
        encoding a blank picture (subclasses that know it without running set _grid_tokens)."""
        n = getattr(self, "_grid_tokens", None)
        if n is None:
            blank = self.preprocess(Image.new("RGB", (self.image_size, self.image_size), (255, 255, 255)))
            n = self._grid_tokens = int(self(blank.unsqueeze(0)).shape[1])
        return n


def _nchw_to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2).contiguous()


class EfficientNetLite(ImageEncoder):
    """EfficientNet-Lite (ImageNet, converted from the TensorFlow release by the
    efficientnet_lite_pytorch package); the grid is the output of the final 1x1 conv head
    (after batch norm and ReLU6), before global pooling and the classifier."""

    def __init__(self, variant: str, weights: Path):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if variant not in EFFICIENTNET_SIZES:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}")
        self.id = variant
        self.image_size = EFFICIENTNET_SIZES[variant]
        net = EfficientNet.from_name(variant)
        # The package's own from_pretrained calls torch.load without weights_only; load it here.
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        net._fc = nn.Identity()          # the ImageNet classifier is never used
        self.net = net
        self.dim = net._bn1.num_features
        # TF "edge" models were trained on inputs scaled as (x - 127) / 128 per channel, not with
        # ImageNet mean/std (tensorflow/tpu efficientnet/lite: MEAN_RGB 127, STDDEV_RGB 128).
        self.transform_id = f"rgb-on-white|pad-square-white|bicubic-{self.image_size}|(x*255-127)/128"
        self.weights_id = f"{Path(weights).name}"
        self._grid_tokens = EFFICIENTNET_GRIDS[variant] ** 2
        self.freeze()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        image = to_rgb(image)
        w, h = image.size
        if w != h:   # pad, never crop: icons fill their whole canvas
            side = max(w, h)
            square = Image.new("RGB", (side, side), (255, 255, 255))
            square.paste(image, ((side - w) // 2, (side - h) // 2))
            image = square
        image = image.resize((self.image_size, self.image_size), Image.Resampling.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
        return (x - 127.0) / 128.0

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        return _nchw_to_tokens(self.net.extract_features(x))


class OpenClipVision(ImageEncoder):
    """The vision tower of an open_clip model; tokens from its last block (final norm applied),
    i.e. patch tokens for ViTs and the last feature map for ResNets / timm towers."""

    def __init__(self, arch: str, pretrained: str, encoder_id: str):
        super().__init__()
        import open_clip

        model, _, transform = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
        self.id = encoder_id
        self.visual = model.visual
        self.transform = transform
        cfg = dict(getattr(self.visual, "preprocess_cfg", {}) or {})
        self.image_size = int(np.atleast_1d(cfg.get("size", 224))[0])
        self.transform_id = "rgb-on-white|open_clip|" + json.dumps(cfg, sort_keys=True, default=str)
        path = Path(pretrained)
        self.weights_id = file_fingerprint(path) if path.is_file() else f"{arch}:{pretrained}"
        with torch.no_grad():
            self.dim = self._grid(self.preprocess(Image.new("RGB", (64, 64))).unsqueeze(0)).shape[-1]
        self.freeze()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(to_rgb(image))

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual.forward_intermediates(x, indices=1, normalize_intermediates=True,
                                                intermediates_only=True, output_fmt="NCHW")
        return _nchw_to_tokens(out["image_intermediates"][-1])


class TimmEncoder(ImageEncoder):
    """A timm backbone; tokens from its last stage (final norm applied), prefix tokens dropped."""

    def __init__(self, name: str, checkpoint: Path | None, encoder_id: str):
        super().__init__()
        import timm

        overlay = {"file": str(checkpoint)} if checkpoint is not None else None
        self.net = timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        self.id = encoder_id
        cfg = timm.data.resolve_data_config({}, model=self.net)
        self.transform = timm.data.create_transform(**cfg)
        self.image_size = int(cfg["input_size"][-1])
        self.transform_id = "rgb-on-white|timm|" + json.dumps(cfg, sort_keys=True, default=str)
        self.weights_id = file_fingerprint(checkpoint) if checkpoint is not None else name
        self.dim = self.net.num_features
        self.freeze()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(to_rgb(image))

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net.forward_intermediates(x, indices=1, norm=True, output_fmt="NCHW",
                                             intermediates_only=True)
        return _nchw_to_tokens(out[-1])


# ---------------------------------------------------------------- weights that live on a hub

def _hub_cached(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name)
        if isinstance(hit, str):
            return Path(hit)
    return None


def open_clip_weights(arch: str, tag: str) -> str:
    """What to hand open_clip as `pretrained`: the tag when the hub is reachable, the cached file
    when it is not but the file was downloaded before; otherwise a clear ModelUnavailableError."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    repo = (cfg.get("hf_hub") or "").strip("/")
    if repo:
        cached = _hub_cached(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
        if cached is not None:
            return str(cached)
    if hub_offline():
        raise ModelUnavailableError(
            f"open_clip weights for {arch}:{tag} are not available offline: pass a local checkpoint "
            f"path as open_clip:{arch}:/path/to/ckpt.pt")
    return tag


def timm_weights(name: str) -> Path | None:
    """None (let timm download) when the hub is reachable; the cached file when it is not but the
    weights were downloaded before; otherwise a clear ModelUnavailableError."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if repo:
        cached = _hub_cached(repo, ("model.safetensors", "pytorch_model.bin"))
        if cached is not None:
            return cached
    if hub_offline():
        raise ModelUnavailableError(
            f"timm weights for {name} are not available offline: pass a local checkpoint path as "
            f"timm:{name}:/path/to/checkpoint.safetensors")
    return None
