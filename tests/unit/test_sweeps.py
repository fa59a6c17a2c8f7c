"""Sweep expansion (grids, the `paper` and `lms` presets, scales) and aggregation across seeds."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from collections import Counter

import pytest

from core.config import TrainConfig
from core.jobs import sweeps
from core.jobs.kinds import JobSpecError
from core.metrics import summarize


def _conditions(jobs, kind="train", lm_init="pretrained"):
    return Counter(j["spec"]["config"]["condition"] for j in jobs
                   if j["kind"] == kind and j["spec"]["config"]["lm_init"] == lm_init)


def test_paper_preset_is_the_papers_grid_for_three_seeds():
    jobs = sweeps.expand(sweeps.preset("paper", "cpu"))
    ratios = ["random:0", "random:0.25", "random:0.5", "random:0.75", "random:1"]
    assert _conditions(jobs) == {c: 3 for c in ratios + ["systematic:10", "systematic:20", "cross", "within",
                                                        "cross+random:0.5", "within+random:0.5"]}
    assert _conditions(jobs, lm_init="random") == {c: 3 for c in ratios}     # the control at every r
    baselines = Counter((j["spec"]["baseline"], j["spec"]["config"]["seed"]) for j in jobs
                        if j["kind"] == "baseline")
    assert baselines == {(kind, s): 1 for kind in ("majority", "image-probe") for s in (0, 1, 2)}
    probes = [j["spec"] for j in jobs if j["kind"] == "probe"]
    assert probes == [{"lm": "smollm2-135m", "dataset": "concepts", "lm_init": "pretrained", "seed": 0}]
    assert len(jobs) == 33 + 15 + 6 + 1
    assert all(j["spec"]["config"]["max_concepts"] == sweeps.SCALES["cpu"]["max_concepts"]
               for j in jobs if j["kind"] != "probe")


def test_smoke_preset_removes_fewer_categories_and_skips_the_probe():
    jobs = sweeps.expand(sweeps.preset("paper", "smoke"))
    assert {"systematic:5", "systematic:10"} <= set(_conditions(jobs))
    assert not [j for j in jobs if j["kind"] == "probe"]


def test_lms_preset_trains_each_lm_with_each_prompt_format_it_has():
    from core.models import registry
    assert {lm for lm, _ in sweeps.LM_FORMATS} == set(registry.LMS)
    assert sweeps.LM_FORMATS == (("smollm2-135m", "plain"), ("smollm2-135m", "chat"), ("gemma3-270m", "plain"))
    spec = sweeps.preset("lms", "full")
    jobs = sweeps.expand(spec)
    trained = Counter((j["spec"]["config"]["lm"], j["spec"]["config"]["prompt"], j["spec"]["config"]["condition"])
                      for j in jobs if j["kind"] == "train")
    assert trained == {(lm, fmt, cond): 3 for lm, fmt in sweeps.LM_FORMATS for cond in ("random:0", "random:1")}
    assert sorted(j["spec"]["lm"] for j in jobs if j["kind"] == "probe") == ["gemma3-270m", "smollm2-135m"]
    assert spec["name"] == "lms-full" and sweeps.resolve("lms", "smoke")["name"] == "lms-smoke"
    assert not [j for j in sweeps.expand(sweeps.preset("lms", "smoke")) if j["kind"] == "probe"]
    # its SmolLM2-plain runs have exactly the paper preset's configs, so a sweep run trains them once
    from core.config import TrainConfig
    configs = lambda jobs: {json.dumps(TrainConfig.from_dict(j["spec"]["config"]).to_dict(), sort_keys=True)
                            for j in jobs if j["kind"] == "train"}
    shared = configs(jobs) & configs(sweeps.expand(sweeps.preset("paper", "full")))
    assert len(shared) == 6 and all('"prompt": "plain"' in c and '"lm": "smollm2-135m"' in c for c in shared)
    # and a dry run's lines tell them apart
    from core.jobs import kinds
    lines = [kinds.get("train").describe(j["spec"]) for j in jobs if j["kind"] == "train"][:6]
    assert lines == ["train random:0 seed 0", "train random:1 seed 0", "train random:0 seed 0 chat prompt",
                     "train random:1 seed 0 chat prompt", "train random:0 seed 0 gemma3-270m",
                     "train random:1 seed 0 gemma3-270m"]


def test_probe_grids_cross_lms_and_inits():
    jobs = sweeps.expand({"kind": "probe", "lms": ["smollm2-135m", "gemma3-270m"],
                          "lm_inits": ["pretrained", "random"], "seeds": [0]})
    assert sorted((j["spec"]["lm"], j["spec"]["lm_init"]) for j in jobs) == [
        ("gemma3-270m", "pretrained"), ("gemma3-270m", "random"),
        ("smollm2-135m", "pretrained"), ("smollm2-135m", "random")]
    assert {j["kind"] for j in jobs} == {"probe"}


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
    ({"grids": [{"kind": "predict"}]}, "kind must be 'train', 'baseline' or 'probe'"),
    ({"grids": [{"seeds": [0], "typo": 1}]}, "unknown field"),
    ({"scale": "huge"}, "unknown scale"),
    ({"scale": ["cpu"], "conditions": ["none"]}, "unknown scale"),          # was a TypeError traceback
    ({"conditions": ["random"], "ratios": [0.5], "config": [1]}, "config must be an object"),
    ({"grids": [{"conditions": ["none"], "config": "x"}]}, "config must be an object"),
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


def test_a_preset_runs_on_another_dataset_under_a_name_of_its_own(tmp_path):
    """Reported: a preset sweep took only a scale, so the paper grid could not run on an imported
    collection without copying the preset into a spec file."""
    plain = sweeps.expand(sweeps.preset("paper", "full"))
    grid = sweeps.resolve({"preset": "paper", "scale": "full", "base": {"dataset": "things"}})
    assert grid["name"] == "paper-full-things"
    jobs = sweeps.expand(grid)
    assert len(jobs) == len(plain)
    assert {j["spec"]["config"]["dataset"] for j in jobs if "config" in j["spec"]} == {"things"}
    assert {j["spec"]["dataset"] for j in jobs if j["kind"] == "probe"} == {"things"}
    # the scale's subset still applies under the base; other options name the sweep by a hash
    smoke = sweeps.resolve("paper", "smoke", base={"dataset": "things", "epochs": 3})
    assert smoke["name"].startswith("paper-smoke-things-") and len(smoke["name"]) == len("paper-smoke-things-") + 6
    assert {(j["spec"]["config"]["epochs"], j["spec"]["config"]["max_concepts"])
            for j in sweeps.expand(smoke) if "config" in j["spec"]} == {(3, 40)}
    assert sweeps.resolve("paper", "smoke", base={"dataset": "things", "epochs": 4})["name"] != smoke["name"]
    # an option is named by its effect: one spelling of a split, nothing for what the spec already gives
    assert sweeps.resolve("paper", "cpu", {"split_percent": "70,5,25"})["name"] == \
        sweeps.resolve("paper", "cpu", {"split_percent": "0.7/0.05/0.25"})["name"] != "paper-cpu"
    assert sweeps.resolve("paper", "cpu", {"epochs": TrainConfig.epochs, "split_percent": "60/20/20"})["name"] == "paper-cpu"
    # what a grid varies or sets itself would not reach its runs: refused, not silently renamed
    for preset_name, option, message in (("paper", {"seed": 7}, "what a sweep's grids vary"),
                                         ("paper", {"condition": "none"}, "what a sweep's grids vary"),
                                         ("lms", {"prompt": "chat"}, "sets prompt itself")):
        with pytest.raises(JobSpecError, match=message):
            sweeps.resolve(preset_name, "cpu", option)
    assert sweeps.expand(sweeps.resolve({"conditions": ["cross"]}, "cpu", {"seed": 7}))[0]["spec"]["config"]["seed"] == 7
    # the default dataset keeps the preset's own name (and its runs' manifest)
    assert sweeps.resolve("lms", "cpu", base={"dataset": TrainConfig.dataset})["name"] == "lms-cpu"
    # a spec file's own base, with the command line's over it
    f = tmp_path / "grid.json"
    f.write_text(json.dumps({"name": "mine", "base": {"epochs": 2}, "conditions": ["cross"], "seeds": [0]}))
    mine = sweeps.resolve(f, base={"dataset": "things"})
    assert mine["name"] == "mine-things" and mine["base"] == {"epochs": 2, "dataset": "things"}
    # a spec on its own dataset, and the same spec moved to the default one, are two sweeps
    f.write_text(json.dumps({"name": "mine", "base": {"dataset": "things"}, "conditions": ["cross"], "seeds": [0]}))
    assert sweeps.resolve(f)["name"] == "mine" and sweeps.resolve(f, base={"dataset": "things"})["name"] == "mine"
    assert sweeps.resolve(f, base={"dataset": TrainConfig.dataset})["name"] == f"mine-{TrainConfig.dataset}"
    for bad, message in (({"epoch": 2}, "unknown training option"), ({"dataset": ""}, "a dataset's name")):
        with pytest.raises(JobSpecError, match=message):
            sweeps.resolve("paper", base=bad)
    with pytest.raises(JobSpecError, match="base must be an object"):
        sweeps.resolve({"preset": "paper", "base": ["things"]})
    with pytest.raises(JobSpecError, match="takes only 'scale' and 'base'"):
        sweeps.resolve({"preset": "paper", "grids": []})
    with pytest.raises(JobSpecError, match="unknown scale 'huge'"):      # not a KeyError from the category count
        sweeps.expand(sweeps.resolve({"preset": "paper", "scale": "huge", "base": {"dataset": "things"}}))


def test_the_paper_preset_removes_the_same_share_of_another_datasets_categories(tiny):
    """Reported: on an imported collection of fewer than 20 categories the paper preset could not be
    queued at all ("systematic:20 asks for more categories than dataset ... has"). The default set
    keeps 10 and 20 of its 40; another dataset loses a quarter and a half of its own."""
    from core import conditions
    from core.data import datasets
    from tiny_concepts import tiny_dataset

    def systematic(grid):
        return sorted({j["spec"]["config"]["condition"] for j in sweeps.expand(grid)
                       if j["spec"].get("config", {}).get("condition", "").startswith("systematic")})

    assert systematic(sweeps.preset("paper", "full")) == ["systematic:10", "systematic:20"]
    assert systematic(sweeps.preset("paper", "smoke")) == ["systematic:10", "systematic:5"]
    assert len(conditions.used_categories(tiny_dataset())) == 8
    got = systematic(sweeps.preset("paper", "full", {"dataset": "tiny"}))
    assert got == ["systematic:2", "systematic:4"]                      # a quarter and half of 8
    for condition in got:                                   # each one applies to the collection
        conditions.parse_condition(condition).check(datasets.load_dataset("tiny"))
    # counted on the subsets the runs train on: 3 concepts of 14 keep only some of the 8 categories
    from core import rundata
    small = sweeps.preset("paper", "full", {"dataset": "tiny", "max_concepts": 3})
    subsets = [rundata.load_subset(TrainConfig(dataset="tiny", max_concepts=3, seed=s))[0] for s in (0, 1, 2)]
    fewest = min(len(conditions.used_categories(d)) for d in subsets)
    assert fewest < 8 and systematic(small) == sorted(f"systematic:{k}" for k in sweeps.systematic_counts("full", fewest))
    for condition in systematic(small):
        for d in subsets:
            conditions.parse_condition(condition).check(d)
    assert sweeps.systematic_counts("full", 53) == [13, 27] and sweeps.systematic_counts("smoke", 3) == [1]
    # a dataset that cannot be read keeps the default's grid; its jobs' validation says why
    assert systematic(sweeps.preset("paper", "full", {"dataset": "nowhere"})) == ["systematic:10", "systematic:20"]


def test_sweep_results_read_train_and_probe_children(tmp_path):
    from core import results
    from core.jobs.store import JobStore

    store = JobStore(tmp_path / "jobs.db")
    sweep = store.submit("sweep", {"name": "s", "jobs": []})
    train, probe, failed = store.submit_many(
        [("train", {"config": {"condition": "random:0.5", "seed": 0, "lm_init": "pretrained"}}),
         ("probe", {"lm": "smollm2-135m", "dataset": "concepts", "lm_init": "pretrained", "seed": 0}),
         ("train", {"config": {"condition": "random:0.5", "seed": 1, "lm_init": "pretrained"}})], parent_id=sweep)
    summary = {"kind": "probe", "chat_macro_f1": 0.6, "pairwise": 0.7}
    test = summarize([{"kind": "hypernym", "target": "animal", "answer": answer, "pred": True, "seen": True,
                       "mass": 0.9} for answer in (True, False)])
    store.finish(train, "succeeded", result={"metrics": {"test": test}})
    store.finish(probe, "succeeded", result={"metrics": {"probe": summary}})
    store.finish(failed, "failed", error="boom")
    rows = sweeps.sweep_results(store, sweep)
    assert [(r["kind"], r["status"], r["metrics"] is not None) for r in rows] == [
        ("train", "succeeded", True), ("probe", "succeeded", True), ("train", "failed", False)]
    table = results.aggregate(rows)
    assert table[(table.kind == "probe") & (table.metric == "chat_macro_f1")]["mean"].tolist() == [0.6]
    assert set(table[table.kind == "train"]["metric"]) >= {"seen_category_f1", "seen_chance_f1"}


def test_sweep_results_read_a_result_stored_before_todays_headline_from_its_run(tmp_path):
    """A job keeps the metrics it finished with; `sweep show` aggregated those, so a sweep finished
    before one-answer categories left the average kept its old seen F1 (always-no's 1.0 on a
    category of "no" questions alone) while Results and the report read the run again."""
    import csv

    from core import results
    from core.jobs.store import JobStore
    from core.scoring import ROW_FIELDS

    def q(target, answer, pred):
        return {"image_id": "i", "concept": "c", "labelled_concept": "c", "kind": "hypernym", "target": target,
                "text": "t", "answer": answer, "p_yes": 0.9 if pred else 0.1, "pred": pred, "mass": 0.9,
                "seen": True, "split": "test"}
    rows = [q("animal", True, True), q("animal", False, True), q("bird", False, False)]
    run = tmp_path / "run"
    (run / "eval" / "test").mkdir(parents=True)
    with open(run / "eval" / "test" / "questions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    old = summarize(rows)
    del old["hypernym"]["seen"]["n_one_answer"]
    old["hypernym"]["seen"]["category_macro_f1"] = (1.0 + 1 / 3) / 2       # bird's 1.0 counted then
    (run / "eval" / "test" / "metrics.json").write_text(json.dumps(old))
    store = JobStore(tmp_path / "jobs.db")
    sweep = store.submit("sweep", {"name": "s", "jobs": []})
    (train,) = store.submit_many([("train", {"config": {"condition": "random:0.5", "seed": 0,
                                                        "lm_init": "pretrained"}})], parent_id=sweep)
    store.finish(train, "succeeded", result={"run_dir": str(run), "metrics": {"test": old}})
    (row,) = sweeps.sweep_results(store, sweep)
    seen = row["metrics"]["hypernym"]["seen"]
    assert seen["category_macro_f1"] == pytest.approx(1 / 3) and seen["n_one_answer"] == 1   # animal alone
    assert results.readable(row["metrics"])


def test_time_estimate_is_the_median_of_finished_runs_of_the_same_size(tmp_path, monkeypatch):
    """The sweep form said "55 jobs" and nothing about the hours they take."""
    from types import SimpleNamespace

    from core import runs
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))          # no dataset installed: every run current
    spec = {"conditions": ["random"], "ratios": [0, 1], "seeds": [0, 1], "scale": "smoke"}
    cfg = TrainConfig.from_dict(sweeps.expand(spec)[0]["spec"]["config"])

    def run(minutes, status="finished", **change):
        return SimpleNamespace(status=status, config=dataclasses.replace(cfg, **change),
                               checkpoint={"metrics": [{"epoch": 1, "train_seconds": 60.0 * minutes}]})
    done = [run(2), run(4), run(9), run(1, status="partial"), run(50, epochs=7), run(60, max_concepts=20),
            run(70, lm="gemma3-270m"), run(0.01, max_steps=2), run(80, batch_size=64),   # other sizes: not timed by
            run(90, augment_views=2), run(95, device="cuda"), run(99, rank_negatives=8), run(98, name_loss=0.5),
            run(97, projector_tokens=1), run(96, split_percent="70/5/25")]               # ...nor other costs
    assert sweeps.time_estimate(spec, done) == {"train_runs": 4, "to_train": 4, "minutes": 4.0, "of": 3,
                                                "whole_jobs": False}
    # a seed, a condition or an optimiser setting leaves the cost alone: timed
    done += [run(3, seed=7, condition="cross", lr=3e-4, lm_init="random")]
    assert sweeps.time_estimate(spec, done)["minutes"] == 3.5
    assert sweeps.time_estimate(spec, []) == {"train_runs": 4, "to_train": 4, "minutes": None, "of": 0,
                                              "whole_jobs": False}
    # a run's train job, when one trained it in one go, times it whole (loading and evaluation too)
    timed = [run(2), run(4), run(9)]
    for info, name in zip(timed, ("a", "b", "c")):
        info.path = Path(f"/elsewhere/runs/{name}")
    jobs = [SimpleNamespace(kind="train", status="succeeded", run_dir="/data/runs/a", started=100.0, finished=100.0 + 360,
                            attempts=1, result={}),
            SimpleNamespace(kind="train", status="succeeded", run_dir="/data/runs/b", started=0.0, finished=1.0,
                            attempts=1, result={"reused": True}),                       # not trained by it
            SimpleNamespace(kind="train", status="succeeded", run_dir="/data/runs/c", started=0.0, finished=60.0,
                            attempts=2, result={}),                                     # retried: partial
            SimpleNamespace(kind="train", status="succeeded", run_dir="/data/runs/c", started=0.0, finished=30.0,
                            attempts=1, result={"resumed": True})]                      # a new job resumed it
    assert sweeps.time_estimate(spec, timed, jobs) == {"train_runs": 4, "to_train": 4, "minutes": 6.0, "of": 1,
                                                       "whole_jobs": True}
    timed[0].checkpoint["metrics"][0]["val_seconds"] = 30.0                # records alone: + validation
    assert sweeps.time_estimate(spec, timed, jobs[1:])["minutes"] == 4.0
    assert sweeps.time_estimate(spec, timed[:1], [])["minutes"] == 2.5
    finished = runs.create_run_dir(cfg)                          # one of the four is done here: reused
    runs.write_json(runs.checkpoint_json(finished), {"status": "finished", "epoch": 1})
    assert sweeps.time_estimate(spec, [])["to_train"] == 3
    assert sweeps.describe_scale("full") == "full: concepts: all, images per concept: all"


@pytest.mark.parametrize("spec, said", [
    ({}, "names no grid"),
    ({"name": "mine", "base": {"epochs": 1}}, "names no grid"),
    ({"name": "", "conditions": ["none"]}, "name must be a non-empty string"),
    ({"name": 7, "conditions": ["none"]}, "name must be a non-empty string"),
])
def test_a_spec_without_a_grid_or_with_an_empty_name_is_refused(spec, said):
    """Reported: `{}` expanded to one default run ("sweep sweep-cpu: 1 jobs") while `"grids": []` was
    refused, and `"name": ""` fell back to sweep-cpu without a word."""
    with pytest.raises(sweeps.kinds.JobSpecError, match=said):
        sweeps.expand(spec)
