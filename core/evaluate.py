"""Evaluation of a trained run, and the baselines it is compared with.

    evaluate(run_dir, split="test") -> metrics       the trained projector, yes/no by P(" Yes") vs P(" No")
    baseline("majority", cfg) -> metrics             the majority answer per question kind (from TRAIN)

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

from core import conditions, features, metrics, rundata, runs, scoring
from core.models import checkpoint
from core.base import ConfigError
from core.config import TrainConfig

BASELINES = ("majority",)


def evaluate(run_dir: str | Path, split: str = "test", progress=None) -> dict:
    """Score every `split` question of a trained run; writes and returns its metrics."""
    runs.eval_dir(run_dir, split)                       # checks the split name before any work
    report = progress or (lambda f, m: None)
    info, vlm = checkpoint.load_trained(run_dir)
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
             "status": info.status, "config": cfg.to_dict()}
    result = _write(runs.eval_dir(info.path, split), rows, about)
    report(1.0, "done")
    return result


def baseline(kind: str, cfg: TrainConfig, out_dir: str | Path | None = None, progress=None) -> dict:
    """A baseline's test metrics for the data and condition of `cfg`; written to
    out_dir/eval/test/ (default: runs_dir()/baselines/<kind>_<dataset>_<condition>_s<seed>_<config hash>)."""
    if kind not in BASELINES:
        raise ConfigError(f"baseline must be one of {', '.join(BASELINES)}, got {kind!r}")
    rundata.check(cfg)
    report = progress or (lambda f, m: None)
    data = rundata.prepare(cfg)
    test_q = data.questions["test"]
    rows = _majority_rows(data, test_q)
    if out_dir is None:   # one folder per (kind, config): rerunning the same baseline replaces it
        digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:6]
        out_dir = runs.baseline_dir(kind, cfg, digest)
        runs.write_json(Path(out_dir) / runs.CONFIG_JSON, {"baseline": kind, **cfg.to_dict()})
    about = {"kind": kind, "split": "test", "config": cfg.to_dict()}
    result = _write(runs.eval_dir(out_dir, "test"), rows, about)
    report(1.0, "done")
    return result


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
