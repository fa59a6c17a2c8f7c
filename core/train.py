"""Training the projector on yes/no questions, with checkpoints that resume where they stopped.

    train(cfg) -> run_dir

One run: load the dataset (optionally a seeded subset), split its images within each concept,
apply the deprivation condition, and train the projector (the only trainable part; encoder and LM
stay frozen) on the answer token of the TRAIN questions that the condition keeps, with the paper's
recipe (TrainConfig: AdamW, 3 % warmup then cosine decay over the planned updates, gradient
clipping). Image features come from the on-disk FeatureCache, so the encoder runs once per image
ever. After each epoch the VAL questions are scored (leaf and hypernym accuracy go to the log and
the progress line, so a run that is not learning shows it while it runs), projector + optimizer +
RNG state are written (safetensors and JSON only, never pickles), and the best epoch so far (by
accuracy on the VAL questions the condition keeps) is kept apart; training stops early after
`patience` epochs without improvement. `train(cfg, run_dir=same)` resumes from the last save,
also from the middle of an epoch when the run was cancelled there.

TrainConfig.precision may hold the frozen LM in bf16 while training (auto: on CUDA and on CPUs with
AMX / AVX512-BF16); the checkpoint records which ("precision"), and evaluation scores in fp32.
TrainConfig.dropout and grid_crop regularise the projector (input dropout; a random window of the
cached encoder grid per image and step). fresh_negatives asks a new draw of the random "no" leaf
questions every epoch; rank_negatives adds a listwise term per image in a batch (its own leaf
question ranked against N random ones, drawn from (seed, image, epoch, step) so a resumed run
draws the same).

The data comes from core.rundata.prepare and the model from core.models.checkpoint, which
evaluation and prediction use too, so all three see exactly the same data and model.
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from core import features, metrics, questions, rundata, runs, scoring
from core.models import checkpoint
from core.models.encoders import crop_grid
from core.base import ConfigError, Progress
from core.config import TrainConfig


class Cancelled(Exception):
    """should_stop() said stop; the state up to the last step is saved and the run can resume."""

    def __init__(self, run_dir: Path, epoch: int, step: int):
        super().__init__(f"training cancelled at epoch {epoch + 1}, step {step}; "
                         f"resume with train(cfg, run_dir={str(run_dir)!r})")
        self.run_dir, self.epoch, self.step = run_dir, epoch, step


# ---------------------------------------------------------------- checkpoint state

def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------- training

def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning rate of update `step` (0-based) of `total`: linear warmup over the first
    `cfg.warmup` share, then cosine decay to 0 (the paper's schedule)."""
    warm = max(1, round(cfg.warmup * total)) if cfg.warmup > 0 else 0
    if step < warm:
        return cfg.lr * (step + 1) / warm
    span = max(1, total - warm)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step - warm, span) / span))


def epoch_batches(questions: list, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Question indices of each update of one epoch. Images come in an order drawn from (seed,
    epoch) and each image's questions stay together, so a batch holds few distinct images and
    their prompt prefixes run once (VLM.loss shares them). Cut into exact batch_size chunks, so
    the number of updates per epoch is ceil(n / batch_size) and an interrupted epoch replays."""
    by_image: dict[str, list[int]] = {}
    for i, q in enumerate(questions):
        by_image.setdefault(q.image_id, []).append(i)
    images = sorted(by_image)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    flat = [i for j in order.tolist() for i in by_image[images[j]]]
    return [flat[k:k + batch_size] for k in range(0, len(flat), batch_size)]


def selection_score(val: dict) -> float | None:
    """What early stopping maximises: accuracy on the VAL questions the condition keeps (leaf
    questions and seen hypernym pairs), never on unseen pairs, which are what the study tests."""
    leaf, seen = val["leaf"], val["hypernym"]["seen"]
    n = (leaf["n"] or 0) + (seen["n"] or 0)
    if not n:
        return None
    return ((leaf["accuracy"] or 0) * leaf["n"] + (seen["accuracy"] or 0) * seen["n"]) / n


def train(cfg: TrainConfig, run_dir: Path | None = None, progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None) -> Path:
    """Train (or resume) a run; returns its directory. See the module docstring."""
    rundata.check(cfg)
    run_dir = _open_run_dir(cfg, run_dir)
    ck_path = runs.checkpoint_json(run_dir)
    ck = runs.read_json(ck_path) if ck_path.is_file() else None
    if ck and ck.get("status") == "finished":
        return run_dir
    if ck and ck.get("format") != checkpoint.CHECKPOINT_FORMAT:
        raise runs.RunError(f"{run_dir} holds a checkpoint of an older TaxoLens format; start a new run")

    data = rundata.prepare(cfg)
    if ck and ck.get("dataset", {}).get("table_sha256") != data.table_sha256:
        raise runs.RunError(f"dataset '{cfg.dataset}' changed since run {run_dir.name} started; "
                            f"start a new run instead of resuming")
    device = checkpoint.resolve_device(cfg.device)
    vlm = checkpoint.build_vlm(cfg, device)
    precision = checkpoint.resolve_precision(cfg.precision, device)
    params = [p for p in vlm.projector.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the projector has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    train_q, val_q = data.training_questions(), data.questions["val"]
    steps_per_epoch = math.ceil(len(train_q) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    report = progress or (lambda f, m: None)

    report(0.0, "encoding images")
    train_feats, train_row = features.image_features(vlm, data.images("train"), whole_grid=bool(cfg.grid_crop))
    if cfg.grid_crop:
        try:    # crop_grid's own check, before the first step rather than at it
            crop_grid(train_feats[:1], cfg.grid_crop)
        except ValueError as exc:
            raise ConfigError(f"grid_crop does not fit encoder {cfg.encoder}: {exc}") from None
    val_feats, val_row = features.image_features(vlm, data.images("val"))
    train_item = {im.id: im for im in data.images("train")}

    now = runs.now_iso()
    state = {
        "format": checkpoint.CHECKPOINT_FORMAT, "status": "partial", "epoch": 0, "step": 0,
        "partial_loss": [0.0, 0], "partial_seconds": 0.0, "epochs": cfg.epochs,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
        "encoder": cfg.encoder, "lm": cfg.lm, "lm_init": cfg.lm_init, "prompt": cfg.prompt,
        "dataset": {"name": cfg.dataset, "table_sha256": data.table_sha256,
                    "summary": _jsonable(data.dataset.summary())},
        "condition": {"spec": cfg.condition, "report": _jsonable(data.deprivation.report)},
        "seed": cfg.seed, "config": cfg.to_dict(), "git_commit": runs.git_commit(),
        "questions": {**{s: len(q) for s, q in data.questions.items()}, "train_kept": len(train_q)},
        "frozen_checksum": checkpoint.frozen_checksum(vlm), "metrics": [], "best": None,
        "stopped": None, "created": now, "updated": now, "finished": None, "device": str(device),
        "precision": precision,
    }
    if ck:
        state.update({k: ck[k] for k in ("epoch", "step", "partial_loss", "partial_seconds", "metrics",
                                         "created", "git_commit", "best") if k in ck})
        state["resumed"] = ck.get("resumed", []) + [{"at": now, "epoch": ck["epoch"], "step": ck["step"],
                                                      "git_commit": runs.git_commit()}]
        ckdir = runs.checkpoint_dir(run_dir)
        checkpoint.load_projector(vlm, runs.load_tensors(ckdir / runs.PROJECTOR_FILE,
                                                         ck["files"][runs.PROJECTOR_FILE]), run_dir)
        extra = runs.load_tensors(ckdir / runs.TRAIN_STATE_FILE, ck["files"][runs.TRAIN_STATE_FILE])
        _restore_optimizer(opt, extra, ck["optimizer_groups"])   # load_state_dict moves moments to the params' device
        torch.set_rng_state(extra["rng.torch"])
        if device.type == "cuda" and "rng.cuda" in extra:
            torch.cuda.set_rng_state(extra["rng.cuda"])
        checkpoint.check_frozen_checksum(vlm, ck.get("frozen_checksum"), run_dir)
        runs.append_log(run_dir, f"resuming at epoch {state['epoch'] + 1}, step {state['step']}")
    else:
        runs.append_log(run_dir, f"training {cfg.to_dict()} on {device}; questions "
                                 f"{state['questions']}; {total_steps} updates planned")
    if precision == "bf16":
        vlm.hold_lm_in_bf16()      # after the frozen checksum, which evaluation's fp32 LM must match

    meta = {"encoder": cfg.encoder, "lm": cfg.lm, "projector": cfg.projector,
            "image_tokens": str(cfg.image_tokens), "prompt": cfg.prompt}

    def save(status: str, best_now: bool = False) -> None:
        state["status"], state["updated"] = status, runs.now_iso()
        if status == "finished":
            state["finished"] = state["updated"]
        ckdir = runs.checkpoint_dir(run_dir)
        opt_tensors, groups = _optimizer_tensors(opt)
        opt_tensors["rng.torch"] = torch.get_rng_state()
        if device.type == "cuda":
            opt_tensors["rng.cuda"] = torch.cuda.get_rng_state()
        files = dict(ck.get("files", {}) if ck else {}, **state.get("files", {}))
        files[runs.PROJECTOR_FILE] = runs.save_tensors(ckdir / runs.PROJECTOR_FILE, vlm.projector_state(), meta)
        files[runs.TRAIN_STATE_FILE] = runs.save_tensors(ckdir / runs.TRAIN_STATE_FILE, opt_tensors)
        if best_now:
            files[runs.BEST_FILE] = runs.save_tensors(ckdir / runs.BEST_FILE, vlm.projector_state(), meta)
        state["files"] = files
        state["optimizer_groups"] = groups
        runs.write_json(runs.checkpoint_json(run_dir), state)   # last: it names the files above

    done = state["epoch"] * steps_per_epoch + state["step"]
    bar = tqdm(total=total_steps, initial=done, desc="train", unit="step", disable=progress is not None,
               leave=False)
    try:
        for epoch in range(state["epoch"], cfg.epochs):
            if done >= total_steps:
                break
            t0, seconds_before = time.perf_counter(), state["partial_seconds"]   # > 0 when resuming mid-epoch
            if cfg.fresh_negatives:
                train_q = data.training_questions(epoch)
            batches = epoch_batches(train_q, cfg.batch_size, cfg.seed, epoch)
            vlm.projector.train()
            for step in range(state["step"], steps_per_epoch):
                if done >= total_steps:
                    break
                if should_stop is not None and should_stop():
                    state["step"] = step
                    save("cancelled")
                    runs.append_log(run_dir, f"cancelled at epoch {epoch + 1}, step {step}")
                    raise Cancelled(run_dir, epoch, step)
                batch = batches[step]
                rows = [train_row[train_q[i].image_id] for i in batch]
                distinct = sorted(set(rows))
                slot = {r: j for j, r in enumerate(distinct)}
                feats = train_feats[distinct]
                if cfg.grid_crop:
                    feats = crop_grid(feats, cfg.grid_crop)
                feats = feats.to(device)
                owner = torch.tensor([slot[r] for r in rows])
                for group in opt.param_groups:
                    group["lr"] = lr_at(done, total_steps, cfg)
                ranked = []
                for image_id in dict.fromkeys(train_q[i].image_id for i in batch) if cfg.rank_negatives else ():
                    draw = random.Random(f"{cfg.seed}:{image_id}:rank:{epoch}:{step}")   # resumes draw the same
                    ranked.append((slot[train_row[image_id]], questions.ranked_leaf_texts(
                        data.dataset, train_item[image_id], data.deprivation.labeling, cfg.rank_negatives, draw)))
                loss = vlm.loss(feats, [train_q[i].text for i in batch], [train_q[i].answer for i in batch],
                                owner=owner, ranked=ranked)     # bf16 autocast inside on CUDA
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                loss_value = float(loss.detach())
                state["partial_loss"][0] += loss_value * len(batch)
                state["partial_loss"][1] += len(batch)
                state["step"] = step + 1
                state["partial_seconds"] = seconds_before + time.perf_counter() - t0
                done += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", epoch=epoch + 1)
                report(0.97 * done / total_steps,
                       f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps_per_epoch} loss {loss_value:.4f}")
            train_seconds = state["partial_seconds"]
            t_val = time.perf_counter()
            vlm.projector.eval()
            report(0.97 * done / total_steps, f"epoch {epoch + 1}: validating")
            val = metrics.summarize(scoring.score(vlm, val_feats, val_row, val_q, data.deprivation,
                                                  split="val")) if val_q else None
            loss_sum, n = state["partial_loss"]
            score = selection_score(val) if val else None
            best = state["best"]
            if score is None or best is None or best["score"] is None or score > best["score"]:
                # nothing to select on (no val questions): the latest epoch counts as the best
                best = state["best"] = {"epoch": epoch + 1, "score": score}
            entry = {"epoch": epoch + 1, "train_loss": _finite(loss_sum / max(n, 1)),
                     "updates": done, "lr": _finite(lr_at(max(done - 1, 0), total_steps, cfg)),
                     "val": _jsonable(metrics.headline(val)) if val else None,
                     "val_leaf_accuracy": _finite(val["leaf"]["accuracy"]) if val and val["leaf"]["n"] else None,
                     "val_hypernym_accuracy": _finite(val["hypernym"]["accuracy"]) if val and val["hypernym"]["n"] else None,
                     "val_selection": _finite(score) if score is not None else None,
                     "train_seconds": round(train_seconds, 2),
                     "val_seconds": round(time.perf_counter() - t_val, 2),
                     "examples_per_s": round(n / max(train_seconds, 1e-9), 3)}
            state["metrics"].append(entry)
            state.update(epoch=epoch + 1, step=0, partial_loss=[0.0, 0], partial_seconds=0.0)
            stale = epoch + 1 - best["epoch"]
            if done >= total_steps or epoch + 1 == cfg.epochs:
                state["stopped"] = "planned updates done"
            elif cfg.patience and stale >= cfg.patience:
                state["stopped"] = f"early: no validation improvement for {stale} epochs"
            save("finished" if state["stopped"] else "partial", best_now=best["epoch"] == epoch + 1)
            line = (f"epoch {epoch + 1}: loss {entry['train_loss']:.4f}, val leaf acc "
                    f"{_fmt(entry['val_leaf_accuracy'])}, hypernym acc {_fmt(entry['val_hypernym_accuracy'])}, "
                    f"best epoch {best['epoch']}")
            runs.append_log(run_dir, f"{line}; {entry}")
            report(0.97 * done / total_steps, line)
            if progress is None:
                tqdm.write(line)
            if state["stopped"]:
                runs.append_log(run_dir, f"stopped: {state['stopped']}")
                break
    finally:
        bar.close()
    report(1.0, "done")
    return run_dir


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _open_run_dir(cfg: TrainConfig, run_dir: Path | None) -> Path:
    """A new run dir, or `run_dir` (created, or checked to hold this same config)."""
    if run_dir is None:
        return runs.create_run_dir(cfg)
    run_dir = Path(run_dir)
    cfg_path = run_dir / runs.CONFIG_JSON
    if cfg_path.is_file():
        old = TrainConfig.from_stored(runs.read_json(cfg_path)).to_dict()
        diff = [f"{k}: {old[k]!r} -> {v!r}" for k, v in cfg.to_dict().items()
                if k != "device" and old.get(k) != v]
        if diff:
            raise ConfigError(f"{run_dir} holds a run with a different config ({'; '.join(diff)}); "
                              f"use a new run directory")
        return run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(cfg_path, cfg.to_dict())
    return run_dir


def _jsonable(obj):
    """Dataset summaries and condition reports as plain JSON (tuples/sets → sorted lists)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_jsonable(v) for v in obj)
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
