"""The study commands of `taxolens`: train, ship, evaluate (--leaf-ranking), baseline, probe-lm,
predict, coherence, clusters, lens, runs, results report and results figures (register(sub) adds
them to the parser)."""

import argparse
import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from core import paths
from core.base import ConfigError
from core.cli.common import (EXIT_INTERRUPTED, Parser, ProgressBar, StopFlag, add_train_options, check_output,
                             config_from, emit, headline, one_line, output_path)
from core.config import BASELINES, TrainConfig, number_arg



# --- commands ----------------------------------------------------------------------------------

def cmd_train(args) -> int:
    from core import preflight, runs

    if args.ship and args.no_eval:
        raise ConfigError("--ship needs the test evaluation (drop --no-eval)")
    run_dir = Path(args.run_dir) if args.run_dir else None
    asked, leaf_only = config_from(args), {}
    if args.leaf_stage:
        asked, leaf_only = asked.split_leaf_only()
    cfg = preflight.check_config(asked, started=runs.has_started(run_dir))
    if run_dir is not None:
        _check_run_dir(cfg, run_dir)
    data = preflight.check_build(cfg)   # data and model weights: everything that can fail, before any write
    if args.ship:
        from core.models import checkpoint
        checkpoint.check_ships_to_repository(cfg, len(data.dataset.concepts))
        # a repository that cannot take it (read-only, other files there): refused now, not after the hour
        try:
            checkpoint.check_ship_dest(paths.SHIPPED_CHECKPOINT, run_dir or paths.runs_dir())
        except runs.RunError as exc:         # its wording names --dest, which `train` does not have
            raise ConfigError(f"--ship writes {paths.SHIPPED_CHECKPOINT}: "
                              f"{str(exc).removeprefix('--dest ')}") from None
    result = _train_and_evaluate(cfg, run_dir, args.no_eval, "train")
    if result is None:
        return EXIT_INTERRUPTED
    if args.leaf_stage:
        first = Path(result["run_dir"])   # named by run id where it can be: the record then travels
        in_runs = first.resolve().parent == paths.runs_dir().resolve()
        second = preflight.check_config(cfg.leaf_stage(first.name if in_runs else str(first), **leaf_only))
        stage = _train_and_evaluate(second, None, args.no_eval, "leaf stage")
        if stage is None:
            return EXIT_INTERRUPTED
        result = stage | {"first_stage": result}
    if args.ship:
        from core.models import checkpoint
        _rank_for_shipping(Path(result["run_dir"]))
        result["shipped_to"] = str(checkpoint.export_shipped(result["run_dir"]))
    emit(result)
    return 0


def _train_and_evaluate(cfg: TrainConfig, run_dir: Path | None, no_eval: bool, label: str) -> dict | None:
    """Train one run (a new one, or resume `run_dir`) and evaluate it on the test split; its summary,
    or None when stopped by hand (saved, and the line to resume it printed)."""
    from core import runs
    from core import train as train_mod
    from core.evaluate import evaluate

    fresh = run_dir is None or not (run_dir / runs.CONFIG_JSON).is_file()   # not a resume
    if run_dir is None:
        run_dir = runs.create_run_dir(cfg)
    bar = ProgressBar(label)
    try:
        with StopFlag() as stop:
            share = 1.0 if no_eval else 0.85
            try:
                run_dir = Path(train_mod.train(cfg, run_dir=run_dir, progress=bar.sub(0, share),
                                               should_stop=stop, log=bar.write))
            except train_mod.Cancelled as exc:
                bar.close()
                print(f"taxolens: training stopped at epoch {exc.epoch + 1}, step {exc.step} (saved); resume with: "
                      f"taxolens train --run-dir {exc.run_dir} --config {Path(exc.run_dir) / 'config.json'}",
                      file=sys.stderr)
                return None
            except BaseException:
                if fresh:                  # nothing saved yet: no half-made run left to list as "new"
                    try:
                        runs.discard_unstarted(run_dir)
                    except OSError:        # the folder that failed training fails here too: say the first
                        pass
                raise
        test = None if no_eval else evaluate(run_dir, split="test", progress=bar.sub(share, 1.0))
    finally:
        bar.close()
    info = runs.load_run(run_dir)
    result = {"run_id": info.run_id, "run_dir": str(run_dir), "status": info.status,
              "epochs": info.epoch_metrics, "test": headline(test)}
    if test is not None:
        result["metrics_json"] = str(runs.eval_dir(run_dir, "test") / runs.METRICS_JSON)
        note = runs.learning_note(run_dir)
        if note:
            result["warning"] = note
    return result


SHIP_RANKING_IMAGES = 40     # test images asked every leaf before shipping: the app's learned note reads it


def _rank_for_shipping(run_dir: Path) -> None:
    """The every-leaf ranking a shipped checkpoint carries (what Predict's "has not learned" note and
    the shipped-checkpoint test read), computed on SHIP_RANKING_IMAGES test images (or all, when
    there are fewer) unless the run already has one on that many, made from its checkpoint as it is."""
    from core import rundata, runs
    from core.evaluate import leaf_ranking

    n_test = sum(s == "test" for s in rundata.image_split(runs.load_run(run_dir).config).values())
    ranked = runs.load_ranking(run_dir, "test")            # None when ranked before the run resumed
    if ranked is not None and "checkpoint" in ranked and (ranked.get("images") or 0) >= min(SHIP_RANKING_IMAGES, n_test):
        return                  # (one without its checkpoint's version is ranked again: it ships by file time)
    bar = ProgressBar(f"leaf ranking, {SHIP_RANKING_IMAGES} test images")
    try:
        leaf_ranking(run_dir, "test", images=SHIP_RANKING_IMAGES, progress=bar)
    finally:
        bar.close()


def cmd_ship(args) -> int:
    from core import runs
    from core.models import checkpoint

    info = _trained_run(args.run, None, None, weights=False)
    dest = paths.SHIPPED_CHECKPOINT if args.dest is None else Path(args.dest)
    checkpoint.check_ship_dest(dest, info.path)          # before the ranking's minutes
    if runs.evaluation_is_current(info.path, "test"):    # else export says what is missing
        _rank_for_shipping(info.path)       # loads the model only when the ranking is missing
    dest = checkpoint.export_shipped(info.path, dest, unfinished=args.unfinished)
    emit({"run_id": info.run_id, "shipped_to": str(dest),
           "size_bytes": sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())})
    return 0


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    """--run-dir may be new, or a run of this same config (then training resumes)."""
    from core import runs

    cfg_path = run_dir / runs.CONFIG_JSON
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory")
    check_output(run_dir, "--run-dir", folder=True)       # a parent that is a file, /proc, no permission
    if not cfg_path.is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise ConfigError(f"--run-dir {run_dir} is not empty and holds no run (no config.json)")
        return
    try:
        old = TrainConfig.from_stored(runs.read_json(cfg_path))
    except TypeError as exc:
        raise ConfigError(f"{cfg_path} is not a training config ({exc})") from None
    # as recorded; a run stored before condition spellings were one, too
    diff = [f"{k}: {was!r} -> {now!r}" for k, was, now in runs.config_differences(old, cfg)]
    if diff:
        raise ConfigError(f"{run_dir} holds a run with a different config ({'; '.join(diff)}); "
                          f"pass the same options (or --config {cfg_path}) to resume, or a new --run-dir")


def _trained_run(ref: str | None, encoder: str | None, lm: str | None, weights: bool = True):
    """The run to evaluate / predict with, checked: it exists, has a trained checkpoint, (when
    --encoder / --lm are given) was trained with them, and its models' weights are here."""
    from core import preflight
    if ref is None:         # so `taxolens predict photo.jpg` works on a fresh clone (preflight says why not)
        from core.models import checkpoint
        found = checkpoint.default_run()
        ref = None if found is None else str(found)
    return preflight.trained_run(ref, encoder, lm, weights=weights)


def cmd_evaluate(args) -> int:
    from core import runs

    info = _trained_run(args.run, args.encoder, args.lm)
    from core.evaluate import evaluate, leaf_ranking   # torch: only once the arguments are known good
    bar = ProgressBar(f"evaluate {args.split}")
    try:
        metrics = evaluate(info.path, split=args.split, progress=bar)
    finally:
        bar.close()
    out = runs.eval_dir(info.path, args.split)
    result = {"run_id": info.run_id, "split": args.split, "headline": headline(metrics),
              "metrics_json": str(out / runs.METRICS_JSON), "questions_csv": str(out / runs.QUESTIONS_CSV)}
    if args.leaf_ranking is not None:
        bar = ProgressBar(f"rank every leaf ({args.split})")
        try:
            ranking = leaf_ranking(info.path, split=args.split, images=args.leaf_ranking or None, progress=bar)
        finally:
            bar.close()
        result["leaf_ranking"] = {k: ranking[k] for k in ("images", "vocabulary", "top1", "top5",
                                                          "median_rank", "chance_top5")}
        result["ranking_json"] = str(out / runs.RANKING_FILE)
    emit(result)
    return 0


def cmd_baseline(args) -> int:
    import shutil

    from core import preflight, runs

    cfg = preflight.check_baseline(args.kind, config_from(args))    # config and data, before any write; as recorded
    from core.evaluate import baseline
    out_dir = runs.new_baseline_dir(args.kind, cfg)
    bar = ProgressBar(f"baseline {args.kind}")
    try:
        metrics = baseline(args.kind, cfg, out_dir=out_dir, progress=bar)
    except BaseException:                  # Ctrl-C or a failure: a baseline has nothing to resume
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    finally:
        bar.close()
    emit({"baseline": args.kind, "out_dir": str(out_dir), "headline": headline(metrics)})
    return 0


def cmd_probe_lm(args) -> int:
    from core import preflight, probe, runs

    # ids, dataset, device and the LM's weights, before any write: what `jobs submit probe` checks
    preflight.check_probe(args.lm, args.dataset, args.lm_init, args.seed, args.device)
    bar = ProgressBar(f"probe {args.lm}")
    try:
        folder, metrics = probe.run(args.lm, args.dataset, args.lm_init, args.seed, device=args.device,
                                    progress=bar)
    finally:
        bar.close()
    per_category = metrics["per_category"]
    print(f"{'category':<24} {'yes':>4} {'no':>4} {'chat F1':>8} {'plain F1':>8} {'pairwise':>8} {'sentence':>8}",
          file=sys.stderr)
    cell = lambda v: "-" if v is None else f"{v:.3f}"
    for name, e in per_category.items():
        print(f"{name:<24} {e['n_yes']:>4} {e['n_no']:>4} {cell(e['chat_macro_f1']):>8} "
              f"{cell(e['plain_macro_f1']):>8} {cell(e['pairwise']):>8} {cell(e['sentence']):>8}", file=sys.stderr)
    emit({**{k: v for k, v in metrics.items() if k != "per_category"},
           "out_dir": str(folder), "metrics_json": str(folder / runs.METRICS_JSON),
           "probe_csv": str(folder / "probe.csv")})
    return 0


def cmd_results_report(args) -> int:
    from core import results, runs

    out = check_output(paths.default_report() if args.out is None else args.out, "--out")
    left_out: list[str] = []
    repeated: list[str] = []
    unreadable: list[str] = []
    rows = results.collect(left_out, repeated, unreadable)
    text = results.report_markdown(rows, commit=runs.git_commit(), left_out=left_out, repeated=repeated,
                                   unreadable=unreadable)
    for u in unreadable:
        print(f"note: run folder {u} is not counted: it cannot be read", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs.write_text(out, text)
    counts = {kind: sum(r["kind"] == kind for r in rows) for kind in ("train", "baseline", "probe")}
    emit({"out": str(out), **{f"{k}_results": n for k, n in counts.items()}, "left_out": len(left_out),
          "counted_once": len(repeated)})
    return 0


def cmd_results_figures(args) -> int:
    from core import paper_figures, results

    out = check_output(paths.default_figures_dir() if args.out is None else args.out, "--out", folder=True)
    left_out: list[str] = []
    rows = results.collect(left_out)
    formats = [] if args.csv_only else ["svg", "png"]
    bar = ProgressBar("figures")
    try:
        manifest = paper_figures.write_all([r for r in rows if r["kind"] == "probe" or results.readable(r["metrics"])],
                                           out, formats, progress=bar)
    finally:
        bar.close()
    if not manifest["settings"]:
        print(f"taxolens results figures: no evaluated training runs yet: {paper_figures.SWEEP_HINT} "
              f"(another dataset: add --dataset NAME)", file=sys.stderr)
    said = set()                     # a note shared by several settings is printed once
    for entry in manifest["settings"]:
        for name, note in entry["notes"].items():
            if (name, note) not in said:
                said.add((name, note))
                print(f"{name}: {note}", file=sys.stderr)
    if formats and manifest["export"] != "ok":
        print(f"only CSV written: {manifest['export']}", file=sys.stderr)
    if left_out:
        print(f"left out {len(left_out)} run(s) and baseline(s) measured on another version of their "
              f"dataset ({results.left_out_names(left_out)})", file=sys.stderr)
    emit({**manifest, "left_out": len(left_out)})
    return 0


def cmd_predict(args) -> int:
    from core.images import load_image, notes_of, read_image_bytes

    data = read_image_bytes(args.image)    # read once, through the cap: decoded and hashed below
    image = load_image(data, name=Path(args.image).name)
    asked = _check_insight_args(args)
    info = _trained_run(args.run, args.encoder, args.lm)
    from core.predict import Predictor
    bar = ProgressBar("predict")
    try:
        bar(0.0, "loading the checkpoint (encoder, LM, projector)")
        predictor = Predictor.load(info.path)
        prediction = predictor.predict(image, top_k=args.top_k, full=args.full, progress=bar.sub(0.3, 1.0))
    finally:
        bar.close()
    notes = list(notes_of(image))          # CMYK / 16-bit / alpha / animation, as the app shows them
    for note in notes:
        print(f"taxolens predict: note: {note}", file=sys.stderr)
    result = {"run_id": info.run_id, "image": str(Path(args.image).resolve()), "image_notes": notes,
              "prediction": prediction.to_dict()}
    from core import runs
    warning = runs.answer_warning(info.path)         # as the Predict page shows beside the answers
    if warning:
        result["warning"] = warning
        print(f"taxolens predict: warning: {warning}", file=sys.stderr)
    if asked:
        result["asked"] = [a.to_dict() for a in predictor.ask(image, asked)]
    if args.open:
        bar = ProgressBar("open chain")
        try:
            walk = None
            for walk in predictor.open_chain_steps(image, threshold=args.open_threshold, beam=args.open_beam,
                                                   budget=args.open_budget, start=args.open_from):
                best = walk.chains[0][0].label if walk.chains else "-"
                bar(walk.questions / walk.budget, f"{walk.questions} questions, deepest: {best}")
            if walk is not None:        # a walk that ends before its budget is done all the same
                bar(1.0, f"{walk.questions} questions")
        finally:
            bar.close()
        result["open_chain"] = walk.to_dict()
    if args.lens:
        result["lens"] = predictor.lens(image)
    digest = hashlib.sha256(data).hexdigest()[:12]
    name = paths.safe_name(f"{info.run_id}__{Path(args.image).stem}_{digest}")
    out = paths.runs_dir() / "predictions" / f"{name}.json"
    result["output"] = str(out)
    emit(result, out)
    return 0


OPEN_DEFAULTS = {"open_threshold": 0.5, "open_beam": 2, "open_budget": 300, "open_from": "entity.n.01"}


def _check_insight_args(args) -> list[str]:
    """--ask / --open* checked before anything loads; returns the questions as they will be asked."""
    from core.predict import as_question

    asked = []
    for text in args.ask or []:
        try:
            asked.append(as_question(text))
        except ValueError as exc:
            raise ConfigError(f"--ask: {exc}") from None
    given = ["--" + key.replace("_", "-") for key, default in OPEN_DEFAULTS.items() if getattr(args, key) != default]
    if given and not args.open:          # set for a walk that would not happen: say so, not ignore it
        raise ConfigError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the open walk: add --open")
    if not 0.0 <= args.open_threshold <= 1.0:
        raise ConfigError(f"--open-threshold must be in [0, 1], got {args.open_threshold}")
    for flag, value in (("--open-beam", args.open_beam), ("--open-budget", args.open_budget)):
        if value < 1:
            raise ConfigError(f"{flag} must be >= 1, got {value}")
    if args.open:
        from core import taxonomy
        if taxonomy.synset(args.open_from).pos() != "n":     # TaxonomyError: one line, exit 2 (as open_chain_steps)
            raise ConfigError(f"--open-from must be a noun synset (like 'animal.n.01'), got {args.open_from!r}")
    return asked


def cmd_clusters(args) -> int:
    from core import clusters, runs

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    bad = [s for s in sources if s not in clusters.SOURCES]
    if bad or not sources:
        raise ConfigError(f"--sources must be drawn from {', '.join(clusters.SOURCES)}, got {args.sources!r}")
    if args.permutations < 0:
        raise ConfigError(f"--permutations must be >= 0, got {args.permutations}")
    from core import preflight
    preflight.check_device(args.device)      # no CUDA here: one line, not a traceback
    info = _trained_run(args.run, None, None)
    device = None if args.device == "auto" else args.device
    bar = ProgressBar("clusters")
    try:
        result = clusters.compute(info.path, split=args.split, sources=sources, progress=bar, device=device,
                                  n_perm=args.permutations)
    finally:
        bar.close()
    folder = clusters.out_dir(info.path, args.split)
    for row in clusters.score_table(result):
        c = "-" if row["cophenetic"] is None else f"{row['cophenetic']:+.3f}"
        f = "-" if row["fm_mean"] is None else f"{row['fm_mean']:.3f}"
        n = "-" if row["null_cophenetic"] is None else f"{row['null_cophenetic']:+.3f}"
        print(f"{row['level']:<9} {row['labeling']:<9} {row['source']:<11} cophenetic {c:>7} (null {n:>7})  "
              f"FM {f}", file=sys.stderr)
    emit({"run_id": info.run_id, "split": args.split, "n_images": result["n_images"], "notes": result["notes"],
           "scores": clusters.score_table(result), "json": str(folder / "clusters.json"),
           "newick": sorted(str(p) for p in folder.glob("*.nwk"))})
    return 0


def cmd_lens(args) -> int:
    from core import lens

    if args.top < 1:
        raise ConfigError(f"--top must be >= 1, got {args.top}")
    from core import preflight
    preflight.check_device(args.device)      # no CUDA here: one line, not a traceback
    info = _trained_run(args.run, None, None)
    device = None if args.device == "auto" else args.device
    bar = ProgressBar("lens")
    try:
        result = lens.summarize(info.path, top=args.top, progress=bar, device=device)
    finally:
        bar.close()
    overall = result["categories"][0] if result["categories"] else {}
    emit({"run_id": info.run_id, "n_images": result["n_images"], "top": result["top"],
           "image_token_norm": result["image_token_norm"], "token_norm": result["token_norm"],
           "all": overall, "per_category": result["categories"][1:],        # the README's shares per category
           "json": str(lens.out_path(info.path))})
    return 0


def cmd_coherence(args) -> int:
    from core import geometry, preflight

    # the same checks as `jobs submit coherence`: images, subset, both shuffles, encoder weights
    ds = preflight.check_coherence(args.dataset, args.encoder, args.seed, args.max_concepts,
                                   args.images_per_concept, args.device, images=args.images,
                                   split_percent=args.split_percent)
    device = None if args.device == "auto" else args.device
    bar = ProgressBar("coherence")
    try:
        table = geometry.coherence_table(ds, args.encoder, args.seed, progress=bar, device=device,
                                         images=args.images, split_percent=args.split_percent)
    finally:
        bar.close()
    out = geometry.cache_dir(ds, args.encoder, args.seed, args.images, args.split_percent)
    print(table.to_string(float_format=lambda v: f"{v:.4f}"), file=sys.stderr)
    meta = geometry.read_meta(out) or {}                   # the table's own record of what it could not do
    for name, why in (meta.get("not_possible") or {}).items():
        print(f"taxolens coherence: note: no {name} column ({why})", file=sys.stderr)
    emit({"dataset": ds.name, "encoder": args.encoder, "seed": args.seed, "images": args.images,
           "n_images": meta.get("images"),
           "csv": str(out / "coherence.csv"),
           "all": {k: geometry.finite_or_none(float(v)) for k, v in table.loc["all"].items()}})
    return 0


def cmd_runs(args) -> int:
    from core import runs
    from core.results import load_eval

    rows = []
    versions = runs.DatasetVersions()
    for info in runs.list_runs():
        test = load_eval(info.path, "test")     # one written before today's headline: summarized again
        if test is None:
            try:                                 # nothing usable: say why when the file is damaged
                runs.load_metrics(info.path, "test")
            except runs.RunError as exc:         # one damaged evaluation does not hide the other runs
                print(f"taxolens runs: note: {exc}", file=sys.stderr)
        # a run of another version of its dataset: results, sweeps and evaluate leave it out
        current = not info.checkpoint or versions.checkpoint_is_current(info.checkpoint, info.config.dataset)
        rows.append({"run_id": info.run_id, "status": info.status, "epoch": info.epoch,
                     "condition": info.config.condition, "seed": info.config.seed,
                     "dataset": info.config.dataset, "current_dataset": current,
                     "encoder": info.config.encoder, "lm": info.config.lm,
                     "lm_init": info.config.lm_init, "test": headline(test)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no runs under {paths.runs_dir()}")
        return 0
    for r in rows:
        f1 = lambda key: "-" if not r["test"] or r["test"].get(key) is None else f"{r['test'][key]:.3f}"
        print(f"{r['run_id']:<44} {r['status']:<9} ep {r['epoch']:<3} {r['condition']:<22} "
              f"{r['lm_init']:<10} leaf acc {f1('leaf_accuracy'):>5}  F1 {f1('leaf_concept_f1'):>5}  "
              f"seen {f1('seen_category_f1'):>5}  unseen {f1('unseen_category_f1'):>5}"
              + ("" if r["current_dataset"] else "  *"))
    print("leaf acc: test leaf questions answered right; F1: their yes/no macro-F1 per concept; seen, unseen: "
          "per-category yes/no macro-F1 of the hypernym questions")
    stale = sorted({r["dataset"] for r in rows if not r["current_dataset"]})
    if stale:
        print(f"*: trained on another version of {', '.join(stale)} than the one installed now; results, sweeps "
              f"and evaluate leave it out")
    return 0



# --- parsers -----------------------------------------------------------------------------------

def register(sub) -> None:
    """Add the study commands to the `taxolens` subparsers."""
    p = sub.add_parser("train", help="train a projector, then evaluate it on the test split",
                       description="Train the projector for a config (resumes an existing --run-dir "
                                   "of the same config), then evaluate it on the test split.")
    add_train_options(p)
    p.add_argument("--run-dir", type=output_path, help="run directory to create or resume (default: a new one "
                                     "under the runs directory)")
    p.add_argument("--no-eval", action="store_true", help="skip the test-split evaluation")
    p.add_argument("--leaf-stage", action="store_true",
                   help="then train a second run from this one's best checkpoint that ranks each image's "
                        "leaf against its category-mates (core.config.LEAF_STAGE: how the shipped "
                        "checkpoint is trained), and evaluate and --ship that one")
    p.add_argument("--ship", action="store_true",
                   help="then rank every leaf on 40 test images and write the run as the shipped "
                        "default checkpoint (assets/default-checkpoint)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("ship", help="write a trained, evaluated run as the shipped default checkpoint",
                       description="Export a finished run with a test evaluation to assets/default-checkpoint "
                                   "(the best epoch's projector in fp16, checkpoint.json, config, test "
                                   "evaluation), which a fresh clone installs and Predict uses at once.")
    p.add_argument("run", metavar="RUN", help="run id or run directory")
    p.add_argument("--dest", type=output_path, help="folder to write (default: assets/default-checkpoint)")
    p.add_argument("--unfinished", action="store_true",
                   help="also a run stopped by hand (its best epoch so far; checkpoint.json says where it stopped)")
    p.set_defaults(func=cmd_ship)

    p = sub.add_parser("evaluate", help="score a trained run on a split",
                       description="Score a trained run; writes eval/<split>/questions.csv and "
                                   "metrics.json in the run directory.")
    p.add_argument("run", metavar="RUN", help="run id (under the runs directory) or run directory")
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--leaf-ranking", type=number_arg(int, 0, 10**6), metavar="N", default=None,
                   help="also ask every leaf question of N images of the split (0: all) and report the "
                        "true leaf's rank, as Predict ranks them (writes ranking.json)")
    p.add_argument("--encoder", help="fail unless the run was trained with this encoder")
    p.add_argument("--lm", help="fail unless the run was trained with this LM")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="the majority or image-probe baseline for a config",
                       description="majority: the majority answer per question kind (from the TRAIN "
                                   "questions) on the test questions of a config. image-probe: a linear "
                                   "probe on the encoder's features (no LM), trained on the TRAIN images, "
                                   "thresholds chosen on VAL: how well the image side alone answers the "
                                   "leaf questions. What the LM alone knows: probe-lm.")
    p.add_argument("kind", choices=BASELINES)
    add_train_options(p)
    p.set_defaults(func=cmd_baseline)

    defaults = TrainConfig()
    p = sub.add_parser("probe-lm", help="what the LM alone knows about the dataset's categories",
                       description="Ask the LM (no image) about every (concept, category) pair of the "
                                   "dataset: yes/no through its chat template and in the plain "
                                   "'Question: ...\nAnswer:' format, P(yes) for a true vs a wrong "
                                   "category, and sentence log-probabilities; per category. Writes "
                                   "<runs>/probes/<lm>_<dataset>/{probe.csv,metrics.json}.")
    p.add_argument("--lm", default=defaults.lm, help=f"LM id (default {defaults.lm})")
    p.add_argument("--dataset", default=defaults.dataset, help=f"dataset name (default {defaults.dataset})")
    p.add_argument("--lm-init", choices=("pretrained", "random"), default="pretrained",
                   help="random: the same architecture with random weights (a control)")
    p.add_argument("--seed", type=int, default=0, help="seed of the 'no' categories (and random weights)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_probe_lm)

    p = sub.add_parser("predict", help="one image -> leaf guesses, hypernym chain, category scores",
                       description="Run a trained checkpoint on one image file.")
    p.add_argument("image", metavar="IMAGE", help="image file (PNG, JPEG, WEBP, GIF, BMP, TIFF)")
    p.add_argument("--run", help="run id or directory (default: the finished run of the default config or the shipped recipe "
                        "best on validation, else the shipped checkpoint)")
    p.add_argument("--top-k", type=number_arg(int, 1, 100000), default=5,
                   help="leaf guesses to list (default 5)")
    p.add_argument("--full", action="store_true",
                   help="score every leaf in fp32 (default on CPUs with native bf16: a bf16 pass "
                        "shortlists the leaves that are then scored in fp32)")
    p.add_argument("--encoder", help="fail unless the checkpoint was trained with this encoder")
    p.add_argument("--lm", help="fail unless the checkpoint was trained with this LM")
    p.add_argument("--ask", action="append", metavar="QUESTION",
                   help="any yes/no question about the image (repeatable); a bare noun ('marsupial') is "
                        "asked as 'Is there a marsupial in the image?'")
    p.add_argument("--open", action="store_true",
                   help="also walk WordNet down from the root, scoring the hyponyms of each confident node "
                        "(an open-vocabulary chain, for concepts outside the training vocabulary)")
    p.add_argument("--open-threshold", type=float, default=OPEN_DEFAULTS["open_threshold"],
                   help="P(yes) a node needs (default %(default)s)")
    p.add_argument("--open-beam", type=int, default=OPEN_DEFAULTS["open_beam"],
                   help="nodes expanded per level (default %(default)s)")
    p.add_argument("--open-budget", type=int, default=OPEN_DEFAULTS["open_budget"],
                   help="at most this many questions (default %(default)s)")
    p.add_argument("--open-from", default=OPEN_DEFAULTS["open_from"], metavar="SYNSET",
                   help="start the walk here instead of the root (e.g. organism.n.01)")
    p.add_argument("--lens", action="store_true",
                   help="also the nearest LM tokens of each image token and the logit lens")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("coherence", help="visual coherence of categories under original / cross / "
                                         "within labelings",
                       description="Mean pairwise cosine of pooled image embeddings per category, over "
                                   "its training images under the seed's split (the paper's definition) "
                                   "or with --images all over all its images; cached under <runs>/coherence/.")
    p.add_argument("--dataset", default=defaults.dataset)
    p.add_argument("--encoder", default=defaults.encoder)
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles, the split (and subset)")
    p.add_argument("--images", default="train", metavar="{train,all}",
                   help="train: each category's training images under the seed's split, as in the paper "
                        "(default); all: all its images")
    p.add_argument("--split-percent", default=defaults.split_percent, metavar="TRAIN/VAL/TEST",
                   help="with --images train: the split whose training images count, as the runs' "
                        f"--split-percent (default {defaults.split_percent})")
    p.add_argument("--max-concepts", type=int, default=None)
    p.add_argument("--images-per-concept", type=int, default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_coherence)

    p = sub.add_parser("clusters", help="a checkpoint's category / concept trees against WordNet",
                       description="Hierarchical clustering of categories and concepts from encoder "
                                   "features, projector outputs and answer profiles, under the original, "
                                   "cross and within labelings, scored against WordNet (cophenetic "
                                   "correlation, Fowlkes-Mallows at matched cuts). Writes "
                                   "RUN/clusters/SPLIT/clusters.json and one Newick file per tree.")
    p.add_argument("run", metavar="RUN", help="run id (under the runs directory) or run directory")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="images to use (default test; answer profiles cost one LM pass per image and "
                        "category question)")
    p.add_argument("--sources", default="encoder,projector,answers",
                   help="comma-separated: encoder, projector, answers (default: all three)")
    p.add_argument("--permutations", type=int, default=200, help="leaf permutations of the null (default 200)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_clusters)

    p = sub.add_parser("lens", help="where a checkpoint's image tokens land in the LM, per category",
                       description="For every image of the run's dataset: the nearest LM input tokens of "
                                   "its image tokens and the next tokens after it; the share of images per "
                                   "category that 'write' their concept's name or a hypernym. Writes "
                                   "RUN/lens/summary.json.")
    p.add_argument("run", metavar="RUN", help="run id (under the runs directory) or run directory")
    p.add_argument("--top", type=int, default=10, help="nearest / next tokens per image (default 10)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=cmd_lens)

    p = sub.add_parser("runs", help="list training runs", description="List training runs, newest first.")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("results", help="results across runs (`results report` writes docs/results.md by default)",
                       description="Results across every evaluated run, baseline and LM probe on disk.")
    rsub = p.add_subparsers(dest="results_command", metavar="COMMAND", required=True)
    r = rsub.add_parser("report", help="regenerate the results report (markdown)",
                        description="Per setting and condition: seen / unseen per-category macro-F1 "
                                    "with 95 % t-CIs over seeds, chance, leaf numbers, baselines, LM "
                                    "probes, and per run its device, training time and git commit.")
    r.add_argument("--out", type=output_path, default=None,
                   help="markdown file to write (default: docs/results.md; results.md in the data folder "
                        "when TAXOLENS_DATA points elsewhere)")
    r.set_defaults(func=cmd_results_report)
    r = rsub.add_parser("figures", help="the paper's figures: data as CSV, figures as SVG / PNG",
                        description="Per training setting: unseen macro-F1 against the share of hypernyms "
                                    "seen (random and systematic ablation), per-category F1 against visual "
                                    "coherence and against the LM probe (Spearman, Pearson, fitted line), F1 "
                                    "by hypernym depth, leaf F1 per concept. Each as <name>.csv, and as "
                                    "<name>.svg / <name>.png where kaleido and a Chromium are available.")
    r.add_argument("--out", type=output_path, default=None,
                   help="folder to write into (default: artifacts/figures, or figures/ in the data folder "
                        "when TAXOLENS_DATA points elsewhere; one sub-folder per setting when there are several)")
    r.add_argument("--csv-only", action="store_true", help="write the data only, no SVG / PNG")
    r.set_defaults(func=cmd_results_figures)
