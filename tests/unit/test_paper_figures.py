"""core.paper_figures on hand-made rows whose right answers are worked out by hand."""
from __future__ import annotations

import math
import sys

import pytest

from core import metrics, paper_figures as pf


def q(kind, target, answer, pred, seen=True):
    return {"kind": kind, "target": target, "answer": answer, "pred": pred, "seen": seen, "mass": 0.9}


def run(condition, seed, rows, lm_init="pretrained", name=None):
    return {"kind": "train", "condition": condition, "lm_init": lm_init, "seed": seed, "baseline": None,
            "name": name or f"{condition}_s{seed}_{lm_init}", "metrics": metrics.summarize(rows)}


def half_unseen(unseen_right: bool):
    """4 hypernym questions, 2 seen (right) and 2 unseen about 'fish' (both right or both wrong):
    unseen share 0.5, unseen per-category macro-F1 1 or 0; 2 leaf questions about 'dog', right."""
    return [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, False),
            q("hypernym", "fish", True, unseen_right, False), q("hypernym", "fish", False, not unseen_right, False),
            q("leaf", "dog", True, True), q("leaf", "dog", False, False)]


def three_of_seven_unseen(unseen_right: bool):
    """7 hypernym questions: 4 seen and right (mammal, bird: a yes and a no each; a fair coin's
    per-category macro-F1 0.5), 3 unseen about 'fish' (2 yes, 1 no: all right or all wrong). Unseen
    share 3/7, so seen share 4/7; the coin on fish (yes share 2/3): yes-F1 (2/3)/(2/3 + 1/2) = 4/7,
    no-F1 (1/3)/(3/2 - 2/3) = 2/5, macro 17/35 -- neither equal to its seen counterpart."""
    return [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, False),
            q("hypernym", "bird", True, True), q("hypernym", "bird", False, False),
            q("hypernym", "fish", True, unseen_right, False), q("hypernym", "fish", True, unseen_right, False),
            q("hypernym", "fish", False, not unseen_right, False),
            q("leaf", "dog", True, True), q("leaf", "dog", False, False)]


def test_ablation_of_places_random_and_systematic_on_the_axis_and_nothing_else():
    assert pf.ablation_of("random:0.5") == ("random", 0.5)
    assert pf.ablation_of("systematic:3") == ("systematic", 3.0)
    assert pf.ablation_of("systematic:mammal+fish") == ("systematic", 2.0)
    for other in ("none", "pairs:0.5", "cross", "cross+random:0.5", "nonsense"):
        assert pf.ablation_of(other) is None
    assert pf.labeling_of("cross+random:0.5") == "cross" and pf.labeling_of("within") == "within"
    assert pf.labeling_of("random:0.5") == "original"


def test_ablation_table_means_seen_share_unseen_f1_and_chance_over_seeds():
    rows = [run("random:0.5", 0, three_of_seven_unseen(True)), run("random:0.5", 1, three_of_seven_unseen(True)),
            run("random:0.5", 2, three_of_seven_unseen(False)),
            run("systematic:1", 0, half_unseen(True), lm_init="random"),
            run("none", 0, half_unseen(True)), run("cross+random:0.5", 0, half_unseen(True)),
            {"kind": "baseline", "condition": "random:0.5", "baseline": "majority", "metrics": {}}]
    table = pf.ablation_table(rows)
    assert list(table.columns) == pf.ABLATION_COLUMNS
    assert set(table["condition"]) == {"random:0.5", "systematic:1"}      # none / shuffles are elsewhere
    r = table[table["condition"] == "random:0.5"].iloc[0]
    # per seed unseen F1 1, 1, 0 -> mean 2/3, t_{0.975,2} * sqrt(1/3) / sqrt(3)
    half = 4.302653 * math.sqrt(1 / 3) / math.sqrt(3)
    assert r["unseen_f1"] == pytest.approx(2 / 3) and r["n_seeds"] == 3
    assert 2 / 3 - half < 0 and (r["ci_low"], r["ci_high"]) == (0.0, 1.0)       # clipped to [0, 1]
    assert r["seen_share"] == pytest.approx(4 / 7) and r["chance"] == pytest.approx(17 / 35)   # the unseen coin
    assert r["family"] == "random" and r["model"] == "pretrained LM" and r["nominal"] == 0.5
    s = table[table["condition"] == "systematic:1"].iloc[0]
    assert s["model"] == "random-init LM" and s["n_seeds"] == 1 and math.isnan(s["ci_low"])
    fig = pf.ablation_figure(table)
    names = [t.name for t in fig.data]
    assert names == ["pretrained LM · random", "random-init LM · systematic", "chance (fair coin)"]
    assert list(fig.data[0].x) == [pytest.approx(400 / 7)] and fig.data[1].line.dash == "dash"


def test_versus_gives_the_exact_line_and_rank_correlation():
    import pandas as pd

    t = pd.DataFrame({"label": list("abcd"), "x": [0.1, 0.2, 0.3, 0.4], "f1": [0.3, 0.5, 0.7, float("nan")]},
                     index=list("abcd"))
    s = pf.versus(t, "x")                          # y = 2x + 0.1 on the 3 finite points
    assert s["n"] == 3 and s["spearman"] == pytest.approx(1) and s["pearson"] == pytest.approx(1)
    assert s["slope"] == pytest.approx(2) and s["intercept"] == pytest.approx(0.1)
    flat = pf.versus(t.assign(x=0.5), "x")
    assert flat["slope"] is None and flat["spearman"] is None
    assert "undefined" in pf.stats_line(flat) and "Spearman ρ = 1.00" in pf.stats_line(s)
    assert pf.versus(t, "missing")["n"] == 0


def test_category_table_joins_f1_coherence_probe_and_depth():
    a = [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, False),      # macro-F1 1
         q("hypernym", "fish", True, False), q("hypernym", "fish", False, False)]         # yes F1 0, no F1 2/3
    b = [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, True),       # 2/3 and 0 -> 1/3
         q("hypernym", "fish", True, True), q("hypernym", "fish", False, False)]
    rows = [run("none", 0, a), run("none", 1, b)]
    probe = {"per_category": {"mammal": {"chat_macro_f1": 0.9}, "fish": {"chat_macro_f1": 0.2}}}
    t = pf.category_table(rows, "all", labels={"fish": "fish!"}, coherence={"mammal": 0.3},
                          probe=probe, depths={"mammal": 12, "fish": 9})
    assert t.loc["mammal", "f1"] == pytest.approx((1 + 1 / 3) / 2)
    assert t.loc["fish", "f1"] == pytest.approx((1 / 3 + 1) / 2) and t.loc["fish", "label"] == "fish!"
    assert t.loc["mammal", "coherence"] == 0.3 and math.isnan(t.loc["fish", "coherence"])
    assert t.loc["fish", "probe_chat_macro_f1"] == 0.2 and t.loc["mammal", "depth"] == 12
    assert pf.category_table(rows, "unseen").empty
    with pytest.raises(ValueError):
        pf.category_table(rows, "some")


def test_depth_table_averages_categories_per_run_then_seeds():
    one = [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, False),    # 1
           q("hypernym", "fish", True, False), q("hypernym", "fish", False, True),        # 0
           q("hypernym", "dog_cat", True, True), q("hypernym", "dog_cat", False, False)]  # 1
    two = [q("hypernym", "mammal", True, True), q("hypernym", "mammal", False, False),
           q("hypernym", "fish", True, True), q("hypernym", "fish", False, False),
           q("hypernym", "dog_cat", True, False), q("hypernym", "dog_cat", False, True)]
    depths = {"mammal": 10, "fish": 10, "dog_cat": 12, "odd": None}
    t = pf.depth_table([run("none", 0, one), run("none", 1, two)], depths, "all")
    d10 = t[t["depth"] == 10].iloc[0]
    assert d10["mean"] == pytest.approx((0.5 + 1.0) / 2) and d10["n_categories"] == 2 and d10["n_seeds"] == 2
    d12 = t[t["depth"] == 12].iloc[0]
    assert d12["mean"] == pytest.approx(0.5) and d12["categories"] == "dog_cat"
    fig = pf.depth_figure(t)
    assert list(fig.layout.xaxis.ticktext) == ["10<br>(2)", "12<br>(1)"]


def test_leaf_table_per_concept_mean_ci_and_chance_sorted_best_first():
    good = [q("leaf", "dog", True, True), q("leaf", "dog", False, False),
            q("leaf", "cat", True, False), q("leaf", "cat", False, False)]   # cat: yes F1 0, no F1 2/3
    rows = [run("none", 0, good), run("none", 1, good)]
    t = pf.leaf_table(rows, labels={"dog": "Dog"})
    assert list(t["concept"]) == ["dog", "cat"]
    assert t.iloc[0]["mean"] == 1 and t.iloc[0]["label"] == "Dog" and t.iloc[0]["n_seeds"] == 2
    assert t.iloc[1]["mean"] == pytest.approx(1 / 3) and t.iloc[1]["chance"] == pytest.approx(0.5)
    assert pf.leaf_series(t) == ["pretrained LM · none"]
    fig = pf.leaf_figure(t)
    assert list(fig.data[0].y) == [1.0, pytest.approx(1 / 3)] and list(fig.layout.xaxis.ticktext) == ["Dog", "cat"]


def test_crowded_scatter_names_only_the_outliers():
    import pandas as pd

    n = 30
    t = pd.DataFrame({"label": [f"c{i}" for i in range(n)], "x": [i / n for i in range(n)],
                      "f1": [i / n + (0.5 if i == 7 else 0) for i in range(n)]}, index=[f"c{i}" for i in range(n)])
    fig = pf.versus_figure(t, "x", "x")
    named = [s for s in fig.data[0].text if s]
    assert len(named) == 10 and "c7" in named
    # Categories stacked at F1 = 1 (a cluster far from the line): one label, not several on one spot.
    stack = pd.DataFrame({"label": [f"s{i}" for i in range(n)], "x": [0.5 + i / 1000 if i < 6 else i / n for i in range(n)],
                          "f1": [1.0 if i < 6 else 0.3 for i in range(n)]}, index=[f"s{i}" for i in range(n)])
    stacked = [s for s in pf.versus_figure(stack, "x", "x").data[0].text if s]
    assert len([s for s in stacked if int(s[1:]) < 6]) == 1 and len(stacked) == 10
    small = pf.versus_figure(t.head(5), "x", "x")
    assert [s for s in small.data[0].text] == ["c0", "c1", "c2", "c3", "c4"]


def test_export_says_what_is_missing(monkeypatch):
    import plotly.graph_objects as go

    monkeypatch.setitem(sys.modules, "kaleido", None)          # import kaleido -> ImportError
    assert "kaleido" in pf.export_problem()
    with pytest.raises(pf.ExportUnavailable, match="kaleido"):
        pf.to_image(go.Figure(), "svg")
    with pytest.raises(ValueError):
        pf.to_image(go.Figure(), "gif")


def test_titled_keeps_the_subtitle():
    import plotly.graph_objects as go

    fig = go.Figure(layout={"title": {"text": "<sup>stats</sup>"}})
    assert pf.titled(fig, "Name").layout.title.text == "Name<br><sup>stats</sup>"
    assert fig.layout.title.text == "<sup>stats</sup>"          # the page's figure is untouched


def test_every_image_of_a_figures_export_goes_through_one_browser_session(tmp_path, monkeypatch):
    """Reported: `taxolens results figures` took 97 s for 4 tiny settings, ~3.4 s per image, each
    starting its own Chromium; it was silent all the while."""
    import kaleido
    calls, reports = [], []
    monkeypatch.setattr(kaleido, "start_sync_server", lambda **kw: calls.append("start"))
    monkeypatch.setattr(kaleido, "stop_sync_server", lambda **kw: calls.append("stop"))
    monkeypatch.setattr(pf, "export_problem", lambda: None)
    monkeypatch.setattr(pf, "to_image", lambda fig, fmt, **kw: calls.append(fmt) or f"<{fmt}>".encode())
    rows = [run("random:0.5", s, half_unseen(s != 1)) for s in range(3)] + \
           [run("random:1", s, half_unseen(True)) for s in range(2)]
    manifest = pf.write_all(rows, tmp_path / "figs", progress=lambda f, m: reports.append((f, m)))
    images = [c for c in calls if c in ("svg", "png")]
    assert images and calls == ["start"] + images + ["stop"]                   # one session around all
    assert any(f.endswith(".png") for s in manifest["settings"] for f in s["files"])
    assert reports and reports[-1][0] == pytest.approx(1.0)
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)
    calls.clear()
    pf.write_all(rows, tmp_path / "csv", formats=())                          # CSV only: no browser
    assert calls == []
    from kaleido._sync_server import GlobalKaleidoServer
    monkeypatch.setattr(GlobalKaleidoServer, "is_running", lambda self: True)
    pf.write_all(rows, tmp_path / "theirs")                                   # the caller's session: left open
    assert "start" not in calls and "stop" not in calls and "svg" in calls


def test_notes_name_what_makes_a_missing_figure_for_the_dataset_at_hand(monkeypatch):
    """Reported: on an imported dataset the ablation note sent the user to the paper preset, which
    trained the default dataset (now the preset takes --dataset: the note names it), and the depth
    note read "No all hypernym questions with a WordNet depth here." although no imported category
    can have a depth."""
    from types import SimpleNamespace
    monkeypatch.setattr(pf, "find_coherence", lambda dataset, encoder, split_percent=None, concepts=None: None)
    ds = SimpleNamespace(categories={"mammal": SimpleNamespace(label="mammal", synset=None)},
                         concepts={"dog": SimpleNamespace(label="dog", synset=None)},
                         # a collection larger than any scale's subset: every limit is reached
                         effective_limits=lambda max_concepts, images_per_concept: (max_concepts, images_per_concept))
    rows = [run("none", 0, half_unseen(True))]
    key = (("dataset", "mine"), ("epochs", 1), ("images_per_concept", 3), ("max_concepts", 40))
    figs = pf.setting_figures(rows, rows, key, ds=ds, depths={"mammal": None})
    # the scale whose subset and epochs are this setting's, so the runs it makes land here
    assert "`taxolens sweep submit paper --dataset mine --scale smoke`" in figs["ablation"]["note"]
    assert "`taxolens sweep submit paper --dataset mine --scale cpu`" in pf.sweep_hint("mine", {"epochs": 6})
    assert "--scale cpu --set max_concepts=6 --set epochs=2`" in pf.sweep_hint(
        "mine", {"max_concepts": 6, "images_per_concept": None, "epochs": 2})
    assert figs["depth"]["note"] == ("No category of mine has a WordNet synset (an imported dataset's "
                                     "categories have none), so there is no depth to plot.")
    figs = pf.setting_figures(rows, rows, (("dataset", "concepts"),), ds=ds, depths={"mammal": 4})
    assert "`taxolens sweep submit paper --scale cpu` (then `taxolens jobs worker`)" in figs["ablation"]["note"]
    assert figs["depth"]["note"] == "None of the unseen hypernym questions is about a category with a WordNet depth."


def test_the_coherence_figure_reads_a_training_images_table_never_an_all_images_or_old_one(tmp_path, monkeypatch):
    """The paper's coherence is over a category's training images: find_coherence serves that table,
    not the "all" one nor one cached before the choice (no "image_set" in its meta: over all images),
    even where those cover a larger (subset of the) dataset."""
    import json

    import numpy as np

    from core import geometry
    from tiny_concepts import tiny_dataset

    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    monkeypatch.setattr(geometry, "pooled_features", lambda ds, enc, device=None, progress=None:
                        np.random.default_rng(len(ds.images)).normal(size=(len(ds.images), 4)))
    small, large = tiny_dataset(images_per_concept=5), tiny_dataset(images_per_concept=8)
    assert pf.find_coherence("tiny", "enc") is None
    everything = geometry.coherence_table(large, "enc", 0, images="all")
    old = geometry.cache_dir(large, "enc", 1, "all").with_name("tiny__enc__seed0__old")
    geometry._save(old, everything * 0 + 0.5, {"dataset": "tiny", "encoder": "enc", "seed": 0,
                                                "fingerprint": geometry.dataset_fingerprint(large), "images": 999})
    assert pf.find_coherence("tiny", "enc") is None
    train = geometry.coherence_table(small, "enc", 0)
    table, meta = pf.find_coherence("tiny", "enc")
    assert meta["image_set"] == "train" and meta["images"] == len(geometry.image_indices(small, 0))
    np.testing.assert_allclose(table.to_numpy(), train.drop(index="all").to_numpy())
    table, meta = pf.find_coherence("tiny", "enc", images="all")      # the largest of the all-images ones
    assert meta["path"] == str(old) and json.loads((old / "meta.json").read_text())["images"] == 999
    assert "training images" in pf.coherence_hint("tiny", "enc")
    # runs split 70/5/25 are matched with a table of that split's training images, and only with it
    assert pf.find_coherence("tiny", "enc", split_percent="70/5/25") is None
    assert "--split-percent 70/5/25" in pf.coherence_hint("tiny", "enc", "70/5/25")
    paper = geometry.coherence_table(large, "enc", 0, split_percent="70,5,25")
    assert geometry.cache_dir(large, "enc", 0, "train", "70/5/25").name.split("__")[3] == "train-70-5-25"
    assert geometry.is_cached(large, "enc", 0, split_percent="70/5/25") and not geometry.is_cached(large, "enc", 0)
    table, meta = pf.find_coherence("tiny", "enc", split_percent="70/5/25")
    assert meta["split_percent"] == "70/5/25" and meta["images"] == len(geometry.image_indices(large, 0, "train", "70/5/25"))
    assert meta["images"] == 5 * len(large.concepts) != len(geometry.image_indices(large, 0))   # 5 of 8, not 4
    np.testing.assert_allclose(table.to_numpy(), paper.drop(index="all").to_numpy())
    assert pf.find_coherence("tiny", "enc")[1]["split_percent"] == "60/20/20"
    # a setting of 8-concept subsets: their own table where there is one, else the largest, said so
    from ui.paper_figures import subset_note
    assert "subsets of 8 concepts; this table is over 12" in subset_note(pf.find_coherence("tiny", "enc", concepts=8)[1],
                                                                          {"dataset": "tiny", "max_concepts": 8})
    geometry.coherence_table(large.subset(max_concepts=8, seed=0), "enc", 0)
    table, meta = pf.find_coherence("tiny", "enc", concepts=8)
    assert meta["concepts"] == 8 and subset_note(meta, {"max_concepts": 8}) == ""
    assert pf.find_coherence("tiny", "enc", concepts=12)[1]["concepts"] == 12    # the whole set's, asked for


def test_a_figure_of_nan_points_counts_as_empty():
    """Review: plotted_points counted x values, so a trace of NaN y values was 'drawn'."""
    import plotly.graph_objects as go

    from core import paper_figures as pf
    nan = float("nan")
    assert pf.plotted_points(go.Figure(go.Scatter(x=[0.1, 0.2], y=[nan, nan]))) == 0
    assert pf.plotted_points(go.Figure(go.Scatter(x=[0.1, 0.2], y=[0.5, nan]))) == 1
    assert pf.plotted_points(go.Figure(go.Bar(x=["seen", "unseen"], y=[0.6, 0.4]))) == 2
    assert pf.plotted_points(None) == 0


def test_same_removal_skips_a_condition_it_cannot_read():
    """Review: one run folder with a condition this version does not parse took the Results page down."""
    from core import results
    row = lambda condition, removal, seed=0: {"kind": "train", "condition": condition, "removal": removal,
                                               "lm_init": "pretrained", "seed": seed}
    rows = [row("random:0.25", "a"), row("random:0.5", "a"), row("random:1", "b"), row("bogus:1", "a"),
            row("random:0.25", "c", seed=1), row("random:0.5", "d", seed=1)]
    assert results.same_removal(rows) == {("random:0.25", "random:0.5"): [0]}


def test_figures_of_a_setting_without_its_model_name_the_runs_they_show(data_dir, tmp_path, monkeypatch):
    """Review: with only random-init LM runs in a setting, setting.txt, the manifest's "model" and the
    coherence / probe titles said "pretrained LM · random:1 · 1 run(s)" (the asked model), while the
    figures fell back to the random-init runs."""
    import pandas as pd
    from types import SimpleNamespace

    coherence = pd.DataFrame({"original": {"mammal": 0.4, "fish": 0.2}})
    monkeypatch.setattr(pf, "find_coherence", lambda dataset, encoder, split_percent=None, concepts=None:
                        (coherence, {}))
    ds = SimpleNamespace(categories={k: SimpleNamespace(label=k, synset=None) for k in ("mammal", "fish")},
                         concepts={"dog": SimpleNamespace(label="dog", synset=None)})
    rows = [run("random:1", 0, half_unseen(True), lm_init="random")]
    probe = {"kind": "probe", "name": "probe_lm", "lm": "lm", "dataset": "mine", "lm_init": "pretrained",
             "metrics": {"per_category": {"mammal": {"chat_macro_f1": 0.9}, "fish": {"chat_macro_f1": 0.3}}}}
    key = (("dataset", "mine"), ("lm", "lm"))
    figs = pf.setting_figures(rows, rows + [probe], key, ds=ds, depths={"mammal": 4, "fish": 5})
    assert figs["_choice"] == {"condition": "random:1", "block": "unseen", "model": "random-init LM"}
    for name in ("coherence", "probe"):
        assert figs[name]["figure"].layout.title.text.startswith("random-init LM · random:1 · 1 run(s)<br>")
    assert figs["depth"]["figure"].layout.yaxis.title.text == "unseen per-category macro-F1 (random-init LM)"
    # asked for the model the runs are of: the same labels
    again = pf.setting_figures(rows, rows + [probe], key, model="random-init LM", ds=ds, depths={"mammal": 4})
    assert again["_choice"]["model"] == "random-init LM"
    manifest = pf.write_all(rows, tmp_path / "figs", formats=())
    (entry,) = manifest["settings"]
    assert entry["model"] == "random-init LM"
    assert (tmp_path / "figs" / "setting.txt").read_text().splitlines()[1] == \
        "per-category figures: random-init LM, random:1, unseen questions"


def _hinted_settings(hint: str, ds) -> set:
    """The settings (core.results.setting_key) of the training runs that the sweep a hint names
    records on `ds`: its `--set` flags read as the CLI reads them, the preset expanded."""
    import re

    from core import results, runs
    from core.cli.common import train_setting
    from core.config import TrainConfig
    from core.jobs import sweeps

    found = re.search(r"`taxolens sweep submit paper(?: --dataset (\S+))? --scale (\S+)((?: --set \S+)*)`", hint)
    assert found, hint
    base = dict(train_setting(s) for s in found.group(3).split(" --set ")[1:])
    if found.group(1):
        base["dataset"] = found.group(1)
    jobs = sweeps.expand(sweeps.resolve("paper", found.group(2), base))
    configs = [TrainConfig(**j["spec"]["config"]) for j in jobs if j["kind"] == "train"]
    # collect() records "auto" precision as what it resolved to: fp32 on a CPU without bf16
    return {results.setting_key({**runs.as_recorded_on(c, ds).to_dict(), "precision": "fp32"}) for c in configs}


@pytest.mark.parametrize("fields, hint", [
    # the shipped recipe's first stage: none of its fields is a scale's
    ({"projector_input": "posterior", "augment_views": 2, "lr": 0.0003},
     "`taxolens sweep submit paper --dataset tiny --scale cpu --set projector_input=posterior --set lr=0.0003 "
     "--set augment_views=2` (then `taxolens jobs worker`)"),
    # all images of 1 epoch: smoke's 3 images a concept are a limit tiny reaches, so not smoke
    ({"epochs": 1, "fresh_negatives": False, "projector_hidden": None},
     "`taxolens sweep submit paper --dataset tiny --scale cpu --set epochs=1 --set projector_hidden=none "
     "--set fresh_negatives=false` (then `taxolens jobs worker`)"),
])
def test_the_sweep_a_hint_names_lands_in_the_setting(fields, hint, tiny):
    """Review: sweep_hint compared only max_concepts, images_per_concept and epochs, so for a setting
    that differs in another field (the shipped recipe's lr, projector_input, ...) the sweep it named
    made runs of another setting."""
    from core import results, runs
    from core.config import TrainConfig
    from tiny_concepts import tiny_dataset

    ds = tiny_dataset()
    # as collect() records a run trained in fp32 (precision "auto" on a CPU without bf16)
    recorded = {**runs.as_recorded_on(TrainConfig(dataset="tiny", **fields), ds).to_dict(), "precision": "fp32"}
    key = results.setting_key(recorded)
    assert pf.sweep_hint("tiny", dict(key)) == hint
    assert _hinted_settings(hint, ds) == {key}


def test_no_sweep_is_hinted_for_a_second_stage(tiny):
    """The shipped checkpoint's setting is a leaf stage (init_from): no preset sweep makes its runs,
    and the hint says so and names what else differs, instead of a sweep of another setting."""
    from core.config import LEAF_STAGE, SHIPPED_RECIPE, TrainConfig

    setting = {**TrainConfig(dataset="tiny", **SHIPPED_RECIPE, **LEAF_STAGE).to_dict(), "precision": "bf16",
               "init_from": "(a first stage with epochs=6, lr=0.001, patience=3, rank_negatives=0, "
                            "rank_siblings=0.0, rank_soft=0.0)"}
    assert pf.sweep_hint("tiny", setting) == (
        "no preset sweep reproduces this setting: its runs start from other runs' projectors (init_from, as "
        "`taxolens train --leaf-stage` does) and differ from the paper preset at scale cpu in epochs, "
        "projector_input, lr, patience, rank_negatives, rank_siblings, rank_soft, augment_views, line_art_views")
