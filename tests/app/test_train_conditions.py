"""The Train form's ablation preview: what random:r removes on the page's dataset, said before
anything is queued (a walk-through found r = 0.5 leaving no seen hypernym question on a small
collection, with nothing said until after training)."""
from __future__ import annotations

import re

from test_pages import run_page, texts


def test_random_ablation_says_what_it_removes_here(data_dir):
    from core.conditions import removal_summary
    from core.data import datasets

    at = run_page("app_pages/3_Train.py")
    at.button_group(key="train_condition").set_value("random").run()
    ds = datasets.load_dataset("concepts")
    for r in (0.25, 0.5):
        at.slider(key="train_ratio").set_value(r).run()
        assert not at.exception, [e.value for e in at.exception]
        gone = removal_summary(ds, f"random:{r:g}")
        assert 0 < gone["concepts"] < gone["of"]
        said = f"{gone['concepts']} concepts ({gone['concepts'] / gone['of']:.0%}) lose all their hypernym questions"
        assert said in texts(at), texts(at)
    at.slider(key="train_ratio").set_value(0.0).run()
    assert not re.search(r"\d+ concepts \(\d+%\) lose all", texts(at))


def test_removal_summary_counts_concepts_and_pairs(data_dir):
    from core.conditions import removal_summary, used_categories
    from core.data import datasets

    ds = datasets.load_dataset("concepts")
    pairs = len(ds.concepts) * len(used_categories(ds))
    assert removal_summary(ds, "none") == {"concepts": 0, "of": len(ds.concepts), "pairs": 0, "of_pairs": pairs}
    assert removal_summary(ds, "random:1")["concepts"] == len(ds.concepts)
    half = removal_summary(ds, "random:0.5")
    assert half["pairs"] == half["concepts"] * len(used_categories(ds))      # all of a sampled concept's pairs
    one = removal_summary(ds, "systematic:1")
    assert one["pairs"] == len(ds.concepts) and one["concepts"] == len(ds.concepts)


def test_the_sweep_tab_warns_when_conditions_collapse_on_its_data(data_dir):
    """A walk-through: at the smoke scale random:0.25, 0.5 and 0.75 removed the same pairs (most
    categories of a small subset have one or two members), trained one run three times, and Results
    drew a flat curve that read like a finding."""
    from core.jobs import sweeps

    at = run_page("app_pages/3_Train.py")
    for scale in ("smoke", "cpu"):
        at.selectbox(key="sweep_scale").set_value(scale).run()
        assert not at.exception, [e.value for e in at.exception]
        groups = sweeps.same_data_seeds(sweeps.expand(sweeps.resolve({"preset": "paper", "scale": scale})))
        warned = [w.value for w in at.warning if "remove the same pairs" in w.value]
        if groups:
            (text,) = warned
            for conditions, seeds in groups.items():
                assert f"{' = '.join(conditions)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})" \
                    in text
        else:
            assert not warned
    assert sweeps.same_data_groups(sweeps.expand(sweeps.resolve({"preset": "paper", "scale": "smoke"})))


def test_results_say_when_conditions_trained_the_same_data(data_dir):
    """The same walk-through: Results drew the flat smoke-scale curve as if it were a finding. Its
    runs' recorded reports show which conditions removed the same pairs; the page says so."""
    from app_data import fake_run
    from core import conditions, results
    from core.data import datasets
    from test_pages import small_cfg

    names = ["random:0.25", "random:0.5", "random:1"]
    for condition in names:
        fake_run(small_cfg(condition=condition))
    cfg = small_cfg()
    subset = datasets.load_dataset(cfg.dataset).subset(cfg.max_concepts, cfg.images_per_concept, cfg.seed)
    removed = {c: conditions.parse_condition(c).apply(subset, 0).removed for c in names}
    same = [c for c in names if removed[c] == removed["random:0.25"]]
    assert len(same) > 1, "the fixture no longer collapses conditions: pick smaller subsets"
    assert results.same_removal(results.collect()) == {tuple(same): [0]}
    at = run_page("app_pages/4_Results.py")
    (warning,) = [w.value for w in at.warning if "removed the same pairs" in w.value]
    assert f"{' = '.join(same)} (seed 0)" in warning
