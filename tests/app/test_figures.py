"""ui.figures: the plotly figures draw what they are given (positions, colours, order, error bars)."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from ui import figures


def _chain(*names_p, categories=()):
    """Chain nodes shaped like core.predict.ChainNode (importing it would load torch)."""
    return [SimpleNamespace(synset=n, label=n.split(".")[0], p_yes=p, is_category=n in categories)
            for n, p in names_p]


def test_chain_layout_puts_root_on_top_and_merges_shared_ancestors():
    a = _chain(("dog.n.01", 0.9), ("canine.n.02", 0.8), ("animal.n.01", 0.7), ("entity.n.01", 0.5))
    b = _chain(("dog.n.01", 0.9), ("domestic_animal.n.01", 0.6), ("animal.n.01", 0.7), ("entity.n.01", 0.5))
    pos, edges = figures.chain_layout([a, b])
    assert set(pos) == {"dog.n.01", "canine.n.02", "domestic_animal.n.01", "animal.n.01", "entity.n.01"}
    assert pos["entity.n.01"] == (0.0, 0) and pos["dog.n.01"] == (0.0, -3)
    # the nodes only one chain passes through run side by side, one lane each
    assert pos["canine.n.02"][1] == pos["domestic_animal.n.01"][1] == -2
    assert pos["canine.n.02"][0] == -pos["domestic_animal.n.01"][0] != 0
    assert ("animal.n.01", "entity.n.01") in edges and len(edges) == 5


def test_chain_layout_keeps_every_parent_above_its_children_for_uneven_chains():
    long = _chain(("top_hat.n.01", 0.5), ("dress_hat.n.01", 0.5), ("hat.n.01", 0.5), ("headdress.n.01", 0.5),
                  ("clothing.n.01", 0.5), ("entity.n.01", 0.5))
    short = _chain(("top_hat.n.01", 0.5), ("dress_hat.n.01", 0.5), ("clothing.n.01", 0.5), ("entity.n.01", 0.5))
    pos, edges = figures.chain_layout([long, short])
    assert all(pos[parent][1] > pos[child][1] for child, parent in edges)
    rows = [y for _, y in pos.values()]
    assert rows.count(pos["top_hat.n.01"][1]) == 1          # the leaf has the bottom row to itself


def test_chain_figure_colours_nodes_by_p_yes_and_marks_categories():
    chain = _chain(("cat.n.01", 0.95), ("mammal.n.01", 0.2), ("entity.n.01", 0.5),
                   categories={"mammal.n.01"})
    fig = figures.chain_figure([chain])
    nodes = fig.data[1]
    by_text = {t.split()[0]: i for i, t in enumerate(nodes.text)}
    assert nodes.marker.color[by_text["mammal"]] == 0.2
    assert nodes.marker.symbol[by_text["mammal"]] == "diamond"
    assert nodes.marker.symbol[by_text["cat"]] == "circle"
    assert nodes.marker.cmin == 0 and nodes.marker.cmax == 1
    assert "0.95" in nodes.text[by_text["cat"]]
    # also accepts the JSON form of a prediction (Prediction.to_dict())
    as_dicts = [[{"synset": n.synset, "label": n.label, "p_yes": n.p_yes, "is_category": n.is_category}
                 for n in chain]]
    assert list(figures.chain_figure(as_dicts).data[1].text) == list(nodes.text)


def test_category_bars_show_highest_first_and_outline_the_best_leafs_categories():
    cats = [{"label": "animal", "p_yes": 0.9, "of_best": True}, {"label": "tool", "p_yes": 0.1, "of_best": False}]
    bar = figures.category_bars(cats).data[0]
    assert list(bar.y) == ["tool", "animal"]            # horizontal bars draw bottom-up
    assert list(bar.marker.line.color) == ["rgba(0,0,0,0)", "#222"]


def test_grouped_bars_error_bars_span_the_interval():
    rows = [{"c": "none", "m": 0.6, "lo": 0.5, "hi": 0.8, "g": "seen"},
            {"c": "none", "m": 0.4, "lo": None, "hi": None, "g": "unseen"}]
    fig = figures.grouped_bars(rows, x="c", y="m", group="g", lo="lo", hi="hi")
    seen, unseen = fig.data
    assert seen.error_y.array == pytest.approx([0.2]) and seen.error_y.arrayminus == pytest.approx([0.1])
    assert unseen.error_y.array == (0.0,) and unseen.error_y.arrayminus == (0.0,)


def test_grouped_bars_mark_the_chance_level_on_each_bar():
    rows = [{"c": "none", "m": 0.6, "g": "seen", "ch": 0.5}, {"c": "r", "m": 0.7, "g": "seen", "ch": 0.45},
            {"c": "r", "m": 0.4, "g": "unseen", "ch": None}]
    fig = figures.grouped_bars(rows, x="c", y="m", group="g", chance="ch")
    bars = [t for t in fig.data if t.type == "bar"]
    ticks = [t for t in fig.data if t.type == "scatter"]
    assert [b.offsetgroup for b in bars] == ["seen", "unseen"]
    assert len(ticks) == 1 and list(ticks[0].y) == [0.5, 0.45] and ticks[0].offsetgroup == "seen"
    assert ticks[0].marker.color == "#111"        # an open symbol takes marker.color: black, as captions say
    assert fig.layout.scattermode == "group"
    assert len(figures.grouped_bars(rows, x="c", y="m", group="g").data) == 2     # no chance column


def test_ratio_curves_one_line_and_band_per_series_plus_baselines():
    rows = [{"series": "pretrained", "ratio": r, "mean": 0.8 - r / 2, "lo": 0.7 - r / 2, "hi": 0.9 - r / 2, "n": 3}
            for r in (1.0, 0.0, 0.5)]
    fig = figures.ratio_curves(rows, baselines={"majority": 0.3, "missing": None})
    band, line = fig.data
    assert list(line.x) == [0.0, 0.5, 1.0]                # sorted by ratio
    assert list(band.y) == pytest.approx([0.9, 0.65, 0.4, 0.2, 0.45, 0.7])
    assert [s.y0 for s in fig.layout.shapes] == [0.3]
    with_chance = figures.ratio_curves(rows, chance=[{"ratio": 1.0, "mean": 0.5}, {"ratio": 0.5, "mean": 0.48}])
    coin = with_chance.data[-1]
    assert coin.name == "chance (fair coin)" and list(coin.x) == [0.5, 1.0] and list(coin.y) == [0.48, 0.5]


def test_scatter_with_labels_reports_the_correlation():
    # By hand: Sxy = -4.5, Sxx = 5, Syy = 4.75, so r = -4.5 / sqrt(23.75) = -0.92, slope -0.9,
    # intercept 1.75 + 0.9 * 1.5 = 3.1: the line runs from (0, 3.1) to (3, 0.4).
    points = [{"x": x, "y": y, "label": str(x)} for x, y in ((0, 3), (1, 2), (2, 2), (3, 0))]
    fig = figures.scatter_with_labels(points, "coherence", "F1", title="t")
    assert fig.layout.title.text == "t · Pearson r = -0.92 (n = 4)"
    assert len(fig.data) == 2
    assert list(fig.data[1].x) == [0, 3] and list(fig.data[1].y) == pytest.approx([3.1, 0.4])


def test_embedding_map_groups_points_by_colour_and_keeps_image_index():
    xy = [[0, 0], [1, 1], [2, 2]]
    hover = [["dog", "noto", "dog", 0], ["cat", "noto", "cat", 1], ["car", "noto", "bus", 2]]
    fig = figures.embedding_map(xy, ["mammal", "mammal", "vehicle"], hover,
                                figures.category_colors(["mammal", "vehicle"]))
    assert [t.name for t in fig.data] == ["mammal", "vehicle"]
    assert [c[3] for c in fig.data[0].customdata] == [0, 1]
    assert fig.data[0].marker.color != fig.data[1].marker.color


def test_heatmap_keeps_rows_and_columns():
    table = pd.DataFrame({"a": [0.1, 0.2], "b": [0.3, None]}, index=["mammal", "bird"])
    hm = figures.heatmap(table).data[0]
    assert list(hm.y) == ["mammal", "bird"] and list(hm.x) == ["a", "b"]
    assert hm.zmin == 0 and hm.zmax == 1


def test_scatter_says_when_the_correlation_is_undefined():
    points = [{"x": x, "y": 0.5, "label": str(x)} for x in (0.1, 0.2, 0.4)]
    fig = figures.scatter_with_labels(points, "coherence", "F1", y_range=(0, 1))
    assert "undefined" in fig.layout.title.text and "nan" not in fig.layout.title.text
    assert tuple(fig.layout.yaxis.range) == (0, 1)


def test_legend_html_lists_every_group_with_its_colour_escaped():
    html = figures.legend_html({"fruit": "#ff0000", "<b>x</b>": "#00ff00"})
    assert "color:#ff0000" in html and "fruit" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "flex-wrap:wrap" in html      # 40 categories: one line was 4,810 px wide, cut at the page's edge
