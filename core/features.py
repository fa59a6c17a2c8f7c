"""On-disk encoder feature cache: every image goes through an encoder once, ever.

    FeatureCache(encoder).get(items, progress=None, pool=None) -> Tensor (N, n_grid, D) float32

Key: (encoder id, its weights, its transform_id) -> one folder, features_dir()/<encoder.cache_key>/;
inside, one safetensors file per image named by the sha256 of the image file's bytes
(<sha[:2]>/<sha>.safetensors). The full token grid is stored in fp16 (EfficientNet-Lite2: 81 x 1280,
200 KB an image; 655 MB for the default dataset's 3277 images), so the number of LM image tokens can
change without re-encoding: pooling happens at load time (`pool=k`, or later in VLM.prefix). One file
per image keeps adding images and concurrent writers trivial (temp file + os.replace). Measured on
this 2-core machine: encoding ~180 ms an image (idle) to 0.5-1 s (busy); reading the 1923 grids of
the five-style set back 3 s (8-12 s while other jobs ran), most of it reading and converting 390 MB of fp16.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import load_file, save_file

from core import files, paths
from core.images import load_image
from core.models.encoders import ImageEncoder, pool_tokens
from core.base import Progress

ENCODE_BATCH = 32


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class FeatureCache:
    """Encoder outputs per image, computed once and read from disk afterwards."""

    def __init__(self, encoder: ImageEncoder, root: Path | None = None, batch_size: int = ENCODE_BATCH):
        self.encoder = encoder
        self.root = Path(root) if root is not None else paths.features_dir() / encoder.cache_key
        self.batch_size = batch_size
        self.encoded = 0          # images this instance ran through the encoder (cache misses)

    def path_of(self, sha: str) -> Path:
        return self.root / sha[:2] / f"{sha}.safetensors"

    def get(self, items: Sequence, progress: Progress | None = None, pool: int | None = None) -> torch.Tensor:
        """Features of `items` (objects with a `.path`, e.g. ImageItem), in order: (N, n_grid, D)
        float32 on CPU, or (N, pool, D) when `pool` is given. Missing ones are encoded and stored."""
        report = progress or (lambda fraction, message: None)
        shas = [file_sha256(item.path) for item in items]
        missing = {}
        for item, sha in zip(items, shas):
            if sha not in missing and not self.path_of(sha).is_file():
                missing[sha] = item
        if missing:
            self._encode(list(missing.items()), report)
        report(0.95 if missing else 0.0, f"loading {len(items)} cached feature grids")
        out = None
        for start in range(0, len(shas), 256):   # chunked: one fp32 copy of the set, converted in bulk
            chunk = torch.stack([self._load(sha) for sha in shas[start:start + 256]]).float()
            if pool is not None:
                chunk = pool_tokens(chunk, pool)
            if out is None:
                out = torch.empty((len(shas), *chunk.shape[1:]))
            out[start:start + len(chunk)] = chunk
        report(1.0, f"{len(items)} feature grids ready")
        return out if out is not None else torch.empty((0, pool or 0, self.encoder.dim))

    def _load(self, sha: str) -> torch.Tensor:
        return load_file(self.path_of(sha))["grid"]

    @torch.inference_mode()
    def _encode(self, todo: list[tuple[str, object]], report: Progress) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        enc = self.encoder
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            x = torch.stack([enc.preprocess(load_image(item.path)) for _, item in batch])
            grids = enc(x).to("cpu", torch.float16)
            for (sha, _), grid in zip(batch, grids):
                self._store(sha, grid.contiguous())
            self.encoded += len(batch)
            done = start + len(batch)
            report(0.95 * done / len(todo), f"encoding images with {enc.id}: {done}/{len(todo)}")

    def _store(self, sha: str, grid: torch.Tensor) -> None:
        files.write_atomic(self.path_of(sha), write=lambda tmp: save_file(
            {"grid": grid}, tmp, metadata={"encoder": self.encoder.id, "transform": self.encoder.transform_id}))


def image_features(vlm, items: list, progress: Progress | None = None,
                   whole_grid: bool = False) -> tuple[torch.Tensor, dict]:
    """Cached encoder features of `items`, pooled to the VLM's image tokens (CPU, (N, k, D)) or, with
    `whole_grid`, the encoder's whole grid (the VLM pools it), and image id -> row."""
    feats = FeatureCache(vlm.encoder).get(items, progress=progress, pool=None if whole_grid else vlm.n_tokens)
    return feats, {im.id: i for i, im in enumerate(items)}
