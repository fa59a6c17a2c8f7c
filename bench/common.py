"""Shared set-up for the benchmarks: a small, fixed question set from the default dataset, the
default VLM, and a timer. Both sides of every comparison run in the same process, on the same
questions and machine, one right after the other."""
from __future__ import annotations

import time

import torch

from core import rundata
from core.models import checkpoint
from core.config import TrainConfig


def setup(images: int, device: str = "auto", seed: int = 0):
    """(cfg, vlm, test questions of the first `images` test images, those ImageItems, device)."""
    cfg = TrainConfig(seed=seed, device=device)
    dev = checkpoint.resolve_device(device)
    data = rundata.prepare(cfg)
    items = data.images("test")[:images]
    keep = {im.id for im in items}
    questions = [q for q in data.questions["test"] if q.image_id in keep]
    vlm = checkpoint.build_vlm(cfg, dev)
    return cfg, data, vlm, items, questions, dev


def trained_run(run):
    """(run info, its loaded VLM, the RunData it was trained on) of a trained run directory."""
    from core.evaluate import trained_config
    info, vlm = checkpoint.load_trained(run)
    return info, vlm, rundata.prepare(trained_config(info))


@torch.no_grad()
def concept_posterior(vlm, feats: torch.Tensor) -> torch.Tensor | None:
    """(B, C) P(concept) from a posterior-input projector's concept probe on each image's pooled
    feature (its columns are the run's concepts, sorted: core.train.posterior_inputs), or None when
    the projector reads features, not posteriors."""
    from core.models.encoders import pool_tokens

    probe = getattr(vlm.projector, "posterior", None)
    if probe is None:
        return None
    return probe(pool_tokens(feats.to(probe.weight.device, torch.float32), 1)[:, 0])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device):
    """(result, seconds) of fn(), with the device synchronised on both ends."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def matmul_peak(device: torch.device, n: int | None = None, repeats: int = 3,
                dtype: torch.dtype = torch.float32) -> float:
    """Achievable FLOP/s in `dtype`: the best of `repeats` timed torch.mm of two n×n matrices."""
    n = n or (8192 if device.type == "cuda" else 2048)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    torch.mm(a, b)                                     # warm-up (allocations, kernel choice)
    best = min(timed(lambda: torch.mm(a, b), device)[1] for _ in range(repeats))
    return 2 * n ** 3 / best
