"""Sweep expansion (grids, the `paper` preset, scales) and aggregation across seeds."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from core.jobs import sweeps
from core.jobs.kinds import JobSpecError
from core.metrics import summarize


def _conditions(jobs, kind="train", lm_init="pretrained"):
    return Counter(j["spec"]["config"]["condition"] for j in jobs
                   if j["kind"] == kind and j["spec"]["config"]["lm_init"] == lm_init)


def test_paper_preset_has_every_condition_control_and_baseline_for_three_seeds():
    jobs = sweeps.expand(sweeps.preset("paper", "cpu"))
    assert _conditions(jobs) == {c: 3 for c in ["random:0", "random:0.5", "random:0.9", "random:1",
                                                "systematic:4", "cross", "within"]}
    assert _conditions(jobs, lm_init="random") == {"random:0.5": 3, "random:1": 3}
    baselines = Counter((j["spec"]["baseline"], j["spec"]["config"]["seed"]) for j in jobs
                        if j["kind"] == "baseline")
    assert baselines == {(b, s): 1 for b in ("lm_only", "majority") for s in (0, 1, 2)}
    assert len(jobs) == 21 + 6 + 6
    assert all(j["spec"]["config"]["max_concepts"] == sweeps.SCALES["cpu"]["max_concepts"] for j in jobs)


def test_jobs_come_seed_by_seed():
    seeds = [j["spec"]["config"]["seed"] for j in sweeps.expand(sweeps.preset("paper", "smoke"))]
    assert seeds == sorted(seeds)


def test_grid_is_the_product_of_its_axes_and_base_beats_scale():
    spec = {"scale": "smoke", "base": {"epochs": 5},
            "conditions": ["random", "cross"], "ratios": [0.25, 0.75], "seeds": [0, 1],
            "encoders": ["efficientnet-lite2", "other-encoder"], "lm_inits": ["pretrained", "random"]}
    jobs = sweeps.expand(spec)
    assert len(jobs) == 3 * 2 * 2 * 2
    cfgs = [j["spec"]["config"] for j in jobs]
    assert {c["condition"] for c in cfgs} == {"random:0.25", "random:0.75", "cross"}
    assert all(c["epochs"] == 5 and c["max_concepts"] == sweeps.SCALES["smoke"]["max_concepts"] for c in cfgs)
    assert len({json.dumps(c, sort_keys=True) for c in cfgs}) == len(cfgs)


def test_duplicate_runs_are_submitted_once():
    jobs = sweeps.expand({"grids": [{"conditions": ["none"], "seeds": [0]},
                                    {"conditions": ["none", "cross"], "seeds": [0]}]})
    assert [j["spec"]["config"]["condition"] for j in jobs] == ["none", "cross"]


@pytest.mark.parametrize("spec, message", [
    ({"conditions": ["random"]}, "needs 'ratios'"),
    ({"conditions": []}, "non-empty list"),
    ({"colours": ["red"]}, "unknown field"),
    ({"grids": [{"kind": "predict"}]}, "kind must be 'train' or 'baseline'"),
    ({"grids": [{"seeds": [0], "typo": 1}]}, "unknown field"),
    ({"scale": "huge"}, "unknown scale"),
    ({"conditions": ["none"], "grids": [{}]}, "not both"),
])
def test_bad_grid_specs_say_what_is_wrong(spec, message):
    with pytest.raises(JobSpecError, match=message):
        sweeps.expand(spec)


def test_resolve_presets_files_and_missing(tmp_path):
    assert sweeps.resolve("paper", scale="full")["scale"] == "full"
    f = tmp_path / "grid.json"
    f.write_text(json.dumps({"conditions": ["cross"], "seeds": [4]}))
    assert sweeps.resolve(f, scale="smoke") == {"conditions": ["cross"], "seeds": [4], "scale": "smoke"}
    assert sweeps.resolve({"preset": "paper"})["name"] == f"paper-{sweeps.DEFAULT_SCALE}"
    with pytest.raises(JobSpecError, match="no sweep preset or spec file"):
        sweeps.resolve(str(tmp_path / "missing.json"))
    f.write_text("{not json")
    with pytest.raises(JobSpecError, match="cannot read sweep spec"):
        sweeps.resolve(f)


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    mean, low, high = sweeps.bootstrap_ci([0.2, 0.4, 0.9])
    assert mean == pytest.approx(0.5)
    assert 0.2 <= low < mean < high <= 0.9
    assert sweeps.bootstrap_ci([0.2, 0.4, 0.9]) == (mean, low, high)
    assert sweeps.bootstrap_ci([0.3]) == (0.3, 0.3, 0.3)
    assert sweeps.bootstrap_ci([0.6, 0.6]) == (0.6, 0.6, 0.6)


def _metrics(unseen_correct: bool) -> dict:
    rows = [
        {"kind": "leaf", "target": "dog", "answer": True, "pred": True, "seen": True, "mass": 0.9},
        {"kind": "hypernym", "target": "mammal", "answer": True, "pred": True, "seen": True, "mass": 0.9},
        {"kind": "hypernym", "target": "fish", "answer": True, "pred": unseen_correct, "seen": False,
         "mass": 0.9},
    ]
    return summarize(rows)


def test_aggregate_means_and_cis_per_condition_and_metric():
    rows = [{"kind": "train", "condition": "random:0.5", "lm_init": "pretrained", "encoder": "e", "lm": "l",
             "baseline": None, "seed": s, "metrics": _metrics(unseen_correct=s != 2)} for s in range(3)]
    rows.append({"kind": "train", "condition": "cross", "lm_init": "pretrained", "encoder": "e", "lm": "l",
                 "baseline": None, "seed": 0, "metrics": None})  # unfinished: skipped
    table = sweeps.aggregate(rows)
    unseen = table[(table.condition == "random:0.5") & (table.metric == "unseen_f1")].iloc[0]
    assert unseen["mean"] == pytest.approx(2 / 3) and unseen["n_seeds"] == 3
    assert unseen["ci_low"] <= unseen["mean"] <= unseen["ci_high"]
    assert unseen["ci_low"] == pytest.approx(0.0) and unseen["ci_high"] == pytest.approx(1.0)
    seen = table[(table.condition == "random:0.5") & (table.metric == "seen_f1")].iloc[0]
    assert (seen["mean"], seen["ci_low"], seen["ci_high"]) == (1.0, 1.0, 1.0)
    assert set(table.condition) == {"random:0.5"}
    assert list(table.columns) == sweeps.GROUP_COLUMNS + ["metric", "mean", "ci_low", "ci_high", "n_seeds"]


def test_undefined_metrics_average_over_seeds_where_defined():
    rows = [{"kind": "baseline", "condition": "none", "baseline": "majority", "seed": s,
             "metrics": {"accuracy": 0.5 + 0.1 * s, "unseen_f1": None if s else 0.3}} for s in range(2)]
    table = sweeps.aggregate(rows).set_index("metric")
    assert table.loc["accuracy", "mean"] == pytest.approx(0.55) and table.loc["accuracy", "n_seeds"] == 2
    assert table.loc["unseen_f1", "n_seeds"] == 1
    assert sweeps.aggregate([]).empty
