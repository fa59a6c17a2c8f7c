"""Evaluation of a trained run, and the baselines it is compared with.

    evaluate(run_dir, split="test") -> metrics       the trained projector, yes/no by P(" Yes") vs P(" No")
    leaf_ranking(run_dir, split="test", images=N)    every leaf asked of each image, as Predict does:
                                                     the true leaf's rank (top-1 / top-5) -> ranking.json
    baseline("majority", cfg) -> metrics             the majority answer per question kind (from TRAIN)
    baseline("image-probe", cfg) -> metrics          a linear probe on the encoder's features, no LM
                                                     (core.image_probe): the image side's ceiling

Both write the same two files to <dir>/eval/<split>/: questions.csv (one row per question) and
metrics.json (core.metrics.summarize plus what was evaluated). The random-init LM control is not a
baseline here: it is an ordinary training run with cfg.lm_init = "random", evaluated like any other.
What the LM alone knows is measured by core.probe (`taxolens probe-lm`), on the dataset's own
(concept, category) pairs rather than on a run's test questions.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections import Counter
from pathlib import Path

from core import conditions, features, metrics, questions, rundata, runs, scoring
from core.models import checkpoint
from core.base import ConfigError
from core.config import BASELINES, TrainConfig, baseline_identity

RANKING_FILE = runs.RANKING_FILE


def evaluate(run_dir: str | Path, split: str = "test", progress=None, frozen_from=None) -> dict:
    """Score every `split` question of a trained run; writes and returns its metrics. frozen_from:
    a loaded fp32 VLM of the same encoder and LM to share (checkpoint.load_trained)."""
    runs.eval_dir(run_dir, split)                       # checks the split name before any work
    check_split(run_dir, split)                         # and that it has an image, before a model loads
    report = progress or (lambda f, m: None)
    info, vlm = checkpoint.load_trained(run_dir, frozen_from=frozen_from)
    cfg = trained_config(info)
    data = rundata.prepare(cfg)
    _check_same_dataset(info, data)
    items = data.images(split)
    report(0.0, f"encoding {len(items)} {split} images")
    feats, row_of = features.image_features(vlm, items)
    qs = data.questions[split]
    rows = scoring.score(vlm, feats, row_of, qs, data.deprivation, split=split,
                         progress=lambda f, m: report(0.02 + 0.96 * f, m))
    about = {"run_id": info.run_id, "kind": "run", "split": split, "epoch": info.epoch,
             "status": info.status, "checkpoint": runs.version_of(info.checkpoint), "config": cfg.to_dict()}
    result = _write(runs.eval_dir(info.path, split), rows, about)
    report(1.0, "done")
    return result


def check_split(run_dir: str | Path, split: str) -> None:
    """rundata.check_measurable for a run folder: nothing to measure is refused before a model loads."""
    info = runs.load_run(run_dir)
    rundata.check_measurable(trained_config(info), split, info.run_id)


def evenly_spaced(items: list, n: int | None) -> list:
    """`n` of the items at even spacing, in their order (all of them when n is None or not smaller)."""
    return items if n is None or n >= len(items) else [items[i * len(items) // n] for i in range(n)]


def spaced_sample(items: list, n: int | None) -> list:
    """`n` of the images, evenly spaced in id order: the same sample on every run and machine,
    spread over concepts and styles."""
    return evenly_spaced(sorted(items, key=lambda im: im.id), n)


def first_image_per_concept(images) -> dict:
    """{concept: its first image by id}, concepts in name order: one image each of distinct concepts
    (the shipped-checkpoint integration test asks 20 of them, bench/distinct_ranking all)."""
    by_concept = {}
    for im in sorted(images, key=lambda im: (im.concept, im.id)):
        by_concept.setdefault(im.concept, im)
    return by_concept


def ranked_rows(vlm, items, ds, labeling):
    """Per image (yielded as it is scored): every leaf of `ds` asked, the rank of the image's
    labelled concept by P(yes), the top 5, and the P(yes) of the right leaf and of the mean one."""
    concepts = sorted(ds.concepts)
    texts = [questions.question_text(ds.concepts[c].label) for c in concepts]
    feats, _ = features.image_features(vlm, items)
    for i, item in enumerate(items):
        p_yes = vlm.score(feats[i:i + 1], [texts])[0].p_yes
        order = sorted(range(len(concepts)), key=lambda j: -float(p_yes[j]))
        shown = questions.shown_concept(item.concept, labeling)
        yield {"image_id": item.id, "concept": item.concept, "labelled_concept": shown,
               "style": item.style, "rank": order.index(concepts.index(shown)) + 1,
               "top5": [concepts[j] for j in order[:5]],
               "p_yes_true": round(float(p_yes[concepts.index(shown)]), 4),
               "mean_p_yes": round(float(p_yes.mean()), 4)}


def leaf_ranking(run_dir: str | Path, split: str = "test", images: int | None = None,
                 progress=None, write: bool = True, frozen_from=None) -> dict:
    """Ask every leaf question of the run's vocabulary about each `split` image and rank the image's
    (labelled) concept among them by P(yes) -- what Predict shows a user. The yes/no metrics ask one
    random negative per image; this asks all of them, so a model that only knows categories scores
    well there and badly here. `images`: an evenly spaced sample of that many (None: all; each costs
    one question per concept). Writes <run>/eval/<split>/ranking.json (unless `write` is False: a
    side measurement that must not replace the run's recorded ranking) and returns it. frozen_from:
    as for evaluate()."""
    runs.eval_dir(run_dir, split)
    if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
        raise ConfigError(f"images must be a positive integer, got {images!r}")
    check_split(run_dir, split)
    report = progress or (lambda f, m: None)
    info, vlm = checkpoint.load_trained(run_dir, frozen_from=frozen_from)
    cfg = trained_config(info)
    data = rundata.prepare(cfg)
    _check_same_dataset(info, data)
    items = spaced_sample(data.images(split), images)
    concepts = sorted(data.dataset.concepts)
    report(0.0, f"encoding {len(items)} {split} images")
    rows = []
    for row in ranked_rows(vlm, items, data.dataset, data.deprivation.labeling):
        rows.append(row)
        report(len(rows) / len(items), f"ranked every leaf for {len(rows)}/{len(items)} {split} images")
    ranks = sorted(r["rank"] for r in rows)
    # the checkpoint as loaded, not as it is once ranked: a run still training may have saved since
    result = {"run_id": info.run_id, "checkpoint": runs.version_of(info.checkpoint), "split": split, "images": len(rows), "of_images": len(data.images(split)),
              "vocabulary": len(concepts), "chance_top1": 1 / len(concepts), "chance_top5": min(5, len(concepts)) / len(concepts),
              "top1": sum(r <= 1 for r in ranks) / len(rows) if rows else None,
              "top5": sum(r <= 5 for r in ranks) / len(rows) if rows else None,
              "median_rank": ranks[len(ranks) // 2] if rows else None,
              "mean_p_yes": sum(r["mean_p_yes"] for r in rows) / len(rows) if rows else None,
              "rows": rows}
    if write:
        runs.write_json(runs.eval_dir(info.path, split) / RANKING_FILE, result)
    return result


def baseline(kind: str, cfg: TrainConfig, out_dir: str | Path | None = None, progress=None) -> dict:
    """A baseline's test metrics for the data and condition of `cfg`; written to
    out_dir/eval/test/ (default: runs_dir()/baselines/<kind>_<dataset>_<condition>_s<seed>_<hash>, the
    hash of what the baseline depends on)."""
    if kind not in BASELINES:
        raise ConfigError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    rundata.check(cfg)
    report = progress or (lambda f, m: None)
    data = rundata.prepare(cfg)
    # the dataset version it measured: a rebuilt dataset makes it stale (runs.DatasetVersions)
    about = {"kind": kind, "split": "test", "config": cfg.to_dict(), "dataset_sha256": data.table_sha256}
    if kind == "image-probe":
        from core import image_probe
        from core.models import registry
        report(0.0, "loading the image encoder")
        probe = image_probe.fit(data, registry.create_encoder(cfg.encoder), cfg.seed, progress=report)
        rows = probe.rows(data, "test")
        about.update(thresholds=probe.thresholds, ranking=probe.ranking(data, "test"))
    else:
        rows = _majority_rows(data, data.questions["test"])
    if out_dir is None:   # one folder per baseline identity: rerunning the same baseline replaces it
        out_dir = default_baseline_dir(kind, cfg)
        runs.write_json(Path(out_dir) / runs.CONFIG_JSON, {"baseline": kind, **cfg.to_dict()})
    result = _write(runs.eval_dir(out_dir, "test"), rows, about)
    report(1.0, "done")
    return result


def default_baseline_dir(kind: str, cfg: TrainConfig) -> Path:
    """Where baseline(kind, cfg) writes when given no folder: one per what the baseline depends on
    (config.baseline_identity), so runs that differ only in the LM or recipe share it."""
    identity = baseline_identity(kind, cfg.to_dict())
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:6]
    return runs.baseline_dir(kind, cfg, digest)


def find_baseline_dir(kind: str, cfg: TrainConfig) -> Path | None:
    """The evaluated folder of baseline(kind, cfg) on disk, measured on the installed version of
    the dataset: the default one, else any folder of the same baseline identity (one written under
    another config, or before folders were named by it), the newest; None when it has not been run."""
    versions = runs.DatasetVersions()

    def done(folder: Path) -> bool:
        path = runs.eval_dir(folder, "test") / runs.METRICS_JSON
        if not path.is_file():
            return False
        try:
            recorded = runs.read_json(path).get("dataset_sha256")
        except (runs.RunError, OSError, AttributeError):
            return False
        return versions.current(cfg.dataset, recorded)

    default = default_baseline_dir(kind, cfg)
    if done(default):
        return default
    wanted = baseline_identity(kind, cfg.to_dict())
    same = [d for d, config in runs.baseline_folders()
            if config["baseline"] == kind and baseline_identity(kind, config) == wanted and done(d)]
    return max(same, key=lambda d: (runs.eval_dir(d, "test") / runs.METRICS_JSON).stat().st_mtime, default=None)


def trained_config(info: runs.RunInfo) -> TrainConfig:
    """The run's config with the condition it was really trained under: a run from before
    random:<r> became the paper's concept ablation is evaluated as the pairs:<r> it used."""
    recorded = info.checkpoint.get("condition") or {}
    spec = conditions.legacy_spec(info.config.condition, recorded.get("report"))
    return dataclasses.replace(info.config, condition=spec) if spec != info.config.condition else info.config


# ---------------------------------------------------------------- baselines

def _majority_rows(data: rundata.RunData, test_q: list) -> list[dict]:
    """Each question kind answered with that kind's most common TRAIN answer (ties: no)."""
    counts = {kind: Counter(q.answer for q in data.training_questions() if q.kind == kind)
              for kind in ("leaf", "hypernym")}
    majority = {kind: c[True] > c[False] for kind, c in counts.items()}
    return [scoring.row(q, data.deprivation, "test", p_yes=float(majority[q.kind]), mass=None)
            for q in test_q]


# ---------------------------------------------------------------- output

def _check_same_dataset(info: runs.RunInfo, data: rundata.RunData) -> None:
    recorded = info.checkpoint.get("dataset", {}).get("table_sha256")
    if recorded and recorded != data.table_sha256:
        raise runs.RunError(f"dataset '{info.config.dataset}' changed since run {info.run_id} was "
                            f"trained; its splits and questions would not match")


def _write(out: Path, rows: list[dict], about: dict) -> dict:
    result = metrics.summarize(rows)
    result.update(about)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=scoring.ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    runs.write_text(out / runs.QUESTIONS_CSV, buf.getvalue())
    runs.write_json(out / runs.METRICS_JSON, result)
    return result
