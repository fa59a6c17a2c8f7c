"""The paper's headline comparison on one machine, written up as markdown.

Seen vs unseen hypernym F1 after training with random ablation r (condition random:r) for each r
given, the random-init LM control (a normal run with lm_init="random"), and the majority baseline
on the same data and splits; plus training time per epoch. (The report of record across every run on
disk, with the paper's per-category macro-F1 and t-CIs over seeds, is `taxolens results report`;
what the LM alone knows is `taxolens probe-lm`.)

    python -m bench.paper_run --max-concepts 40 --images-per-concept 5 --epochs 2 \\
        --out docs/results-cpu.md [--bench-json artifacts/bench.json]

Runs are ordinary runs under data/runs (they show up in the app); baselines under
data/runs/baselines. Every number in the report is read from their metrics files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import torch

from core import rundata, runs, train
from core.models import checkpoint
from core.config import TrainConfig
from core.evaluate import baseline, evaluate


def _fmt(x, digits=3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def run_setting(cfg: TrainConfig, log) -> dict:
    t0 = time.perf_counter()
    run_dir = train.train(cfg)
    m = evaluate(run_dir, "test")
    ck = runs.load_run(run_dir).checkpoint
    epochs = ck["metrics"]
    out = {"run_id": run_dir.name, "condition": cfg.condition, "lm_init": cfg.lm_init, "metrics": m,
           "train_seconds_per_epoch": sum(e["train_seconds"] for e in epochs) / len(epochs),
           "val_seconds_per_epoch": sum(e["val_seconds"] for e in epochs) / len(epochs),
           "examples_per_s": sum(e["examples_per_s"] for e in epochs) / len(epochs),
           "train_loss": [e["train_loss"] for e in epochs], "questions": ck["questions"],
           "wall_seconds": time.perf_counter() - t0}
    log(f"{cfg.condition} {cfg.lm_init}: seen {_fmt(m['hypernym']['seen']['f1'])} unseen "
        f"{_fmt(m['hypernym']['unseen']['f1'])} ({out['wall_seconds']:.0f} s)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="concepts")
    ap.add_argument("--max-concepts", type=int, default=None)
    ap.add_argument("--images-per-concept", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--ratios", default="0,0.5,1", help="ablation ratios r, comma-separated")
    ap.add_argument("--random-lm-ratio", type=float, default=0.5,
                    help="r of the random-init LM control run (negative: skip it)")
    ap.add_argument("--out", type=Path, required=True, help="markdown report to write")
    ap.add_argument("--bench-json", type=Path, default=None, help="bench.run_all --json output to include")
    ap.add_argument("--title", default="TaxoLens results")
    args = ap.parse_args(argv)

    def cfg_for(r: float, lm_init: str = "pretrained") -> TrainConfig:
        return rundata.check(TrainConfig(dataset=args.dataset, condition=f"random:{r:g}", lm_init=lm_init, seed=args.seed,
                           epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           max_concepts=args.max_concepts, images_per_concept=args.images_per_concept,
                           device=args.device))

    ratios = [float(r) for r in args.ratios.split(",")]
    plan = [cfg_for(r) for r in ratios]
    if args.random_lm_ratio >= 0:
        plan.append(cfg_for(args.random_lm_ratio, "random"))
    log = lambda msg: print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)
    data = rundata.prepare(plan[0])
    log(f"dataset {data.dataset.summary()['concepts']} concepts, {len(data.dataset.images)} images; "
        f"{len(plan)} runs of {args.epochs} epoch(s)")

    started = time.perf_counter()
    bench = json.loads(args.bench_json.read_text()) if args.bench_json else None
    results, baselines = [], {}

    def write() -> None:   # after every step, so a cut-short session still leaves what it measured
        runs.write_text(args.out, render(args, data, results, baselines, time.perf_counter() - started, bench))

    for cfg in plan:
        results.append(run_setting(cfg, log))
        write()
    for r, cfg in zip(ratios, plan):
        for kind in ("majority",):
            baselines[(kind, r)] = baseline(kind, cfg)
            log(f"baseline {kind} r={r:g}: unseen {_fmt(baselines[(kind, r)]['hypernym']['unseen']['f1'])}")
        write()
    log(f"wrote {args.out}")
    return 0


def render(args, data, results, baselines, total, bench) -> str:
    s = data.dataset.summary()
    q = {s: len(v) for s, v in data.questions.items()}
    lines = [
        f"# {args.title}", "",
        f"Generated by `python -m bench.paper_run` on {dt.datetime.now():%Y-%m-%d %H:%M} "
        f"(git {runs.git_commit()[:10]}); every number below is read from the runs' metrics files.", "",
        "## Setup", "",
        f"- Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {checkpoint.resolve_device(args.device)}"
        + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() and args.device != "cpu" else ""),
        f"- Dataset `{args.dataset}`: {s['concepts']} concepts, {s['categories']} categories, {s['images']} images"
        f" (max_concepts={args.max_concepts}, images_per_concept={args.images_per_concept}, seed {args.seed}); "
        f"questions train/val/test = {q['train']}/{q['val']}/{q['test']}",
        f"- Models: {TrainConfig().encoder} + {TrainConfig().lm}, projector {TrainConfig().projector}, "
        f"{TrainConfig().image_tokens} image tokens; {args.epochs} epoch(s), batch {args.batch_size}, lr {args.lr:g}",
        f"- Wall time for everything: {total / 60:.1f} min", "",
        "## Hypernym F1 on seen vs unseen (concept, category) pairs (test split)", "",
        "| setting | seen F1 | unseen F1 | seen acc | unseen acc | seen / unseen macro-F1 (yes+no) | "
        "says yes | leaf acc | undecided | train s/epoch | train ex/s | run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, m: dict, extra: str) -> str:
        h = m["hypernym"]
        se, un = h["seen"], h["unseen"]
        return (f"| {name} | {_fmt(se['f1'])} | {_fmt(un['f1'])} | {_fmt(se['accuracy'])} | "
                f"{_fmt(un['accuracy'])} | {_fmt(se['macro_f1_yes_no'])} / {_fmt(un['macro_f1_yes_no'])} | "
                f"{_fmt(h['yes_rate'], 2)} | {_fmt(m['leaf']['accuracy'])} | {_fmt(m['undecided_rate'], 2)} | {extra} |")

    for r in results:
        name = f"r = {r['condition'].split(':')[1]}" + (" · random-init LM" if r["lm_init"] == "random" else "")
        lines.append(row(name, r["metrics"], f"{r['train_seconds_per_epoch']:.0f} | "
                                              f"{r['examples_per_s']:.2f} | `{r['run_id']}`"))
    for (kind, ratio), m in baselines.items():
        label = {"majority": "majority"}[kind]
        lines.append(row(f"{label}, r = {ratio:g} split", m, "– | – | –"))
    lines += ["", "Seen/unseen: a (concept, category) pair is unseen when the condition removed its hypernym "
              "questions (yes and no sides) from training. At r = 0 nothing is unseen (–); at r = 1 nothing "
              "is seen. The baseline is evaluated on the same test questions, split by the same pairs. "
              "F1 is the yes-class F1 of the hypernym questions; 'says yes' is the share of hypernym "
              "questions answered yes (yes-class F1 rises with it: always-yes scores 0.67 on these balanced "
              "questions), so accuracy and the yes/no macro-F1 are the fairer comparison. "
              "Undecided = share of questions with P(' Yes') + P(' No') < 0.5.", "",
              "Train loss per epoch: " + "; ".join(
                  f"{r['condition']}{' random-LM' if r['lm_init'] == 'random' else ''}: "
                  + ", ".join(_fmt(x) for x in r["train_loss"]) for r in results), ""]
    if bench:
        lines += ["## Benchmarks (`python -m bench.run_all`)", "", "```", bench.get("text", "").rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
