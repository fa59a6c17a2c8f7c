"""ui.results_data: runs and baselines on disk → comparable settings, seed means with CIs, curves."""
from __future__ import annotations

import math

import pytest

from app_data import fake_run
from core import runs
from core.config import TrainConfig
from ui import results_data as rd


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"max_concepts": 6, "images_per_concept": 3, "epochs": 1, **kw})


def fake_baseline(kind: str, config: TrainConfig) -> None:
    """A baseline evaluation whose hypernym F1 is 0.4 (TP 1, FP 2, FN 1), through core.metrics."""
    from core import metrics
    folder = runs.baselines_dir() / f"{kind}_{config.lm}_{config.condition}_s{config.seed}"
    runs.write_json(folder / "config.json", {"baseline": kind, **config.to_dict()})
    pairs = [(True, True), (True, False), (False, True), (False, True), (False, False)]
    rows = [{"kind": "hypernym", "target": "animal", "answer": a, "pred": p, "seen": True, "mass": 0.9}
            for a, p in pairs] + [{"kind": "leaf", "target": "dog", "answer": True, "pred": True,
                                   "seen": True, "mass": 0.9}]
    runs.write_json(runs.eval_dir(folder, "test") / "metrics.json", metrics.summarize(rows))


def test_collect_reads_evaluated_runs_and_baselines_only(data_dir):
    fake_run(cfg(seed=0))
    fake_run(cfg(seed=1), evaluated=False)
    fake_baseline("majority", cfg())
    rows = rd.collect()
    assert sorted(r["kind"] for r in rows) == ["baseline", "train"]
    assert {r["name"].split("/")[0] for r in rows if r["kind"] == "baseline"} == {"baselines"}


def test_settings_group_runs_and_attach_matching_baselines(data_dir):
    for seed in (0, 1, 2):
        fake_run(cfg(seed=seed, condition="random:0.5"))
    fake_run(cfg(seed=0, epochs=2))                                  # another setting
    fake_baseline("majority", cfg())
    fake_baseline("lm_only", cfg(lm="gemma3-270m"))             # another LM: not comparable
    rows = rd.collect()
    first, second = rd.settings(rows)
    assert dict(zip(rd.SETTING_FIELDS, first))["epochs"] == 1        # most runs first
    chosen = rd.in_setting(rows, first)
    assert sum(r["kind"] == "train" for r in chosen) == 3
    assert [r["baseline"] for r in chosen if r["kind"] == "baseline"] == ["majority"]
    assert "6 concepts × 3 images" in rd.describe_setting(first)


def test_aggregate_means_over_seeds_and_names_models(data_dir):
    for seed in (0, 1):
        fake_run(cfg(seed=seed, condition="random:0.5"))
        fake_run(cfg(seed=seed, condition="random:0.5", lm_init="random"))
    fake_baseline("majority", cfg())
    table = rd.aggregated(rd.collect())
    models = set(table["model"])
    assert models == {"pretrained LM", "random-init LM", "majority"}
    row = table[(table["model"] == "pretrained LM") & (table["metric"] == "leaf_f1")].iloc[0]
    assert row["n_seeds"] == 2 and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert rd.baseline_levels(table) == {"majority": pytest.approx(0.4)}


def test_ratio_curve_rows_place_none_at_zero_and_skip_shuffles(data_dir):
    fake_run(cfg(condition="none"))
    fake_run(cfg(condition="random:0.5"))
    fake_run(cfg(condition="cross"))
    curve = rd.ratio_curve_rows(rd.aggregated(rd.collect()), metrics=("seen_f1",))
    assert sorted(r["ratio"] for r in curve) == [0.0, 0.5]
    assert {r["series"] for r in curve} == {"pretrained LM · seen F1"}
    assert rd.ratio_of("systematic:2") is None and rd.ratio_of("random:1") == 1.0


def test_metrics_from_an_older_taxolens_are_recognised(data_dir):
    run_dir = fake_run(cfg())
    path = runs.eval_dir(run_dir, "test") / "metrics.json"
    old = runs.read_json(path)
    del old["hypernym"]["seen"]["category_macro_f1"]
    runs.write_json(path, old)
    (row,) = rd.collect()
    assert not rd.readable(row["metrics"])
    assert rd.readable(runs.read_json(runs.eval_dir(fake_run(cfg(seed=1)), "test") / "metrics.json"))


def test_per_category_f1_table(data_dir):
    fake_run(cfg(condition="random:0.5"))
    rows = rd.collect()
    unseen = rd.per_category(rows, "unseen")
    every = rd.per_category(rows, "all")
    assert list(every.columns) == ["pretrained LM · random:0.5"]
    assert set(unseen.index) <= set(every.index)
    assert all(0 <= v <= 1 for v in every.iloc[:, 0] if not math.isnan(v))
