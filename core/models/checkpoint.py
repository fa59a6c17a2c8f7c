"""A trained VLM from a run folder: device choice, model building, and the checks that the frozen
parts are the ones the projector was trained with.

    load_trained(run_dir) -> (RunInfo, VLM)     what evaluation, prediction and the app call
    build_vlm(cfg, device)                       the untrained VLM of a config (training starts here)
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from core import runs
from core.config import ConfigError, TrainConfig
from core.models import registry

# 2: the image after a start text (never at position 0), prompt formats, best-epoch projector.
# Older checkpoints were trained with another prompt, so their projectors mean nothing here.
CHECKPOINT_FORMAT = 2


def resolve_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_vlm(cfg: TrainConfig, device: torch.device):
    """The VLM of a config, in eval mode. create_vlm seeds the random-init LM and the projector
    from cfg.seed, so the same config builds the same model at training, evaluation and prediction."""
    vlm = registry.create_vlm(cfg, device)
    vlm.eval()
    return vlm


def frozen_checksum(vlm) -> dict[str, float]:
    """Signed sum of the first 4096 values of every frozen weight, and their L2 norm. A different
    random init moves `sum` by about `l2`; dtype rounding (fp32 vs bf16) by well under 1 %."""
    total, sq = 0.0, 0.0
    trainable = {id(p) for p in vlm.projector.parameters()}
    for _, p in sorted(vlm.named_parameters(), key=lambda kv: kv[0]):
        if id(p) in trainable:
            continue
        x = p.detach().reshape(-1)[:4096].double().cpu()
        total += float(x.sum())
        sq += float((x * x).sum())
    return {"sum": total, "l2": math.sqrt(sq)}


def check_frozen_checksum(vlm, recorded: dict | None, where: Path) -> None:
    if not recorded:
        return
    now = frozen_checksum(vlm)
    if abs(now["sum"] - recorded["sum"]) > 0.05 * max(recorded["l2"], 1e-12):
        raise runs.RunError(f"the frozen encoder/LM built now differ from the ones the checkpoint in "
                            f"{where} was trained with (changed model files or random init)")


def load_trained(run_dir: str | Path, device: str | torch.device | None = None):
    """(RunInfo, VLM with the trained projector loaded, in eval mode) of a run with a checkpoint."""
    info = runs.load_run(run_dir)
    ck = info.checkpoint
    if not ck:
        raise runs.RunError(f"run {info.run_id} has no checkpoint yet (no epoch finished)")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise runs.RunError(f"run {info.run_id} was trained by an older TaxoLens (checkpoint format "
                            f"{ck.get('format')}, now {CHECKPOINT_FORMAT}) with another prompt; train it again")
    dev = device if isinstance(device, torch.device) else resolve_device(device or info.config.device)
    vlm = build_vlm(info.config, dev)
    files = ck.get("files", {})
    name = runs.BEST_FILE if runs.BEST_FILE in files else runs.PROJECTOR_FILE   # the best epoch when kept
    load_projector(vlm, runs.load_tensors(runs.checkpoint_dir(info.path) / name, files.get(name)), info.path)
    check_frozen_checksum(vlm, ck.get("frozen_checksum"), info.path)
    vlm.eval()
    return info, vlm


def load_projector(vlm, state: dict, where: Path) -> None:
    try:
        vlm.load_projector_state(state)
    except ValueError as exc:
        raise runs.RunError(f"checkpoint in {where}: {exc}") from None
