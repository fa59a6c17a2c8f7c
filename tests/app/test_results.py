"""core.results on runs written to disk by app_data.fake_run: comparable settings, seed means with
95 % t-CIs, curves, older evaluations summarized again, probes beside the VLM, and the report."""
from __future__ import annotations

import copy
import json
import math

import pytest

from app_data import fake_run
from core import metrics, results, runs
from core.config import TrainConfig
from core.data import datasets


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"max_concepts": 6, "images_per_concept": 3, "epochs": 1, **kw})


def fake_baseline(kind: str, config: TrainConfig, tag: str = "") -> None:
    """A baseline evaluation whose hypernym per-category macro-F1 is 0.4 (animal: TP 1, FP 2, FN 1,
    TN 1 -> yes F1 0.4, no F1 0.4), through core.metrics."""
    folder = runs.baselines_dir() / f"{kind}_{config.max_concepts}_{config.condition}_s{config.seed}{tag}"
    runs.write_json(folder / "config.json", {"baseline": kind, **config.to_dict()})
    pairs = [(True, True), (True, False), (False, True), (False, True), (False, False)]
    rows = [{"kind": "hypernym", "target": "animal", "answer": a, "pred": p, "seen": True, "mass": 0.9}
            for a, p in pairs] + [{"kind": "leaf", "target": "dog", "answer": True, "pred": True,
                                   "seen": True, "mass": 0.9}]
    installed = datasets.version_sha256(datasets.load_dataset(config.dataset))
    runs.write_json(runs.eval_dir(folder, "test") / "metrics.json",
                    {**metrics.summarize(rows), "dataset_sha256": installed})


def fake_probe(lm: str, dataset: str, per_category: dict[str, float]) -> None:
    from core import paths
    folder = paths.runs_dir() / "probes" / f"{lm}_{dataset}"
    cats = {k: {"chat_macro_f1": v, "plain_macro_f1": 0.3, "pairwise": v, "sentence": 0.5} for k, v in per_category.items()}
    runs.write_json(folder / "metrics.json", {"kind": "probe", "lm": lm, "lm_init": "pretrained", "dataset": dataset,
                                              "seed": 0, "n_pairs": 10, "chat_macro_f1": 0.6, "chat_accuracy": 0.6,
                                              "plain_macro_f1": 0.3, "plain_accuracy": 0.5, "pairwise": 0.7,
                                              "sentence": 0.8, "chance_macro_f1": 0.45,
                                              "chat_template": "chat template", "per_category": cats})


def test_t_ci_by_hand():
    mean, lo, hi = results.t_ci([0.2, 0.4, 0.9])
    # mean 0.5, sd = sqrt((0.09 + 0.01 + 0.16) / 2) = sqrt(0.13); t_{0.975, 2} = 4.302653
    half = 4.302653 * math.sqrt(0.13) / math.sqrt(3)
    assert mean == pytest.approx(0.5) and lo == pytest.approx(0.5 - half, abs=1e-5)
    assert hi == pytest.approx(0.5 + half, abs=1e-5)
    assert results.t_ci([0.2, 0.4, 0.9], bounds=(0.0, 1.0)) == (pytest.approx(0.5), 0.0, 1.0)
    assert results.t_ci([0.3]) == (0.3, None, None)
    assert results.t_ci([0.6, 0.6]) == (pytest.approx(0.6), pytest.approx(0.6), pytest.approx(0.6))
    with pytest.raises(ValueError):
        results.t_ci([])


def _metrics(unseen_correct: bool) -> dict:
    rows = [
        {"kind": "leaf", "target": "dog", "answer": True, "pred": True, "seen": True, "mass": 0.9},
        {"kind": "hypernym", "target": "mammal", "answer": True, "pred": True, "seen": True, "mass": 0.9},
        {"kind": "hypernym", "target": "mammal", "answer": False, "pred": False, "seen": True, "mass": 0.9},
        {"kind": "hypernym", "target": "fish", "answer": True, "pred": unseen_correct, "seen": False, "mass": 0.9},
        {"kind": "hypernym", "target": "fish", "answer": False, "pred": not unseen_correct, "seen": False,
         "mass": 0.9},
    ]
    return metrics.summarize(rows)


def test_aggregate_means_and_t_cis_per_condition_and_metric():
    rows = [{"kind": "train", "condition": "random:0.5", "lm_init": "pretrained", "encoder": "e", "lm": "l",
             "baseline": None, "seed": s, "metrics": _metrics(unseen_correct=s != 2)} for s in range(3)]
    rows.append({"kind": "train", "condition": "cross", "lm_init": "pretrained", "encoder": "e", "lm": "l",
                 "baseline": None, "seed": 0, "metrics": None})  # unfinished: skipped
    table = results.aggregate(rows)
    unseen = table[(table.condition == "random:0.5") & (table.metric == "unseen_category_f1")].iloc[0]
    # per seed 1, 1, 0 -> mean 2/3, sd = sqrt(1/3), t_{0.975,2} = 4.3027
    half = 4.302653 * math.sqrt(1 / 3) / math.sqrt(3)
    assert unseen["mean"] == pytest.approx(2 / 3) and unseen["n_seeds"] == 3
    assert 2 / 3 - half < 0 and 2 / 3 + half > 1                          # an F1's interval stays in [0, 1]
    assert (unseen["ci_low"], unseen["ci_high"]) == (0.0, 1.0)
    seen = table[(table.condition == "random:0.5") & (table.metric == "seen_category_f1")].iloc[0]
    assert (seen["mean"], seen["ci_low"], seen["ci_high"]) == (1.0, 1.0, 1.0)
    chance = table[(table.condition == "random:0.5") & (table.metric == "unseen_chance_f1")].iloc[0]
    assert chance["mean"] == pytest.approx(0.5)
    assert set(table.condition) == {"random:0.5"}
    assert list(table.columns) == results.AGGREGATE_COLUMNS
    wide = results.wide(table)
    assert list(wide.columns[:3]) == ["kind", "condition", "lm_init"] and wide.iloc[0]["n"] == 3
    assert wide.iloc[0]["unseen_category_f1"].startswith("0.667 [")


def test_only_shares_have_their_intervals_clipped():
    rows = [{"kind": "train", "condition": "random:0.5", "lm_init": "pretrained", "encoder": "e", "lm": "l",
             "baseline": None, "seed": s, "metrics": {"train_seconds": v}} for s, v in enumerate((0.2, 0.4, 3.0))]
    (rec,) = results.aggregate(rows).to_dict("records")
    assert rec["metric"] == "train_seconds" and rec["ci_low"] < 0 and rec["ci_high"] > 3


def test_prompt_formats_are_separate_groups_but_baselines_ignore_them():
    def row(kind, prompt, seed, baseline=None):
        return {"kind": kind, "condition": "random:0.5", "lm_init": "pretrained", "encoder": "e", "lm": "l",
                "prompt": prompt, "baseline": baseline, "seed": seed, "name": f"{kind}{prompt}{seed}",
                "metrics": _metrics(unseen_correct=True)}
    rows = [row("train", p, s) for p in ("plain", "chat") for s in (0, 1)]
    table = results.aggregate(rows)
    seen = table[table.metric == "seen_category_f1"]
    assert sorted(seen.prompt) == ["chat", "plain"] and set(seen.n_seeds) == {2}
    # the report's aggregation: two seeds of one baseline written under different prompts are one group
    base = results.aggregated([row("baseline", "plain", 0, "majority"), row("baseline", "chat", 1, "majority")])
    assert set(base[base.metric == "seen_category_f1"].n_seeds) == {2}


def test_undefined_metrics_average_over_seeds_where_defined():
    rows = [{"kind": "baseline", "condition": "none", "baseline": "majority", "seed": s,
             "metrics": {"accuracy": 0.5 + 0.1 * s, "unseen_f1": None if s else 0.3}} for s in range(2)]
    table = results.aggregate(rows).set_index("metric")
    assert table.loc["accuracy", "mean"] == pytest.approx(0.55) and table.loc["accuracy", "n_seeds"] == 2
    assert table.loc["unseen_f1", "n_seeds"] == 1 and math.isnan(table.loc["unseen_f1", "ci_low"])
    assert results.aggregate([]).empty


def test_correlations():
    c = results.correlations([0.1, 0.2, 0.3, 0.4], [0.2, 0.1, 0.5, 0.9])
    assert c["n"] == 4 and c["spearman"] == pytest.approx(0.8) and 0 < c["pearson"] < 1
    assert results.correlations([0.1, 0.2], [0.3, 0.4])["spearman"] is None          # too few
    assert results.correlations([0.1, 0.1, 0.1], [0.3, 0.4, 0.5])["pearson"] is None  # constant


def test_runs_of_two_settings_are_never_averaged_as_seeds(data_dir):
    """Reported: a 6-concept test run and the 385-concept shipped run, both seed 0, came out of
    aggregated(collect()) as one group of n = 2 with a [0.000, 1.000] interval."""
    fake_run(cfg(seed=0))
    fake_run(cfg(seed=0, epochs=2))                     # another setting, the same group columns
    rows = results.collect()
    with pytest.raises(results.ConfigError, match=r"different settings in one group \(.* 1 epoch; .* 2 epochs\).*"
                                                   r"results.in_setting\(rows, key\)"):
        results.aggregated(rows)
    tables = [results.aggregated(results.in_setting(rows, key)) for key in results.settings(rows)]
    assert len(tables) == 2 and all(set(t["n_seeds"]) == {1} for t in tables)


def test_baselines_alone_still_aggregate_when_no_run_is_evaluated_yet(data_dir):
    """The Results page with only baselines (they finish in seconds, runs take hours) aggregates all
    rows; baselines of two subsets must not make it fail."""
    fake_baseline("majority", cfg(seed=0))
    fake_baseline("majority", cfg(seed=0, max_concepts=5))
    assert not results.aggregated(results.collect()).empty


def test_collect_reads_evaluated_runs_baselines_and_probes(data_dir):
    run = fake_run(cfg(seed=0))
    fake_run(cfg(seed=1), evaluated=False)
    fake_baseline("majority", cfg())
    fake_probe("smollm2-135m", "concepts", {"animal": 0.5})
    rows = results.collect()
    assert sorted(r["kind"] for r in rows) == ["baseline", "probe", "train"]
    train = next(r for r in rows if r["kind"] == "train")
    assert train["name"] == run.name and "device" in train and "git_commit" in train


def test_one_config_trained_twice_is_one_row_the_newest(data_dir):
    older, newer = fake_run(cfg(seed=0)), fake_run(cfg(seed=0))
    ck = runs.checkpoint_json(older)                  # created a day earlier
    runs.write_json(ck, {**runs.read_json(ck), "created": "2026-01-01T00:00:00+00:00"})
    fake_run(cfg(seed=1))
    repeated: list[str] = []
    names = sorted(r["name"] for r in results.collect(repeated=repeated) if r["kind"] == "train")
    assert len(names) == 2 and newer.name in names and older.name not in names
    assert repeated == [older.name]                   # named, so a report can say it counted it once
    text = results.report_markdown(results.collect(), repeated=repeated)
    assert f"Counted once: 1 older run(s) of a config trained again" in text and older.name in text
    big, whole = fake_run(cfg(seed=2, max_concepts=1000)), fake_run(cfg(seed=3, max_concepts=None))
    rows = {r["name"]: r for r in results.collect() if r["kind"] == "train"}
    assert rows[big.name]["max_concepts"] is None          # a limit the data does not reach: all of it
    assert results.setting_key(rows[big.name]) == results.setting_key(rows[whole.name])     # one setting


def test_one_baseline_written_twice_is_one_row_not_two_seeds(data_dir):
    fake_baseline("image-probe", cfg(lm="other-lm", epochs=9, weight_decay=0.1), tag="_b")  # same probe,
    fake_baseline("image-probe", cfg(), tag="_a")                                          # written first
    import os
    later = runs.eval_dir(runs.baselines_dir() / "image-probe_6_none_s0_b", "test") / "metrics.json"
    os.utime(later, (later.stat().st_mtime + 60, later.stat().st_mtime + 60))            # ... but newer
    fake_baseline("image-probe", cfg(seed=1))                             # another seed
    fake_baseline("image-probe", cfg(encoder="other-encoder"), tag="_c")  # another image side
    fake_baseline("majority", cfg(encoder="other-encoder"))               # majority: no encoder
    rows = [r for r in results.collect() if r["kind"] == "baseline"]
    assert sorted(r["name"].split("/")[1] for r in rows) == [
        "image-probe_6_none_s0_b", "image-probe_6_none_s0_c", "image-probe_6_none_s1", "majority_6_none_s0"]


def test_a_baseline_written_under_another_config_is_found(data_dir):
    from core.evaluate import find_baseline_dir
    assert find_baseline_dir("image-probe", cfg()) is None
    fake_baseline("image-probe", cfg(lm="other-lm", epochs=9), tag="_old")     # a folder of another name
    assert find_baseline_dir("image-probe", cfg()).name == "image-probe_6_none_s0_old"
    assert find_baseline_dir("image-probe", cfg(seed=1)) is None
    assert find_baseline_dir("majority", cfg()) is None


def test_default_baseline_folder_depends_only_on_what_the_baseline_depends_on():
    from core.evaluate import default_baseline_dir
    same = default_baseline_dir("image-probe", cfg()), default_baseline_dir("image-probe", cfg(lm="x", epochs=3))
    assert same[0] == same[1]
    assert default_baseline_dir("image-probe", cfg(encoder="e")) != same[0]
    assert default_baseline_dir("majority", cfg(encoder="e")) == default_baseline_dir("majority", cfg())


def test_settings_group_runs_and_attach_matching_baselines(data_dir):
    for seed in (0, 1, 2):
        fake_run(cfg(seed=seed, condition="random:0.5"))
    fake_run(cfg(seed=0, epochs=2))                                  # another setting
    fake_baseline("majority", cfg())
    fake_baseline("majority", cfg(max_concepts=7))                   # other data: not comparable
    rows = results.collect()
    first, second = results.settings(rows)
    assert dict(first)["epochs"] == 1                                # most runs first
    chosen = results.in_setting(rows, first)
    assert sum(r["kind"] == "train" for r in chosen) == 3
    assert [r["baseline"] for r in chosen if r["kind"] == "baseline"] == ["majority"]
    assert "(6 concepts)" in results.describe_setting(first)       # 3 images per concept: all the fixture has
    assert "gelu-mlp, 1 pooled token → 4 LM tokens · 1 epoch" in results.describe_setting(first)
    assert "4 pooled tokens → 8 LM tokens" in results.describe_setting(
        results.setting_key(cfg(image_tokens=4, projector_tokens=2).to_dict()))
    assert "lr=0.5" in results.describe_setting(results.setting_key({**cfg().to_dict(), "lr": 0.5}))


def test_leaf_stages_of_one_recipe_are_one_setting_across_seeds(data_dir):
    firsts = {seed: fake_run(cfg(seed=seed)) for seed in (0, 1)}
    other = fake_run(cfg(seed=0, lr=0.5))                   # another first stage
    for seed, first in firsts.items():
        fake_run(cfg(seed=seed, epochs=2, lr=3e-4, init_from=first.name))
    fake_run(cfg(seed=1, epochs=2, lr=3e-4, init_from=other.name))
    fake_run(cfg(seed=2, epochs=2, lr=3e-4, init_from="gone-from-disk"))
    seconds = {seed: fake_run(cfg(seed=seed, epochs=2, lr=3e-4, init_from=first.name))
               for seed, first in firsts.items()}
    for seed, second in seconds.items():                    # stages of stages: their chains differ
        fake_run(cfg(seed=seed, epochs=3, lr=1e-4, init_from=second.name))
    rows = results.collect()
    stages = [r for r in rows if r["kind"] == "train" and r["init_from"]]
    assert len(stages) == 6          # the repeated second stages are one row each (trained twice)
    by_setting = {}
    for r in stages:
        by_setting.setdefault(results.setting_key(r), []).append(r["seed"])
    assert sorted(map(sorted, by_setting.values())) == [[0], [0, 1], [1], [1], [2]]
    labels = {dict(k)["init_from"]: sorted(seeds) for k, seeds in by_setting.items()}
    assert labels["(a first stage with epochs=1, lr=0.001)"] == [0, 1]
    assert labels["(a first stage with epochs=1, lr=0.5)"] == [1]
    assert labels["gone-from-disk"] == [2]
    assert {k for k in labels if "init_from=" in k} == {
        f"(a first stage with epochs=2, lr=0.0003, init_from={firsts[s].name})" for s in (0, 1)}
    merged = next(k for k, seeds in by_setting.items() if sorted(seeds) == [0, 1])
    assert "init_from=(a first stage with epochs=1, lr=0.001)" in results.describe_setting(merged)


def test_precision_auto_counts_as_what_it_resolved_to(data_dir):
    auto = fake_run(cfg(seed=0, precision="auto"))
    ck = runs.read_json(runs.checkpoint_json(auto))
    runs.write_json(runs.checkpoint_json(auto), {**ck, "precision": "bf16"})
    fake_run(cfg(seed=1, precision="bf16"))
    fake_run(cfg(seed=2, precision="fp32"))
    rows = results.collect()
    assert sorted(r["precision"] for r in rows) == ["bf16", "bf16", "fp32"]
    assert len(results.settings(rows)) == 2                  # auto-that-was-bf16 joins bf16


def test_aggregated_names_models(data_dir):
    for seed in (0, 1):
        fake_run(cfg(seed=seed, condition="random:0.5"))
        fake_run(cfg(seed=seed, condition="random:0.5", lm_init="random"))
    fake_baseline("majority", cfg())
    table = results.aggregated(results.collect())
    assert set(table["model"]) == {"pretrained LM", "random-init LM", "majority"}
    row = table[(table["model"] == "pretrained LM") & (table["metric"] == "leaf_concept_f1")].iloc[0]
    assert row["n_seeds"] == 2 and row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert results.baseline_levels(table) == {"majority": pytest.approx(0.4)}


def test_ratio_curve_rows_place_none_at_zero_and_skip_shuffles(data_dir):
    fake_run(cfg(condition="none"))
    fake_run(cfg(condition="random:0.5"))
    fake_run(cfg(condition="cross"))
    fake_run(cfg(condition="cross+random:0.5"))
    table = results.aggregated(results.collect())
    curve = results.ratio_curve_rows(table, metrics=("seen_category_f1",))
    assert sorted(r["ratio"] for r in curve) == [0.0, 0.5]
    assert {r["series"] for r in curve} == {"pretrained LM · seen"}
    assert [r["ratio"] for r in results.chance_curve_rows(table)] == [0.5]      # nothing unseen at r = 0
    assert results.ratio_of("systematic:2") is None and results.ratio_of("random:1") == 1.0
    assert results.ratio_of("cross+random:0.5") is None and results.ratio_of("pairs:0.5") is None


def test_older_evaluations_are_summarized_again_from_their_questions(data_dir):
    run_dir = fake_run(cfg(condition="random:0.5"))
    path = runs.eval_dir(run_dir, "test") / "metrics.json"
    current = runs.read_json(path)
    old = copy.deepcopy(current)
    del old["hypernym"]["seen"]["category_macro_f1"]
    runs.write_json(path, old)
    import os
    os.utime(path, ns=(10**18, 10**18))
    (row,) = results.collect()
    assert results.readable(row["metrics"]) and row["metrics"]["recomputed"]
    assert row["metrics"]["hypernym"]["seen"]["category_macro_f1"] == pytest.approx(
        current["hypernym"]["seen"]["category_macro_f1"])
    # written back once, with its old time (a stale evaluation of a resumed run stays stale)
    assert metrics.is_current(runs.read_json(path)) and path.stat().st_mtime_ns == 10**18
    (row,) = results.collect()
    assert results.readable(row["metrics"]) and not row["metrics"].get("recomputed")
    runs.write_json(path, old)
    (runs.eval_dir(run_dir, "test") / "questions.csv").unlink()      # nothing to summarize again
    (row,) = results.collect()
    assert not results.readable(row["metrics"])


def test_a_run_trained_under_the_former_random_is_listed_as_pairs(data_dir):
    from core import conditions
    from core.data import datasets
    run_dir = fake_run(cfg(condition="random:0.5"))
    ds = datasets.load_dataset("concepts").subset(6, 3, 0)
    old_report = conditions.parse_condition("pairs:0.5").apply(ds, 0).report
    ck = runs.read_json(runs.checkpoint_json(run_dir))
    runs.write_json(runs.checkpoint_json(run_dir), {**ck, "condition": {"spec": "random:0.5", "report": old_report}})
    (row,) = results.collect()
    assert row["condition"] == "pairs:0.5"


def test_per_category_macro_f1_table(data_dir):
    """Each cell is the mean over seeds of the per-category yes/no macro-F1 each run's metrics.json
    holds for that block (not its yes-class F1, not one seed's)."""
    dirs = [fake_run(cfg(condition="random:0.5", seed=seed)) for seed in (0, 1)]
    rows = results.collect()
    unseen = results.per_category(rows, "unseen")
    every = results.per_category(rows, "all")
    assert list(every.columns) == list(unseen.columns) == ["pretrained LM · random:0.5"]
    stored = [runs.load_metrics(d, "test")["hypernym"] for d in dirs]
    checked = 0
    for block, table in (("all", every), ("unseen", unseen)):
        for category in table.index:
            cells = [(h if block == "all" else h[block])["per_category"].get(category, {}) for h in stored]
            macro = [c["macro_f1_yes_no"] for c in cells if c.get("macro_f1_yes_no") is not None]
            assert table.loc[category].iloc[0] == pytest.approx(sum(macro) / len(macro)), (block, category)
            checked += 1
    assert checked >= 2 and set(unseen.index) <= set(every.index)
    cells = [c for h in stored for c in h["per_category"].values()]
    assert any(c.get("f1") != pytest.approx(c["macro_f1_yes_no"]) for c in cells)   # the data tells them apart


def test_probe_beside_the_vlm_per_category(data_dir):
    fake_run(cfg(condition="random:0.5"))
    rows = results.collect()
    every = results.per_category(rows, "all")
    cats = list(every.index)
    fake_probe("smollm2-135m", "concepts", {k: i / 10 for i, k in enumerate(cats)})
    rows = results.collect()
    (probe,) = results.probes_for(rows, "smollm2-135m", "concepts")
    table = results.probe_vs_vlm([r for r in rows if r["kind"] == "train"], probe["metrics"], "all")
    assert list(table.index) == sorted(cats)
    assert table.loc[cats[1], "chat_macro_f1"] == pytest.approx(0.1)
    assert table["vlm_macro_f1"].tolist() == pytest.approx(every.iloc[:, 0].reindex(sorted(cats)).tolist())
    assert results.probes_for(rows, "gemma3-270m", "concepts") == []


def test_report_lists_settings_runs_and_probes(data_dir):
    for seed in (0, 1):
        fake_run(cfg(seed=seed, condition="random:0.5"))
    fake_baseline("majority", cfg())
    fake_probe("smollm2-135m", "concepts", {"animal": 0.5})
    text = results.report_markdown(results.collect(), commit="abcdef1234567")
    assert text.startswith("# TaxoLens results") and "abcdef1234" in text
    assert "| random:0.5 | pretrained LM | 2 |" in text
    assert "| none | majority | 1 |" in text
    assert "LM knowledge probes" in text and "| smollm2-135m | pretrained | concepts | 10 | 0.600 | 0.600 |" in text
    assert "| 0.800 | 0.450 | chat template |" in text            # sentence, chance, template
    empty = results.report_markdown([], commit=None)
    assert "No evaluated training runs yet" in empty and "No probes yet" in empty


def test_lm_choice_compares_lm_and_prompt_pairs_of_one_setting(data_dir):
    from paper_data import cfg as paper_cfg, fake_graded_run

    def run(condition, seed, prompt="plain", leaf_error=0.0, unseen_error=0.0, **kw):
        return fake_graded_run(paper_cfg(condition=condition, seed=seed, prompt=prompt, **kw),
                               unseen_error=unseen_error, seen_error=0.0, leaf_error=leaf_error)

    for seed in (0, 1):
        run("random:0", seed)                                   # plain: every leaf right
        run("random:1", seed, unseen_error=float(seed))        # unseen all right (seed 0), all wrong (1)
    run("random:0", 0, prompt="chat", leaf_error=1.0)           # chat: every leaf wrong
    run("random:1", 0, prompt="chat", unseen_error=1.0)
    run("random:1", 1, prompt="chat", lm_init="random")         # the control: not an LM choice
    run("random:0", 0, epochs=2)                                # another setting, with one pair only
    fake_probe("smollm2-135m", "concepts", {"animal": 0.5})
    rows = results.collect()
    [(base, entries)] = results.lm_choice(rows)
    assert dict(base)["epochs"] == 1 and "prompt" not in dict(base) and "lm" not in dict(base)
    by = {(e["lm"], e["prompt"]): e for e in entries}
    assert set(by) == {("smollm2-135m", "plain"), ("smollm2-135m", "chat")}
    plain, chat = by["smollm2-135m", "plain"], by["smollm2-135m", "chat"]
    assert plain["leaf_accuracy"][0] == pytest.approx(1.0) and plain["leaf_accuracy"][3] == 2
    assert plain["unseen_category_f1"][0] == pytest.approx(0.5) and plain["unseen_category_f1"][3] == 2
    assert chat["leaf_accuracy"] == (pytest.approx(0.0), None, None, 1)
    assert chat["unseen_category_f1"][0] == pytest.approx(0.0) and chat["unseen_category_f1"][3] == 1
    assert plain["probe"]["name"] == chat["probe"]["name"] == "probes/smollm2-135m_concepts"
    text = results.report_markdown(rows)
    assert "## Which LM and prompt format" in text and "each LM" in text
    assert "| smollm2-135m | chat | 0.000 | 1.000 | 0.000 |" in text and "| 1 / 1 | 0.600 / 0.300 |" in text
    # One (LM, format) pair alone is no comparison.
    assert results.lm_choice([r for r in rows if r.get("prompt") != "chat"]) == []


def test_the_report_says_how_many_categories_were_scored_where_some_held_one_answer(data_dir):
    """After random ablation a one-concept category keeps only "no" among its seen questions: it has
    no yes/no macro-F1, and each run's row says how many categories its number is over."""
    from app_data import write_test_eval

    config = cfg(seed=0, condition="random:0.5")
    run = fake_run(config, evaluated=False)

    def q(target, answer, pred, kind="hypernym"):
        return {"image_id": f"i{target}{answer}{pred}", "concept": "dog", "labelled_concept": "dog", "kind": kind,
                "target": target, "text": "t", "answer": answer, "p_yes": 0.9 if pred else 0.1, "pred": pred,
                "mass": 0.95, "seen": True, "split": "test"}
    write_test_eval(run, [q("animal", True, True), q("animal", False, False),       # both answers: 1.0
                          q("vehicle", False, False), q("vehicle", False, True),    # "no" alone: left out
                          q("dog", True, True, "leaf"), q("dog", False, False, "leaf")], config)
    text = results.report_markdown(results.collect())
    assert f"| `{run.name}` | random:0.5 | pretrained LM | 0 | 1.000 (1 of 2 categories) | – | 1.000 |" in text
    assert "has no yes/no macro-F1 and is left out of the mean" in text


def test_the_results_tables_and_a_runs_answers_refuse_bad_arguments_in_one_line(data_dir):
    """Reported from a notebook: wide(table, metrics="leaf_accuracy") gave no metric columns,
    wide(table, metrics=["nonsense"]) a KeyError, per_category(rows, "bogus") an empty frame, and
    read_answers(run id) or a split never evaluated a bare FileNotFoundError."""
    run = fake_run(cfg(seed=0))
    rows = results.collect()
    table = results.aggregated(rows)
    assert list(results.wide(table, metrics="leaf_accuracy").columns)[-1] == "leaf_accuracy"
    with pytest.raises(results.ConfigError, match="none of the metrics 'nonsense' is in the table; it holds"):
        results.wide(table, metrics=["nonsense"])
    with pytest.raises(results.ConfigError, match="block must be all, seen or unseen, got 'bogus'"):
        results.per_category(rows, "bogus")
    by_id = runs.read_answers(run.name)
    assert by_id.equals(runs.read_answers(run)) and by_id["correct"].dtype == bool
    with pytest.raises(runs.RunError, match=rf"run {run.name} has no val evaluation .* --split val"):
        runs.read_answers(run, "val")
