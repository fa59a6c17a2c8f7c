"""Plotly figures for the pages: pure functions from plain data to go.Figure (no Streamlit here), so
each one is unit-testable and the pages stay thin.

Colour convention everywhere: P(yes) on a red → yellow → green scale fixed to [0, 1], so the same
colour means the same probability on every chart.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import plotly.graph_objects as go

P_SCALE = "RdYlGn"
LABELING_COLORS = {"original": "#1f77b4", "cross": "#d62728", "within": "#2ca02c"}


def chain_layout(chains: Sequence[Sequence], spacing: float = 3.0) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Positions for the union of leaf → root chains drawn as a tree: the leaf on the bottom row,
    every node one row above its highest child (longest path from the leaf), the root on top.
    Every chain has its own lane, and a node sits at the mean of the lanes of the chains through
    it, so shared ancestors stay centred and the parts where chains differ run side by side.
    Nodes are keyed by synset. Returns ({synset: (x, y)}, [(child, parent) edges]); y = 0 is the
    top row."""
    lanes: dict[str, list[int]] = {}
    edges: list[tuple[str, str]] = []
    for lane, chain in enumerate(chains):
        names = [n.synset for n in chain]
        for name in names:
            lanes.setdefault(name, []).append(lane)
        for child, parent in zip(names, names[1:]):
            if (child, parent) not in edges:
                edges.append((child, parent))
    height = {name: 0 for name in lanes}
    for _ in range(len(lanes)):                  # longest-path layering; the graph is acyclic
        changed = False
        for child, parent in edges:
            if height[parent] < height[child] + 1:
                height[parent], changed = height[child] + 1, True
        if not changed:
            break
    top = max(height.values(), default=0)
    middle = (len(chains) - 1) / 2
    pos = {name: ((sum(lanes[name]) / len(lanes[name]) - middle) * spacing, height[name] - top)
           for name in lanes}
    return pos, edges


def chain_figure(chains: Sequence[Sequence], title: str | None = None) -> go.Figure:
    """The predicted hypernym chain(s), leaf (bottom) → root (top), nodes coloured by P(yes) on the
    shared red → green scale (each label also prints the value, so there is no colour bar).
    Nodes that are dataset categories are diamonds with a thick outline. `chains` holds objects with
    .synset, .label, .p_yes, .is_category (core.predict.ChainNode) or equivalent dicts."""
    chains = [[_node(n) for n in chain] for chain in chains]
    nodes = {n.synset: n for chain in chains for n in chain}
    pos, edges = chain_layout(chains)
    fig = go.Figure()
    edge_x, edge_y = [], []
    for child, parent in edges:
        (x0, y0), (x1, y1) = pos[child], pos[parent]
        edge_x += [x0, x1, None]
        edge_y += [y0, y1, None]
    fig.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", hoverinfo="skip",
                             line={"color": "#999", "width": 2}, showlegend=False))
    order = sorted(nodes, key=lambda s: (pos[s][1], pos[s][0]))
    leaves = {chain[0].synset for chain in chains if chain}
    text = {s: f"{nodes[s].label}  {nodes[s].p_yes:.2f}" for s in order}
    left = [s for s in order if pos[s][0] < 0]
    fig.add_trace(go.Scatter(
        x=[pos[s][0] for s in order], y=[pos[s][1] for s in order], mode="markers+text",
        marker={"size": [26 if s in leaves else 20 for s in order],
                "symbol": ["diamond" if nodes[s].is_category else "circle" for s in order],
                "color": [nodes[s].p_yes for s in order], "colorscale": P_SCALE, "cmin": 0, "cmax": 1,
                "line": {"color": "#222", "width": [3 if nodes[s].is_category else 1 for s in order]}},
        # labels may run into the margins; padded with no-break spaces off the marker (a diamond is
        # drawn wider than its size and covered the label's first letter), in a dark grey that reads
        text=[f"{text[s]}\u00a0\u00a0" if s in left else f"\u00a0\u00a0{text[s]}" for s in order], cliponaxis=False,
        textfont={"color": "#333", "size": 12},
        textposition=["middle left" if s in left else "middle right" for s in order],
        customdata=[[s, "dataset category" if nodes[s].is_category else "WordNet node"] for s in order],
        hovertemplate="<b>%{text}</b><br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        showlegend=False))
    depth = max((-y for _, y in pos.values()), default=0)
    xs = [x for x, _ in pos.values()] or [0.0]
    # margins sized to the longest label on each side (about 7 px per character at font size 12)
    right = max((len(text[s]) + 2 for s in order if s not in left), default=0)
    left_chars = max((len(text[s]) + 2 for s in left), default=0)
    fig.update_layout(
        title=title, height=max(260, 46 * (depth + 1) + 40),
        margin={"l": 16 + 7 * left_chars, "r": 16 + 7 * right, "t": 40 if title else 10, "b": 10},
        xaxis={"visible": False, "range": [min(xs) - 0.5, max(xs) + 0.5]},
        yaxis={"visible": False, "range": [-depth - 0.6, 0.6]},
        plot_bgcolor="rgba(0,0,0,0)")
    return fig


def category_bars(categories: Sequence[Mapping], title: str | None = None) -> go.Figure:
    """P(yes) per dataset category, highest first; the best leaf's own categories outlined."""
    rows = list(categories)[::-1]          # plotly draws horizontal bars bottom-up
    fig = go.Figure(go.Bar(
        x=[r["p_yes"] for r in rows], y=[r["label"] for r in rows], orientation="h",
        marker={"color": [r["p_yes"] for r in rows], "colorscale": P_SCALE, "cmin": 0, "cmax": 1,
                "line": {"color": ["#222" if r.get("of_best") else "rgba(0,0,0,0)" for r in rows],
                         "width": 2}},
        text=[f"{r['p_yes']:.2f}" for r in rows], textposition="outside", cliponaxis=False,   # "0.98" whole
        hovertemplate="%{y}: P(yes) %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=max(220, 22 * len(rows) + 60),
                      margin={"l": 10, "r": 40, "t": 40 if title else 10, "b": 30},
                      xaxis={"range": [0, 1.15], "title": "P(yes)"})
    return fig


def _node(n):
    if isinstance(n, Mapping):
        from types import SimpleNamespace
        return SimpleNamespace(synset=n["synset"], label=n["label"], p_yes=float(n["p_yes"]),
                               is_category=bool(n.get("is_category")))
    return n


# One colour per series of question blocks, the same on every grouped bar chart (a series keeps its
# colour from chart to chart: seen is blue wherever it is drawn). A series not named here gets
# plotly's default colour sequence, skipping these.
SERIES_COLORS = {
    "seen": "#1f77b4",
    "unseen": "#ff7f0e",
    "leaf per concept": "#2ca02c",
    "leaf": "#2ca02c",
    "all": "#9467bd",
    "chance": "#7f7f7f",
    "chance (fair coin)": "#7f7f7f",
}
_OTHER_COLORS = ["#d62728", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a"]


def series_colors(groups: Iterable, colors: Mapping[str, str] | None = None) -> dict[str, str]:
    """{group: colour}: `colors` first, then SERIES_COLORS, then colours none of those use."""
    given = {**SERIES_COLORS, **(colors or {})}
    spare = [c for c in _OTHER_COLORS if c not in given.values()] or _OTHER_COLORS
    out, i = {}, 0
    for g in dict.fromkeys(groups):
        if str(g) in given:
            out[g] = given[str(g)]
        else:
            out[g] = spare[i % len(spare)]
            i += 1
    return out


def grouped_bars(rows: Iterable[Mapping], x: str, y: str, group: str, lo: str | None = None,
                 hi: str | None = None, title: str | None = None, y_title: str | None = None,
                 colors: Mapping[str, str] | None = None, y_range: tuple[float, float] | None = None,
                 values: bool = True, chance: str | None = None) -> go.Figure:
    """Bars of `y` per `x`, one colour per `group` (series_colors: `colors`, else SERIES_COLORS, so
    a series keeps its colour on every chart); with `lo`/`hi` columns, asymmetric error bars
    (a confidence interval around the mean). `values` writes each bar's value on it, so a zero is
    still visible as "0.00". With a `chance` column, a black tick on each bar marks the level a
    fair coin reaches on the same questions."""
    rows = list(rows)
    fig = go.Figure()
    shown_chance = False
    palette = series_colors((r[group] for r in rows), colors)
    for g in dict.fromkeys(r[group] for r in rows):
        sel = [r for r in rows if r[group] == g]
        error = None
        if lo and hi:
            error = {"type": "data", "symmetric": False, "visible": True,
                     "array": [max(0.0, (r[hi] if r[hi] is not None else r[y]) - r[y]) for r in sel],
                     "arrayminus": [max(0.0, r[y] - (r[lo] if r[lo] is not None else r[y])) for r in sel]}
        fig.add_trace(go.Bar(name=str(g), x=[r[x] for r in sel], y=[r[y] for r in sel], offsetgroup=str(g),
                             marker_color=palette[g], error_y=error,
                             text=[f"{r[y]:.2f}" for r in sel] if values else None,
                             # at the bar's foot where an error bar stands on its top (it would hide the
                             # value); outside on bars too short to hold it, so a zero still reads "0.00"
                             textposition=[("inside" if error and (r[y] or 0) >= 0.1 else "outside")
                                           for r in sel] if values else None,
                             insidetextanchor="start", cliponaxis=False,
                             hovertemplate=f"{g}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
        marks = [r for r in sel if chance and r.get(chance) is not None]
        if marks:
            fig.add_trace(go.Scatter(
                x=[r[x] for r in marks], y=[r[chance] for r in marks], mode="markers", offsetgroup=str(g),
                name="chance (fair coin)", legendgroup="chance", showlegend=not shown_chance,
                # an open symbol is drawn in marker.color, not line.color: black, as the captions say
                marker={"symbol": "line-ew-open", "size": 26, "color": "#111", "line": {"width": 3, "color": "#111"}},
                hovertemplate=f"chance ({g})<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
            shown_chance = True
    fig.update_layout(barmode="group", scattermode="group", title=title, showlegend=True,
                      yaxis={"title": y_title or y, **({"range": list(y_range)} if y_range else {})},
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10}, legend_title=group)
    return fig


def heatmap(table, title: str | None = None, z_title: str = "F1") -> go.Figure:
    """A DataFrame (rows × columns of values in [0, 1]) as a heatmap on the P(yes) colour scale."""
    fig = go.Figure(go.Heatmap(z=table.values, x=[str(c) for c in table.columns],
                               y=[str(i) for i in table.index], colorscale=P_SCALE, zmin=0, zmax=1,
                               colorbar={"title": {"text": z_title}},
                               hovertemplate="%{y} · %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=max(300, 22 * len(table.index) + 120),
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return fig


def ratio_curves(rows: Iterable[Mapping], baselines: Mapping[str, float] | None = None,
                 title: str | None = None, chance: Iterable[Mapping] | None = None,
                 y_title: str = "per-category macro-F1") -> go.Figure:
    """F1 against ablation ratio: one line per (series), mean with a shaded CI band; baselines as
    horizontal dashed lines; `chance` rows (ratio, mean) as a dotted grey line. Each row: series,
    ratio, mean, lo, hi, n."""
    rows = sorted(rows, key=lambda r: (r["series"], r["ratio"]))
    fig = go.Figure()
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for i, series in enumerate(dict.fromkeys(r["series"] for r in rows)):
        sel = [r for r in rows if r["series"] == series]
        color = palette[i % len(palette)]
        xs = [r["ratio"] for r in sel]
        lo = [r["lo"] if r.get("lo") is not None else r["mean"] for r in sel]
        hi = [r["hi"] if r.get("hi") is not None else r["mean"] for r in sel]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=hi + lo[::-1], fill="toself", line={"width": 0},
                                 fillcolor=color, opacity=0.15, hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=xs, y=[r["mean"] for r in sel], mode="lines+markers", name=series,
                                 line={"color": color},
                                 customdata=[[r["lo"] if r.get("lo") is not None else float("nan"),
                                              r["hi"] if r.get("hi") is not None else float("nan"), r["n"]]
                                             for r in sel],
                                 hovertemplate=f"{series}<br>r=%{{x}}: %{{y:.3f}} "
                                               "[%{customdata[0]:.3f}, %{customdata[1]:.3f}], "
                                               "n=%{customdata[2]}<extra></extra>"))
    chance = sorted(chance or [], key=lambda r: r["ratio"])
    if chance:
        fig.add_trace(go.Scatter(x=[r["ratio"] for r in chance], y=[r["mean"] for r in chance],
                                 mode="lines", name="chance (fair coin)", line={"color": "#777", "dash": "dot"},
                                 hovertemplate="chance<br>r=%{x}: %{y:.3f}<extra></extra>"))
    for j, (name, value) in enumerate((baselines or {}).items()):
        if value is None:
            continue
        fig.add_hline(y=value, line_dash="dash", line_color=palette[(j + 3) % len(palette)],
                      annotation_text=name, annotation_position="top left")
    fig.update_layout(title=title, xaxis={"title": "ablation ratio r", "range": [-0.03, 1.03]},
                      yaxis={"title": y_title, "range": [0, 1.05]},
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return fig


def category_colors(names: Iterable[str]) -> dict[str, str]:
    """A stable colour per category name (sorted, so the same category keeps its colour across maps)."""
    import plotly.express as px

    palette = px.colors.qualitative.Dark24 + px.colors.qualitative.Light24
    return {name: palette[i % len(palette)] for i, name in enumerate(sorted(set(names)))}


def embedding_map(xy, colour_by: Sequence[str], hover: Sequence[Sequence], colors: Mapping[str, str],
                  title: str | None = None, show_legend: bool = False) -> go.Figure:
    """A 2-D map (UMAP / PCA) with one trace per colour group. `hover[i]` = [concept label, style,
    shown-as label, image index]: the last lets a page map a selected point back to its image.
    Maps shown side by side share one legend drawn by the page (`legend_html`), not one each."""
    fig = go.Figure()
    for group in sorted(set(colour_by)):
        idx = [i for i, g in enumerate(colour_by) if g == group]
        fig.add_trace(go.Scattergl(
            x=[float(xy[i][0]) for i in idx], y=[float(xy[i][1]) for i in idx], mode="markers",
            name=group, legendgroup=group, showlegend=show_legend,
            marker={"size": 7, "color": colors.get(group, "#888"), "opacity": 0.8,
                    "line": {"width": 0.5, "color": "#fff"}},
            customdata=[list(hover[i]) for i in idx],
            hovertemplate="<b>%{customdata[0]}</b> (%{customdata[1]})<br>labelled as %{customdata[2]}"
                          f"<br>category: {group}<extra></extra>"))
    fig.update_layout(title=title, height=380, margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
                      xaxis={"showticklabels": False, "title": None}, yaxis={"showticklabels": False, "title": None},
                      legend={"font": {"size": 10}, "itemsizing": "constant", "orientation": "h", "y": -0.05},
                      dragmode="lasso")
    return fig


def scatter_with_labels(points: Sequence[Mapping], x_title: str, y_title: str, title: str | None = None,
                        y_range: tuple[float, float] | None = None, annotate: bool = True,
                        x_range: tuple[float, float] | None = None) -> go.Figure:
    """Labelled points (x, y, label); a least-squares line when there are at least 3, and (with
    `annotate`) Pearson's r in the title. Pass annotate=False to give your own statistics."""
    import numpy as np

    fig = go.Figure(go.Scatter(
        x=[p["x"] for p in points], y=[p["y"] for p in points], mode="markers+text",
        text=[p["label"] for p in points], textposition="top center", textfont={"size": 10},
        marker={"size": 9, "color": "#1f77b4"},
        hovertemplate="%{text}<br>" + x_title + " %{x:.3f}<br>" + y_title + " %{y:.3f}<extra></extra>",
        showlegend=False))
    if len(points) >= 3:
        xs = np.array([p["x"] for p in points], dtype=float)
        ys = np.array([p["y"] for p in points], dtype=float)
        if np.ptp(xs) > 0:
            slope, intercept = np.polyfit(xs, ys, 1)
            grid = np.linspace(xs.min(), xs.max(), 2)
            fig.add_trace(go.Scatter(x=grid, y=slope * grid + intercept, mode="lines", showlegend=False,
                                     line={"dash": "dot", "color": "#888"}, hoverinfo="skip"))
            if annotate:
                r = f"Pearson r = {np.corrcoef(xs, ys)[0, 1]:.2f}" if np.ptp(ys) > 0 else \
                    "Pearson r undefined (every F1 is the same)"
                title = (title + " · " if title else "") + f"{r} (n = {len(points)})"
    fig.update_layout(title=title, xaxis={"title": x_title, **({"range": list(x_range)} if x_range else {})},
                      yaxis={"title": y_title, **({"range": list(y_range)} if y_range else {})},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10}, height=420)
    return fig


def legend_html(colors: Mapping[str, str]) -> str:
    """A compact colour legend (HTML) shared by several maps, wrapping onto as many lines as it needs
    (its entries never break inside, and a long list is never cut at the page's edge)."""
    from html import escape
    items = "".join(f'<span style="white-space:nowrap"><span style="color:{c};'
                    f'font-size:1.2em">&#9679;</span> {escape(name)}</span>' for name, c in colors.items())
    return f'<div style="font-size:0.85em;line-height:1.8;display:flex;flex-wrap:wrap;column-gap:14px">{items}</div>'


# --- trees and tokens (Geometry: category trees vs WordNet; Predict / Geometry: the logit lens) -------

def dendrogram_layout(linkage, n_leaves: int) -> tuple[list[int], dict[int, tuple[float, float]]]:
    """Leaf order (bottom to top) and (height, y) of every node id of a scipy linkage, leaves at
    y = 0, 1, 2, ... in that order, each merge halfway between its children."""
    import numpy as np
    from scipy.cluster.hierarchy import dendrogram

    z = np.asarray(linkage, dtype=float)
    if n_leaves == 1 or z.size == 0:
        return [0], {0: (0.0, 0.0)}
    order = dendrogram(z, no_plot=True)["leaves"]
    pos = {leaf: (0.0, float(i)) for i, leaf in enumerate(order)}
    for row, (a, b, height, _) in enumerate(z):
        pos[n_leaves + row] = (float(height), (pos[int(a)][1] + pos[int(b)][1]) / 2)
    return order, pos


def dendrogram(tree: Mapping, title: str | None = None, leaf_colors: Mapping[str, str] | None = None,
               x_title: str = "distance", internal_prefix: str = "") -> go.Figure:
    """A tree (core.clusters.tree_dict: linkage, leaves, labels, internal names) drawn sideways:
    leaves on the left, labelled and coloured by `leaf_colors` (leaf name -> colour), merges to the
    right at their height. Hovering a merge shows its members (and its WordNet name when known)."""
    labels, leaves = list(tree["labels"]), list(tree["leaves"])
    n = len(leaves)
    order, pos = dendrogram_layout(tree["linkage"], n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    xs, ys = [], []
    for row, (a, b, height, _) in enumerate(tree["linkage"]):
        a, b = int(a), int(b)
        members[n + row] = members[a] + members[b]
        (ha, ya), (hb, yb) = pos[a], pos[b]
        xs += [ha, height, height, hb, None]
        ys += [ya, ya, yb, yb, None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#888", "width": 1.5},
                               hoverinfo="skip", showlegend=False))
    internal = tree.get("internal") or {}
    inner = [n + r for r in range(len(tree["linkage"]))]
    if inner:
        def describe(node: int) -> str:
            names = sorted(labels[i] for i in members[node])
            shown = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
            name = internal.get(str(node))
            return (f"<b>{internal_prefix}{name}</b><br>" if name else "") + shown
        fig.add_trace(go.Scatter(x=[pos[i][0] for i in inner], y=[pos[i][1] for i in inner], mode="markers",
                                 marker={"size": 5, "color": "#555"}, showlegend=False,
                                 text=[describe(i) for i in inner], hovertemplate="%{text}<extra></extra>"))
    colors = [(leaf_colors or {}).get(leaves[i], "#333") for i in order]
    fig.add_trace(go.Scatter(x=[0.0] * n, y=[pos[i][1] for i in order], mode="markers+text",
                             text=[labels[i] for i in order], textposition="middle left",
                             textfont={"color": colors, "size": 11}, cliponaxis=False,
                             marker={"size": 7, "color": colors}, showlegend=False,
                             hovertemplate="%{text}<extra></extra>"))
    longest = max((len(x) for x in labels), default=4)
    top = max((h for h, _ in pos.values()), default=1.0) or 1.0
    fig.update_layout(title=title, height=max(240, 17 * n + 80),
                      margin={"l": 20 + 7 * longest, "r": 10, "t": 40 if title else 10, "b": 40},
                      xaxis={"title": x_title, "range": [-0.01 * top, top * 1.03], "zeroline": False},
                      yaxis={"visible": False, "range": [-1, n]}, plot_bgcolor="rgba(0,0,0,0)")
    return fig


def leaf_colors_from_cut(leaves: Sequence[str], clusters: Sequence[int]) -> dict[str, str]:
    """A colour per leaf from a flat cut of the reference tree (the same colour = the same group)."""
    import plotly.express as px
    palette = px.colors.qualitative.Dark24
    return {leaf: palette[int(c) % len(palette)] for leaf, c in zip(leaves, clusters)}


def token_bars(rows: Sequence[Mapping], title: str | None = None, value: str = "score",
               x_title: str = "probability", highlight: Mapping[int, str] | None = None,
               x_range: tuple[float, float] | None = None) -> go.Figure:
    """Horizontal bars of tokens (rows with id, shown, and `value`), first on top. Tokens in
    `highlight` (id -> why: "name", "hypernym") are coloured and their reason is printed."""
    rows = list(rows)[::-1]
    colour = {"name": "#2ca02c", "hypernym": "#1f77b4"}
    why = [(highlight or {}).get(r["id"], "") for r in rows]
    fig = go.Figure(go.Bar(
        x=[r[value] for r in rows], y=[f"{r['shown']} " for r in rows], orientation="h",
        marker={"color": [colour.get(w, "#aaa") for w in why]},
        text=[f"{r[value]:.3f}" + (f"  ({w})" if w else "") for r, w in zip(rows, why)], textposition="outside",
        cliponaxis=False, hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_layout(title=title, height=max(200, 22 * len(rows) + 60),
                      margin={"l": 10, "r": 70, "t": 40 if title else 10, "b": 30},
                      xaxis={"title": x_title, **({"range": list(x_range)} if x_range else {})},
                      yaxis={"type": "category"})
    return fig
