"""`python -m bench.run_all` (`make bench`): evaluation and training speed on this machine.

Default: 8 test images of the default dataset (about 40 questions), 3 training steps of 16, and
8 runs' training steps taken together in one LM pass against one run at a time (train_many, `sweep
run`), and Predict (upload -> chain) on 4 test images with the shipped checkpoint, cold and warm,
with the bf16 alternative beside it on a CPU; a few minutes on 2 CPU cores. --images / --train-steps
/ --batch-size / --sweep-runs / --predict-images for more (0 skips the sweep or Predict part).
--json PATH also writes the numbers (and the printed text) as JSON.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from bench import bench_eval, bench_predict, bench_sweep, bench_train
from bench.common import setup
from core import paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=8, help="test images whose questions are scored")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sweep-runs", type=int, default=8,
                    help="runs trained together against one at a time (train_many; 0: skip)")
    ap.add_argument("--predict-images", type=int, default=4, help="test images through Predict (0: skip)")
    ap.add_argument("--predict-run", type=Path, default=paths.SHIPPED_CHECKPOINT,
                    help="the trained run Predict uses (default: the shipped checkpoint)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    cfg, data, vlm, items, questions, device = setup(args.images, args.device)
    ev = bench_eval.run(vlm, data, items, questions, device)
    tr = bench_train.run(vlm, data, device, batch_size=args.batch_size, steps=args.train_steps)
    where = (torch.cuda.get_device_name() if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    text = "\n".join([
        f"machine: {device.type} ({where}), torch {torch.__version__}; {cfg.encoder} + {cfg.lm}",
        f"evaluation, {ev['questions']} questions on {ev['images']} images:",
        f"  taxolens scoring   {ev['ours_q_per_s']:8.2f} questions/s  ({ev['ours_seconds']:.1f} s)",
        f"  straightforward    {ev['naive_q_per_s']:8.2f} questions/s  ({ev['naive_seconds']:.1f} s)",
        f"  ratio              {ev['speedup']:8.1f}x   (same answers: {ev['same_answers']:.0%}, "
        f"max |dP(yes)| {ev['max_abs_diff_p_yes']:.1e})",
        f"training, batch {tr['batch_size']} (whole images, {tr['images_per_batch']:.1f} per batch), "
        f"median of {tr['steps']} steps:",
        *[f"  {label:<18} {t['examples_per_s']:8.2f} examples/s ({t['seconds_per_step']:.2f} s/step, "
          f"{t['flops_per_example'] / 1e9:.2f} GFLOP/example, {t['achieved_flops'] / 1e9:.1f} GFLOP/s = "
          f"{t['fraction_of_peak']:.0%} of peak)"
          for label, t in (("shared prefix", tr["shared_prefix"]), ("repeated image", tr["repeated_image"]))],
        f"  ratio              {tr['speedup']:8.2f}x examples/s, {tr['flops_ratio']:.2f}x fewer FLOPs per example",
        f"  matmul peak        {tr['matmul_peak_flops'] / 1e9:8.1f} GFLOP/s (torch.mm, fp32)",
    ])
    if "shared_prefix_bf16" in tr:
        t = tr["shared_prefix_bf16"]
        text += "\n" + "\n".join([
            f"  LM held in bf16    {t['examples_per_s']:8.2f} examples/s ({t['seconds_per_step']:.2f} s/step, "
            f"{t['achieved_flops'] / 1e9:.1f} GFLOP/s = {t['fraction_of_peak']:.0%} of the bf16 peak)",
            f"  bf16 / fp32        {tr['bf16_speedup']:8.2f}x examples/s (shared prefix both; "
            f"TrainConfig.precision=auto trains in bf16 here)",
            f"  bf16 matmul peak   {tr['bf16_matmul_peak_flops'] / 1e9:8.1f} GFLOP/s (torch.mm, bf16)"])
    sw = None
    if args.sweep_runs:
        sw = bench_sweep.run(vlm, data, device, runs=args.sweep_runs, batch_size=args.batch_size,
                             steps=args.train_steps)
        text += "\n" + "\n".join(bench_sweep.lines(sw))
    pr = None
    if args.predict_images:
        del vlm                                   # Predict loads its own copy of the models
        pr = bench_predict.run(args.predict_run, args.predict_images, str(device))
        text += "\n" + "\n".join(bench_predict.lines(pr))
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"eval": ev, "train": tr, "sweep": sw, "predict": pr, "device": str(device), "where": where,
                                         "text": text}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
