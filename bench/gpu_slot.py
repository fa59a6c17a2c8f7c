"""One borrowed GPU slot, end to end, inside a fixed number of minutes:

    python -m bench.gpu_slot run --parts A B --data /tmp/tl --out $OUT --minutes 7   # on the GPU machine
    python -m bench.gpu_slot unpack DIR                                                # here, afterwards

`run` installs the bundle (bench.gpu_bundle) into --data and then, in this order, each stage only
when the time it is projected to take (from the calibration) fits before the deadline:
  1. calibration and benchmark: the bf16 matmul peak; one default run's training step (bench_train);
     3 and 14 runs stepped together against one at a time (bench_sweep);
  2. the default recipe (TrainConfig(seed)) for seeds 0, 1, 2, trained together, then their leaf
     stages (TrainConfig(seed).leaf_stage(first)) together; each evaluated on the test split, the
     leaf stages also ranked over every leaf (40 test images, as `taxolens ship` records);
  3. the paper grid (`sweep run paper --scale full`'s training runs) seed by seed: the pretrained-LM
     runs of a seed together, then its random-init-LM runs; each evaluated on the test split.
Training stops at the deadline with every run saved where it stood. Then everything finished is
packed into --out: each run's config, log, checkpoint.json, evaluation and best projector (fp16,
as a shipped checkpoint stores it: the checkpoint.json records the new file's sha256 and says so),
as gzipped tar parts of at most 14 MB (weights up to 50 MB in all), plus summary.json with every timing and the benchmark. `unpack`
puts the runs under data/runs here, where the app, `taxolens runs` and `results report` see them.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import shutil
import signal
import sys
import tarfile
import time
import traceback
from pathlib import Path

PART_BYTES = 14_000_000       # the trip back takes 8 files of 16 MiB, 64 MiB in all
MAX_BYTES = 50_000_000        # weights stop travelling past this (configs, logs and evaluations still do)
SEEDS = (0, 1, 2)
# Projections (seconds) that decide whether a stage starts; its training stops at the deadline anyway.
MERGE_MARGIN = 0.8            # the grid joins the first stage only when it fits with 20 % to spare
RANKING_FACTOR = 1.6          # the leaf stage ranks each image against 4 more leaves: larger batches
EVAL_S = 6.0                  # a run's test evaluation (3,122 questions), seconds
RANKING_S = 20.0              # every leaf of 40 images (15,400 questions), seconds
RESERVE_S = 40.0              # what a stage leaves for the evaluations after it
PACK_S = 30.0                 # packing the runs into --out


class Clock:
    def __init__(self, minutes: float):
        self.start = time.perf_counter()
        self.deadline = self.start + 60 * minutes
        self.stages: dict[str, float] = {}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def stop(self) -> bool:
        return self.left() <= 0

    def timed(self, name: str, fn):
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.stages[name] = round(time.perf_counter() - t, 1)
            _say(f"{name}: {self.stages[name]} s, {self.left():.0f} s left")


def _say(message: str) -> None:
    print(f"[gpu_slot {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _calibrate(summary: dict, sizes: tuple[int, int], steps: int, val_cfg) -> tuple[dict, float]:
    """Seconds per update of 1 run and of `sizes` runs stepped together (batch 16, the LM in bf16
    where that is native), and of validating a run of val_cfg."""
    import torch
    from bench import bench_sweep, bench_train
    from bench.common import matmul_peak, setup

    cfg, data, vlm, _, _, device = setup(1)
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__,
           "bf16_matmul_peak_flops": matmul_peak(device, dtype=torch.bfloat16)}
    out["train"] = bench_train.run(vlm, data, device, steps=steps)  # leaves the LM in bf16 where native
    for n in sizes:
        out[f"sweep_{n}"] = bench_sweep.run(vlm, data, device, runs=n, steps=steps)
    out["validation_s"] = _time_validation(val_cfg, vlm, device)
    del vlm
    torch.cuda.empty_cache() if device.type == "cuda" else None
    summary["bench"] = out
    per_update = {1: out["train"].get("shared_prefix_bf16", out["train"]["shared_prefix"])["seconds_per_step"]}
    for n in sizes:
        per_update[n] = out[f"sweep_{n}"]["together"]["seconds_per_update_of_all_runs"]
    return per_update, out["validation_s"]


def _time_validation(cfg, vlm, device) -> float:
    """Seconds of one run's validation (every val question, the LM as training holds it). Runs
    validate one after the other at each epoch's end, so this is paid runs x epochs times."""
    from bench.common import timed
    from core import features, rundata, scoring
    data = rundata.prepare(cfg)
    items = data.images("val")
    feats, row_of = features.image_features(vlm, items)
    vlm.projector.eval()
    return timed(lambda: scoring.score(vlm, feats, row_of, data.questions["val"], data.deprivation,
                                       split="val"), device)[1]


def _per_update(cal: dict, n: int) -> float:
    """Seconds per joint update of n runs: linear through the two nearest calibrated sizes."""
    sizes = sorted(cal)
    lo, hi = (sizes[1], sizes[2]) if n >= sizes[1] else (sizes[0], sizes[1])
    return max(cal[lo] + (cal[hi] - cal[lo]) * (n - lo) / (hi - lo), cal[sizes[0]])


def _updates(cfg) -> int:
    """A full-size run's planned updates (the unablated set: an upper bound for ablated runs)."""
    from core import rundata, train
    data = rundata.prepare(cfg)
    per_epoch = len(train.epoch_batches(data.training_questions(0), cfg.batch_size, cfg.seed, 0))
    return per_epoch * cfg.epochs


def _train(clock: Clock, name: str, cfgs: list, projected: float, summary: dict) -> list:
    """Train cfgs together if their projected seconds fit; their run directories (finished or not)."""
    from core import runs, train
    plan = {"runs": len(cfgs), "projected_s": round(projected), "left_s": round(clock.left())}
    summary["stages"].append({"stage": name, **plan})
    if projected > clock.left():
        _say(f"{name}: skipped, projected {projected:.0f} s > {clock.left():.0f} s left")
        summary["stages"][-1]["skipped"] = True
        return []
    _say(f"{name}: {len(cfgs)} runs, projected {projected:.0f} s")
    dirs = [runs.create_run_dir(c) for c in cfgs]
    summary["stages"][-1]["run_dirs"] = [d.name for d in dirs]
    try:
        clock.timed(name, lambda: train.train_many(cfgs, dirs, should_stop=clock.stop))
    except train.Cancelled:          # every run saved where it stood; those that finished go on
        _say(f"{name}: stopped at the deadline")
        summary["stages"][-1]["stopped_at_deadline"] = True
    summary["stages"][-1]["seconds"] = clock.stages[name]
    return [d for d in dirs if runs.is_finished(d)]


def _evaluate(clock: Clock, name: str, dirs: list, ranking: bool, summary: dict) -> None:
    from core import train
    from core.config import TrainConfig
    from core.evaluate import evaluate, leaf_ranking
    from core.models import checkpoint
    done, shared = [], {}
    if not dirs:
        return

    def work():
        for d in dirs:
            if clock.left() < 15:
                break
            try:
                cfg = TrainConfig.from_stored(json.loads((Path(d) / "config.json").read_text()))
                key = train.share_key(cfg)
                if key not in shared:        # one fp32 copy of the frozen models per group, as sweep run does
                    shared.clear()
                    shared[key] = checkpoint.build_vlm(cfg, checkpoint.resolve_device(cfg.device))
                m = evaluate(d, "test", frozen_from=shared[key])
                row = {"run": Path(d).name, "leaf_accuracy": m["leaf"]["accuracy"],
                       "concept_macro_f1": m["leaf"].get("concept_macro_f1"),
                       "hypernym_accuracy": m["hypernym"]["accuracy"],
                       "category_macro_f1": m["hypernym"].get("category_macro_f1")}
                if ranking and clock.left() > 30:
                    r = leaf_ranking(d, "test", images=40, frozen_from=shared[key])
                    row.update({k: r[k] for k in ("top1", "top5", "median_rank") if k in r})
            except Exception as exc:         # one run's failure does not end the slot
                summary["errors"].append(f"{name}, {Path(d).name}: {exc!r}")
                _say(f"{Path(d).name}: {exc!r}")
                continue
            done.append(row)
            _say(f"evaluated {row}")
    clock.timed(name, work)
    summary["evaluations"] += done


def run(parts: list[Path], data: Path, out: Path, minutes: float, tiny: bool = False) -> dict:
    clock = Clock(minutes - PACK_S / 60)         # packing and the trip back come after the deadline
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"stages": [], "evaluations": [], "errors": [], "minutes": minutes}
    # a timeout's SIGTERM becomes SystemExit, so what finished is still packed below
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"SIGTERM at {clock.left():.0f} s left"))
    try:
        _run_stages(clock, parts, data, summary, tiny)
    except BaseException as exc:          # whatever happened, what finished still comes back
        summary["errors"].append("".join(traceback.format_exception(exc))[-4000:])
        _say(f"error: {exc!r}")
    summary["clock"] = clock.stages
    try:
        summary["packed"] = _pack(data / "runs", out)
    except BaseException as exc:
        summary["errors"].append("".join(traceback.format_exception(exc))[-4000:])
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _run_stages(clock: Clock, parts: list[Path], data: Path, summary: dict, tiny: bool) -> None:
    from bench import gpu_bundle
    os.environ["TAXOLENS_DATA"] = str(data)
    summary["install"] = clock.timed("install", lambda: gpu_bundle.install(parts, data))
    gpu_bundle.activate(parts)
    from core.config import LEAF_STAGE, TrainConfig
    from core.jobs import sweeps

    # --tiny (a CPU check of this script): the same stages on a 40-concept subset, 3 updates a run
    small = dict(max_concepts=40, images_per_concept=3, epochs=1, max_steps=3) if tiny else {}
    defaults = [dataclasses.replace(TrainConfig(seed=s), **small) for s in SEEDS]
    cal, val_s = clock.timed("calibrate", lambda: _calibrate(summary, (2, 3) if tiny else (3, 14), 1 if tiny else 5,
                                                             defaults[0]))
    summary["per_update_s"], summary["validation_s"] = cal, val_s
    updates = _updates(defaults[0])
    summary["updates_per_run"] = updates
    planned = sweeps.normalize(sweeps.resolve("paper", "full"))
    grid = [dataclasses.replace(TrainConfig.from_dict(j["spec"]["config"]), **small)
            for j in planned["jobs"] if j["kind"] == "train"]
    # the grid's groups in the order they are worth most: seed by seed, pretrained LM first
    groups = [(f"grid seed {s} {init}", [c for c in grid if c.seed == s and c.lm_init == init])
              for s in SEEDS for init in ("pretrained", "random")]

    def cost(n: int, epochs: int = defaults[0].epochs, batch_factor: float = 1.0) -> float:
        """Training updates, each run's validation at each epoch's end, and each run's test evaluation."""
        share = epochs / defaults[0].epochs
        return updates * share * _per_update(cal, n) * batch_factor + n * epochs * val_s + n * EVAL_S

    leaf_cost = cost(3, LEAF_STAGE["epochs"], RANKING_FACTOR) + 3 * RANKING_S
    first = defaults
    if cost(3 + len(groups[0][1])) + leaf_cost < (clock.left() - RESERVE_S) * MERGE_MARGIN:
        first = defaults + groups.pop(0)[1]      # the grid's first group trains in the same LM passes
    stages = [("default recipe, first stage", lambda: first, cost(len(first)), False)]
    first_done: list = []                # (default config, its finished first-stage run directory)

    def leaf_cfgs():
        return [c.leaf_stage(d.name) for c, d in first_done]

    stages.append(("default recipe, leaf stage", leaf_cfgs, leaf_cost, True))
    stages += [(name, (lambda cfgs=cfgs: cfgs), cost(len(cfgs)), False) for name, cfgs in groups]
    for name, make, projected, ranking in stages:
        try:
            cfgs = make()
            if not cfgs or clock.left() <= RESERVE_S:
                continue
            dirs = _train(clock, name, cfgs, projected, summary)
            if name.endswith("first stage"):     # the defaults' directories are the first ones made
                made = summary["stages"][-1].get("run_dirs", [])[:len(defaults)]
                first_done[:] = [(c, d) for c, n in zip(defaults, made) for d in dirs if d.name == n]
            _evaluate(clock, f"evaluate {name}", dirs, ranking, summary)
        except Exception:                # one stage's failure does not end the slot
            summary["errors"].append(f"{name}: " + traceback.format_exc()[-3000:])
            _say(f"{name} failed: {traceback.format_exc()[-500:]}")



def _pack(runs_root: Path, out: Path) -> dict:
    """Every run (leaf stages first, then the default recipe, then the grid) as tar parts in out:
    config, log, evaluations and checkpoint.json, and while MAX_BYTES allows, the best projector in
    fp16 (finished runs, and runs the deadline stopped after a best epoch: they stay "cancelled")."""
    import hashlib

    import torch
    from core import runs

    def rank(d: Path):
        cfg = json.loads((d / runs.CONFIG_JSON).read_text())
        return (cfg.get("init_from") is None, cfg.get("condition") != "none", d.name)

    dirs = sorted((d for d in runs_root.iterdir() if (d / runs.CONFIG_JSON).is_file()), key=rank) \
        if runs_root.is_dir() else []
    buf = io.BytesIO()
    packed, light = [], []
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for d in dirs:
            for rel in (runs.CONFIG_JSON, "log"):
                if (d / rel).is_file():
                    tar.add(d / rel, f"runs/{d.name}/{rel}")
            if (d / "eval").is_dir():
                tar.add(d / "eval", f"runs/{d.name}/eval")
            ck_path = runs.checkpoint_json(d)
            if not ck_path.is_file():
                light.append(d.name)
                continue
            ck = runs.read_json(ck_path)
            ck.pop("optimizer_groups", None)
            weights = runs.BEST_FILE in ck.get("files", {}) and buf.tell() < MAX_BYTES - 3_000_000
            if weights:
                state = runs.load_tensors(runs.checkpoint_dir(d) / runs.BEST_FILE, ck["files"][runs.BEST_FILE])
                cfg = json.loads((d / runs.CONFIG_JSON).read_text())
                data = _safetensors_bytes({k: v.to(torch.float16) for k, v in state.items()}, cfg)
                ck["files"] = {runs.BEST_FILE: hashlib.sha256(data).hexdigest()}
                ck["transport"] = {"best": "float16 for the trip back from the GPU machine (as shipped checkpoints "
                                           "are); its metrics were computed there, from the fp32 projector under "
                                           "bf16 autocast",
                                   "dropped": "projector.safetensors and train_state.safetensors (resume state)"}
                _add_bytes(tar, f"runs/{d.name}/checkpoint/{runs.BEST_FILE}", data)
                packed.append(d.name)
            else:
                ck["files"] = {}
                ck["transport"] = {"weights": "not carried back from the GPU machine (the trip's size limit): "
                                              "its config, log, checkpoint record and evaluations only"}
                light.append(d.name)
            _add_bytes(tar, f"runs/{d.name}/checkpoint/checkpoint.json", json.dumps(ck, indent=1).encode())
    data = buf.getvalue()
    names = []
    for i in range(0, len(data), PART_BYTES):
        name = f"runs.tgz.part{i // PART_BYTES}"
        (out / name).write_bytes(data[i:i + PART_BYTES])
        names.append(name)
    return {"runs_with_weights": packed, "runs_without": light, "parts": names, "bytes": len(data)}


def _safetensors_bytes(tensors: dict, cfg: dict) -> bytes:
    from safetensors.torch import save
    from core import runs
    from core.config import TrainConfig
    return save({k: v.contiguous() for k, v in tensors.items()},
                metadata=runs.tensor_metadata(TrainConfig.from_stored(cfg)))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


def unpack(folder: Path) -> dict:
    """The runs of a slot's tar parts (in `folder`) into data/runs; a run already here is left alone."""
    from core import paths
    parts = sorted(folder.glob("runs.tgz.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if not parts:
        raise SystemExit(f"no runs.tgz.part* in {folder}")
    data = b"".join(p.read_bytes() for p in parts)
    root = paths.runs_dir()
    added, kept = [], []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = sorted({m.name.split("/")[1] for m in members if m.name.startswith("runs/")})
        for name in names:
            (kept if (root / name).exists() else added).append(name)
        chosen = [m for m in members if m.name.split("/")[1] in added]
        tar.extractall(root.parent, members=chosen, filter="data")
    return {"added": added, "already_here": kept}


def _refuse_imports(names: set[str]) -> None:
    import importlib.abc

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in names:
                raise ImportError(f"{name} is not installed on the GPU machine (--without)")
    if names:
        sys.meta_path.insert(0, Refuse())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--parts", type=Path, nargs="+", required=True)
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--minutes", type=float, default=7.0)
    r.add_argument("--tiny", action="store_true", help="a CPU check: 40 concepts, 3 updates a run")
    r.add_argument("--without", default="", metavar="PKG,PKG",
                   help="refuse to import these top-level packages (a CPU check as the GPU machine would run it)")
    u = sub.add_parser("unpack")
    u.add_argument("dir", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "run":
        _refuse_imports({p.strip() for p in args.without.split(",") if p.strip()})
        summary = run(args.parts, args.data, args.out, args.minutes, args.tiny)
        json.dump({k: summary.get(k) for k in ("clock", "evaluations", "errors", "packed")}, sys.stdout, default=str)
    else:
        json.dump(unpack(args.dir), sys.stdout)
    print()


if __name__ == "__main__":
    main()
