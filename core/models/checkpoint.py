"""A trained VLM from a run folder: device choice, model building, and the checks that the frozen
parts are the ones the projector was trained with.

    load_trained(run_dir) -> (RunInfo, VLM)     what evaluation, prediction and the app call
    build_vlm(cfg, device)                       the untrained VLM of a config (training starts here)
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from core import files, paths, runs
from core.base import ConfigError
from core.config import TrainConfig
from core.models import registry

# 2: the image after a start text (never at position 0), prompt formats, best-epoch projector.
# Older checkpoints were trained with another prompt, so their projectors mean nothing here.
CHECKPOINT_FORMAT = 2
POSTERIOR_WEIGHT = "posterior.weight"            # a posterior-input projector's probe (C, D)
# When a checkpoint ships in fp16: the probe's standardisation stays fp32 (a standard deviation near
# 0 would round to 0), and its weight is stored as int8 rows with one fp32 scale each, so a
# posterior-input projector fits the 3 MB a shipped checkpoint may take (385 concepts: 2.6 MB
# instead of 3.07 MB; what that changes in the answers: docs/training.md, "The probe-posterior input").
FP32_WHEN_SHIPPED = ("posterior.mean", "posterior.std")
# What the repository's own shipped checkpoint (paths.SHIPPED_CHECKPOINT) may take: it lives in git.
# A features+posterior projector of the default size (a 1,665-wide first layer) is ~3.6 MB; --dest
# elsewhere has no limit.
SHIPPED_MAX_BYTES = 3_000_000
INT8_WHEN_SHIPPED = (POSTERIOR_WEIGHT, "concept_rows")   # concept_rows: the top-k tokens' (C, H) rows
INT8, SCALE = ".int8", ".scale"


def quantize_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 rows, fp32 scale per row) with w ~ int8 * scale, rounding to the nearest step."""
    scale = w.float().abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127
    return (w.float() / scale).round().clamp(-127, 127).to(torch.int8), scale


def shipped_state(state: dict) -> dict:
    """A projector state as a shipped checkpoint stores it (see FP32_WHEN_SHIPPED, INT8_WHEN_SHIPPED)."""
    out = {}
    for k, v in state.items():
        if k in INT8_WHEN_SHIPPED:
            out[k + INT8], out[k + SCALE] = quantize_rows(v)
        else:
            out[k] = v.float() if k in FP32_WHEN_SHIPPED else v.to(torch.float16)
    return out


def tensor_bytes(tensors: dict) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _over_the_limit(size: int) -> str:
    return (f"{size / 1e6:.2f} MB shipped, over the {SHIPPED_MAX_BYTES / 1e6:g} MB the repository's "
            f"checkpoint ({paths.SHIPPED_CHECKPOINT}) may take")


def check_ships_to_repository(cfg: TrainConfig, classes: int) -> None:
    """ConfigError before `taxolens train --ship` trains a projector too large for the repository's
    checkpoint: its size follows from the config and the run's number of concepts alone, so an
    hour of training does not end in a refused export. It builds the config's VLM on the CPU, as
    training does right after (the dimensions are known only from the loaded models), so a first
    use converts the LM and records the weights' verification here instead."""
    vlm = build_vlm(cfg, torch.device("cpu"))
    if cfg.reads_posterior:
        registry.use_posterior_input(vlm, cfg, classes)
    size = tensor_bytes(shipped_state(vlm.projector.state_dict()))
    if size > SHIPPED_MAX_BYTES:
        raise ConfigError(f"this config's projector ({cfg.projector_input} input, {classes} concepts) would take "
                          f"{_over_the_limit(size)}: drop --ship and ship the finished run elsewhere with "
                          f"`taxolens ship RUN --dest DIR`, or train a smaller projector (--projector-input "
                          f"posterior, --projector-hidden, --projector-tokens)")


def unpacked_state(state: dict) -> dict:
    """A stored projector state with int8 rows turned back into floats (other tensors as stored)."""
    out = {k: v for k, v in state.items() if not k.endswith((INT8, SCALE))}
    for k in state:
        if k.endswith(INT8):
            base = k[:-len(INT8)]
            out[base] = state[k].float() * state[base + SCALE].float()
    return out


def resolve_device(name: str = "auto") -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(name)
    except (RuntimeError, TypeError):                  # torch's own lists its ~20 device types
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:<n>, got {name!r}") from None


def resolve_precision(name: str, device: torch.device) -> str:
    """"bf16" or "fp32" for TrainConfig.precision on `device`: auto means bf16 on CUDA and on CPUs
    whose matmuls run bf16 natively (AMX or AVX512-BF16), where it is ~2x faster; fp32 elsewhere."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    is_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    is_avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    return bool(is_amx() or is_avx512_bf16())


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


def load_trained(run_dir: str | Path, device: str | torch.device | None = None, frozen_from=None):
    """(RunInfo, VLM with the trained projector loaded, in eval mode) of a run with a checkpoint.
    frozen_from: a VLM whose encoder and LM (fp32) the run's model shares instead of loading its own
    (a sweep evaluating many runs of one LM); the frozen checksum still checks they are the run's."""
    info = runs.load_run(run_dir)
    ck = info.checkpoint
    if not ck:
        raise runs.RunError(f"run {info.run_id} has no checkpoint yet (no epoch finished)")
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise runs.RunError(f"run {info.run_id} was trained by an older TaxoLens (checkpoint format "
                            f"{ck.get('format')}, now {CHECKPOINT_FORMAT}) with another prompt; train it again")
    dev = device if isinstance(device, torch.device) else resolve_device(device or info.config.device)
    files = ck.get("files", {})
    name = runs.BEST_FILE if runs.BEST_FILE in files else runs.PROJECTOR_FILE   # the best epoch when kept
    # before the frozen models: a missing or damaged projector file is an error in milliseconds, not after the LM loads
    state = unpacked_state(runs.load_tensors(runs.checkpoint_dir(info.path) / name, files.get(name)))
    if frozen_from is None:
        vlm = build_vlm(info.config, dev)
    else:
        vlm = registry.vlm_sharing_frozen(info.config, frozen_from)
    fit_posterior_input(vlm, info.config, state)
    load_projector(vlm, state, info.path)
    check_frozen_checksum(vlm, ck.get("frozen_checksum"), info.path)
    vlm.eval()
    return info, vlm


def fit_posterior_input(vlm, cfg: TrainConfig, state: dict) -> None:
    """A posterior-input config's projector sized by the concepts its stored probe has (a no-op for
    the feature input)."""
    if cfg.reads_posterior and POSTERIOR_WEIGHT in state:
        registry.use_posterior_input(vlm, cfg, int(state[POSTERIOR_WEIGHT].shape[0]))


def load_projector(vlm, state: dict, where: Path) -> None:
    try:
        vlm.load_projector_state(state)
    except ValueError as exc:
        raise runs.RunError(f"checkpoint in {where}: {exc}") from None


# ---------------------------------------------------------------- the shipped default checkpoint
# A small trained default run lives in the repo (paths.SHIPPED_CHECKPOINT: config.json,
# checkpoint/checkpoint.json + the best epoch's projector in fp16, its test evaluation), so Predict
# works on a fresh clone without training. It is installed into the runs folder like any run when
# it fits this machine's dataset; the frozen-weight checksum is checked when it is loaded.

SHIPPED_FILES = (runs.CONFIG_JSON, "checkpoint/checkpoint.json", f"checkpoint/{runs.BEST_FILE}",
                 "eval/test/metrics.json", "eval/test/questions.csv", f"eval/test/{runs.RANKING_FILE}")


def shipped_fit(source: Path | None = None) -> tuple[bool, str]:
    """(fits, why) for the shipped checkpoint against the installed dataset: present, of this
    checkpoint format, and trained on a dataset with the same tables. Cheap: no model is loaded."""
    from core.data import datasets

    source = Path(source or paths.SHIPPED_CHECKPOINT)
    ck_path = source / "checkpoint" / "checkpoint.json"
    if not ck_path.is_file():
        return False, f"no shipped checkpoint in {source}"
    ck = runs.read_json(ck_path)
    if ck.get("format") != CHECKPOINT_FORMAT:
        return False, f"the shipped checkpoint has format {ck.get('format')}, this TaxoLens reads {CHECKPOINT_FORMAT}"
    name = ck.get("dataset", {}).get("name", "concepts")
    try:
        ds = datasets.load_dataset(name)
    except datasets.DatasetError as exc:
        return False, f"the shipped checkpoint was trained on dataset '{name}', which is not here ({exc})"
    if datasets.version_sha256(ds) != ck.get("dataset", {}).get("table_sha256"):
        return False, (f"the installed dataset '{name}' differs from the one the shipped checkpoint was "
                       f"trained on (its tables changed)")
    return True, f"shipped checkpoint {ck.get('run_id', source.name)} fits dataset '{name}'"


def shipped_installed(source: Path | None = None) -> bool:
    """Whether the shipped checkpoint is already in the runs folder (install_shipped's destination)."""
    source = Path(source or paths.SHIPPED_CHECKPOINT)
    try:
        run_id = runs.read_json(source / "checkpoint" / "checkpoint.json")["run_id"]
    except (runs.RunError, OSError, KeyError, TypeError):
        return False
    return (paths.runs_dir() / run_id / "checkpoint" / "checkpoint.json").is_file()


def install_shipped(source: Path | None = None) -> Path | None:
    """Copy the shipped checkpoint into the runs folder (once; atomically) when it fits; returns
    its run folder, or None when it does not fit (shipped_fit says why)."""
    import shutil
    import tempfile

    source = Path(source or paths.SHIPPED_CHECKPOINT)
    fits, _ = shipped_fit(source)
    if not fits:
        return None
    run_id = runs.read_json(source / "checkpoint" / "checkpoint.json")["run_id"]
    dest = paths.runs_dir() / run_id
    if (dest / "checkpoint" / "checkpoint.json").is_file():
        return dest
    paths.ensure_writable(paths.runs_dir())
    tmp = Path(tempfile.mkdtemp(dir=paths.runs_dir(), prefix=f".{run_id}."))
    os.chmod(tmp, 0o755)                # as the runs train.py writes, not mkdtemp's 0700
    try:
        for rel in SHIPPED_FILES:
            if (source / rel).is_file():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / rel, tmp / rel)
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (dest / "checkpoint" / "checkpoint.json").is_file():   # another process may have won the race
            raise
    return dest


def default_run() -> Path | None:
    """The run to answer with when none is named: the best finished run of the default config or
    the shipped recipe (runs.default_checkpoint), else the shipped checkpoint, installed into the
    runs folder as `make app`'s first start installs it; None when neither (shipped_fit says why)."""
    return runs.default_checkpoint() or install_shipped()       # one scan of the runs folder


def check_ship_dest(dest: Path, run_dir: Path) -> None:
    """RunError unless `dest` may be replaced by a shipped checkpoint: missing, an empty folder or an
    earlier shipped checkpoint, and neither the run's folder nor one that holds or sits inside it.
    Shipping replaces the whole folder, so anything else there would be deleted."""
    here, run = dest.resolve(), Path(run_dir).resolve()
    if here == run or run in here.parents or here in run.parents:
        raise runs.RunError(f"--dest {dest} is, holds or sits inside the run {run}; ship to another folder")
    if dest.is_file():
        raise runs.RunError(f"--dest {dest} is a file; shipping writes a folder")
    try:       # a parent that is a file, a folder that cannot be written (/proc): before any work
        files.check_output_target(dest, folder=True)
    except files.FileWriteError as exc:
        raise runs.RunError(f"--dest {exc}") from None
    if not dest.exists():
        return
    earlier = _json_or_none(dest / "checkpoint" / "checkpoint.json")
    if any(dest.iterdir()) and not (isinstance(earlier, dict) and "shipped" in earlier):
        raise runs.RunError(f"--dest {dest} holds files that are not a shipped checkpoint; shipping replaces "
                            f"the whole folder, so give a new or empty folder (or an earlier shipped checkpoint)")


def _json_or_none(path: Path):
    try:
        return runs.read_json(path)
    except runs.RunError:          # missing or not JSON
        return None


def export_shipped(run_dir: str | Path, dest: Path | None = None, unfinished: bool = False) -> Path:
    """Write a finished, test-evaluated run as the shipped checkpoint: the best epoch's projector
    in fp16 (no optimizer state), its checkpoint.json (files re-hashed), config and test evaluation.
    `unfinished` also takes a run stopped by hand (cancelled) after at least one epoch: its best
    epoch so far ships, and checkpoint.json says where it stopped. Replaces `dest` atomically."""
    import shutil
    import tempfile

    info = runs.load_run(run_dir)
    ck = dict(info.checkpoint)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise runs.RunError(f"run {info.run_id} is not of checkpoint format {CHECKPOINT_FORMAT}")
    if info.status != "finished":
        if not (unfinished and info.epoch >= 1 and ck.get("best")):
            raise runs.RunError(f"run {info.run_id} is not finished (status {info.status}, {info.epoch} epochs)")
        ck["stopped"] = (f"stopped by hand after epoch {info.epoch} of {ck.get('epochs')} "
                         f"({ck.get('metrics', [{}])[-1].get('updates')} of {ck.get('total_steps')} planned updates); "
                         f"the best epoch so far ({ck['best']['epoch']}) ships")
        ck["status"] = "finished"
    test = runs.eval_dir(info.path, "test")
    if not (test / runs.METRICS_JSON).is_file():
        raise runs.RunError(f"run {info.run_id} has no test evaluation; run `taxolens evaluate {info.run_id}` first")
    if not runs.evaluation_is_current(info.path, "test"):     # a copy would look current: its file times are new
        raise runs.RunError(f"run {info.run_id} trained further after its test evaluation; run "
                            f"`taxolens evaluate {info.run_id}` first")
    runs.load_metrics(info.path, "test")          # RunError for a damaged one: a fresh clone would read it
    files = ck.get("files", {})
    name = runs.BEST_FILE if runs.BEST_FILE in files else runs.PROJECTOR_FILE
    state = unpacked_state(runs.load_tensors(runs.checkpoint_dir(info.path) / name, files.get(name)))
    dest = Path(paths.SHIPPED_CHECKPOINT if dest is None else dest)
    check_ship_dest(dest, info.path)
    packed = shipped_state(state)
    size = tensor_bytes(packed)
    if size > SHIPPED_MAX_BYTES and dest.resolve() == Path(paths.SHIPPED_CHECKPOINT).resolve():
        raise runs.RunError(f"run {info.run_id}'s projector takes {_over_the_limit(size)}; ship it elsewhere "
                            f"with `taxolens ship {info.run_id} --dest DIR`, or train a smaller projector "
                            f"(projector_hidden, projector_tokens, projector_topk)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    os.chmod(tmp, 0o755)                # mkdtemp's 0700 would keep the shipped folder from other users
    try:
        ck["files"] = {runs.BEST_FILE: runs.save_tensors(tmp / "checkpoint" / runs.BEST_FILE, packed,
                                                         runs.tensor_metadata(info.config))}
        ck.pop("optimizer_groups", None)
        ck["run_id"] = info.run_id
        ck["shipped"] = {"from": str(info.path), "dtype": "float16", "exported": runs.now_iso(),
                         "git_commit": runs.git_commit()}
        runs.write_json(tmp / "checkpoint" / "checkpoint.json", ck)
        runs.write_json(tmp / runs.CONFIG_JSON, info.config.to_dict())
        for rel in (runs.METRICS_JSON, runs.QUESTIONS_CSV, runs.RANKING_FILE):
            if (test / rel).is_file():
                (tmp / "eval" / "test").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(test / rel, tmp / "eval" / "test" / rel)
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
