"""Reported in a browser walk-through on the default dataset: bar colours that changed meaning
between the Results page's charts, an empty paper figure still drawn and offered for export, a
least-squares label reading "+ -0.41", and a Geometry scatter caption that named neither its split
nor the subset of concepts the runs trained on."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from app_data import fake_geometry, own_datasets_dir
from paper_data import fake_coherence, fake_grid
from test_pages import fake_run, run_page, small_cfg, texts
from test_paper_figures_page import results_page


def _bar_colours(at) -> dict[str, set]:
    seen: dict[str, set] = {}
    for chart in at.get("plotly_chart"):
        for trace in json.loads(chart.proto.spec).get("data", []):
            if trace.get("type") == "bar":
                seen.setdefault(trace["name"], set()).add(trace.get("marker", {}).get("color"))
    return seen


def test_grouped_bars_give_each_series_its_page_wide_colour():
    from ui import figures
    rows = [{"c": "a", "m": 0.5, "g": g} for g in ("leaf per concept", "seen", "unseen", "something else")]
    fig = figures.grouped_bars(rows, x="c", y="m", group="g")
    colours = {t.name: t.marker.color for t in fig.data}
    for name in ("leaf per concept", "seen", "unseen"):
        assert colours[name] == figures.SERIES_COLORS[name]
    assert colours["something else"] and colours["something else"] not in figures.SERIES_COLORS.values()
    # the order of the series does not change their colours
    again = figures.grouped_bars(rows[::-1], x="c", y="m", group="g")
    assert {t.name: t.marker.color for t in again.data} == colours


def test_results_bars_keep_one_colour_per_series_across_charts(data_dir):
    fake_grid(conditions=("none", "random:0.5", "cross"), seeds=(0,), lm_inits=("pretrained",))
    at = results_page()
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert any("seen_unseen" in k for k in keys) and any("shuffles" in k for k in keys), keys
    colours = _bar_colours(at)
    assert {"seen", "unseen", "leaf per concept"} <= set(colours)
    for name in ("seen", "unseen", "leaf per concept"):
        assert len(colours[name]) == 1 and None not in colours[name], (name, colours[name])
    assert len({next(iter(colours[n])) for n in ("seen", "unseen", "leaf per concept")}) == 3


def test_an_empty_paper_figure_is_neither_drawn_nor_exported(data_dir):
    from core import datasets
    fake_grid(conditions=("none", "random:0.5", "cross"), seeds=(0,), lm_inits=("pretrained",))
    fake_coherence(datasets.load_dataset("concepts"))
    at = results_page()
    at.segmented_control(key="pf_block").set_value("unseen").run()
    at.selectbox(key="pf_condition").set_value("cross").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Nothing is unseen under cross" in texts(at)
    keys = {b.key for b in at.get("download_button")}
    assert "pf_svg_coherence" not in keys and "pf_png_coherence" not in keys, keys
    assert not any(c.proto.id.endswith("pf_fig_coherence") or "pf_fig_coherence" in c.proto.id
                   for c in at.get("plotly_chart"))
    assert not any("correlation undefined (n = 0" in c.proto.spec for c in at.get("plotly_chart"))
    assert any("No unseen hypernym questions under cross" in i.value for i in at.info)


def test_setting_figures_keep_no_figure_without_points(data_dir):
    from core import paper_figures as pf
    from core import datasets, results
    fake_grid(conditions=("none", "cross"), seeds=(0,), lm_inits=("pretrained",))
    fake_coherence(datasets.load_dataset("concepts"))
    rows = [r for r in results.collect() if r["kind"] == "train"]
    (key,) = results.settings(rows)
    figs = pf.setting_figures(results.in_setting(rows, key), rows, key, condition="cross", block="unseen")
    assert figs["coherence"]["figure"] is None and figs["coherence"]["note"]
    assert pf.plotted_points(None) == 0


def test_least_squares_label_uses_a_minus_sign():
    from core import paper_figures as pf
    assert pf.line_equation(1.25, -0.41) == "y = 1.25·x − 0.41"
    assert pf.line_equation(1.25, 0.41) == "y = 1.25·x + 0.41"
    assert pf.line_equation(0.5, -0.001) == "y = 0.50·x + 0.00"
    xs = np.array([0.1, 0.3, 0.5, 0.7])
    table = pd.DataFrame({"coherence": xs, "f1": 1.25 * xs - 0.41 + np.array([0.01, -0.01, 0.01, -0.01]),
                          "label": list("abcd")}, index=list("abcd"))
    fig = pf.versus_figure(table, "coherence", "coherence")
    names = [t.name for t in fig.data if t.name]
    assert any("− 0.4" in n for n in names) and not any("+ -" in n for n in names), names


def test_geometry_scatter_names_its_split_and_the_runs_subset(data_dir, monkeypatch):
    from core import geometry, runs
    from core.data import datasets

    fake_geometry(monkeypatch)
    fake_run(small_cfg(condition="random:0.5"))            # max_concepts=6, the default 60/20/20 split
    cfg = runs.first_run_config()
    ds = datasets.load_dataset(cfg.dataset)
    assert len(ds.concepts) > 6
    geometry.coherence_table(ds, cfg.encoder, 0)
    at = run_page("app_pages/5_Geometry.py")
    shown = texts(at)
    assert "Coherence among the category's training images (seed 0's 60/20/20 split), as the paper defines " \
           "coherence (the runs' own split)" in shown
    assert f"over all {len(ds.concepts)} concepts of concepts; the runs trained on subsets of 6" in shown


def _one_concept_per_category_set(name: str) -> None:
    """The fixture dataset cut to one concept per category set, published as `name`: no two of its
    concepts share a category set, so it has no within-category shuffle."""
    from core.data import datasets

    ds = datasets.load_dataset("concepts")
    kept = {}
    for concept in sorted(ds.concepts):
        kept.setdefault(tuple(ds.concepts[concept].categories), concept)
    concepts = [ds.concepts[c] for c in kept.values()]
    used = {k for c in concepts for k in c.categories}
    with datasets.staging(name) as stage:
        rows = []
        for item in ds.images:
            if item.concept in kept.values():
                relative = item.path.relative_to(ds.root)
                (stage / relative).parent.mkdir(parents=True, exist_ok=True)
                (stage / relative).write_bytes(item.path.read_bytes())
                rows.append((item.id, item.concept, item.style, str(relative)))
        datasets.publish(stage, name, "one concept per category set", concepts,
                         [v for k, v in ds.categories.items() if k in used], rows)


def test_geometry_maps_a_dataset_without_a_within_shuffle(data_dir, monkeypatch):
    """Its coherence table came out (within left empty), then the maps above it raised
    "within-category shuffle: no two concepts ... share a category set" and the page showed an error."""
    from core import geometry
    from core.data import datasets

    fake_geometry(monkeypatch)
    own_datasets_dir(data_dir)
    _one_concept_per_category_set("unique")
    ds = datasets.load_dataset("unique")
    assert 3 <= len(ds.concepts) < len(datasets.load_dataset("concepts").concepts)
    geometry.coherence_table(ds, "efficientnet-lite2", 0)
    at = run_page("app_pages/5_Geometry.py")
    at.selectbox(key="geometry_dataset").set_value("unique").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "No within labels on this dataset: within-category shuffle: no two concepts" in texts(at)
    maps = [c for c in at.get("plotly_chart") if '"original labels"' in c.proto.spec or '"cross labels"' in c.proto.spec]
    assert len(maps) == 2


def test_geometry_says_which_categories_the_coherence_scatter_leaves_out(data_dir, monkeypatch):
    """Reported: "Pearson r = -0.22 (n = 10)" for a run asked about 14 categories, with no word of
    the other 4 (their questions held one answer alone: no yes/no macro-F1)."""
    from app_data import write_test_eval
    from core import geometry, runs
    from core.data import datasets

    fake_geometry(monkeypatch)
    config = small_cfg(seed=0)
    run = fake_run(config, evaluated=False)
    ds = datasets.load_dataset(config.dataset)
    both, alone = sorted(ds.categories)[:2]

    def q(target, answer, pred):
        return {"image_id": f"i{target}{answer}{pred}", "concept": "c", "labelled_concept": "c", "kind": "hypernym",
                "target": target, "text": "t", "answer": answer, "p_yes": 0.9 if pred else 0.1, "pred": pred,
                "mass": 0.95, "seen": True, "split": "test"}
    write_test_eval(run, [q(both, True, True), q(both, False, False), q(alone, False, False)], config)
    geometry.coherence_table(ds, runs.first_run_config().encoder, 0)
    at = run_page("app_pages/5_Geometry.py")
    assert not at.exception, [e.value for e in at.exception]
    assert "1 of the 2 categories these runs were asked about are drawn: the others' questions hold one " \
           "answer alone in every run" in texts(at)
