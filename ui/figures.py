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


def chain_layout(chains: Sequence[Sequence]) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Positions for the union of leaf → root chains drawn as a tree: root at the top (y = 0),
    each node one row below its shallowest parent, siblings spread around x = 0. Nodes are keyed by
    synset (chains share their upper part). Returns ({synset: (x, y)}, [(child, parent) edges])."""
    depth: dict[str, int] = {}
    edges: list[tuple[str, str]] = []
    for chain in chains:
        names = [n.synset for n in chain]
        for i, name in enumerate(names):
            from_root = len(names) - 1 - i
            depth[name] = min(depth.get(name, from_root), from_root)
        for child, parent in zip(names, names[1:]):
            if (child, parent) not in edges:
                edges.append((child, parent))
    rows: dict[int, list[str]] = {}
    for name, d in depth.items():
        rows.setdefault(d, []).append(name)
    pos = {}
    for d, names in rows.items():
        names.sort()
        for j, name in enumerate(names):
            pos[name] = (j - (len(names) - 1) / 2, -d)
    return pos, edges


def chain_figure(chains: Sequence[Sequence], title: str | None = None) -> go.Figure:
    """The predicted hypernym chain(s), leaf (bottom) → root (top), nodes coloured by P(yes).
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
    fig.add_trace(go.Scatter(
        x=[pos[s][0] for s in order], y=[pos[s][1] for s in order], mode="markers+text",
        marker={"size": [26 if s in leaves else 20 for s in order],
                "symbol": ["diamond" if nodes[s].is_category else "circle" for s in order],
                "color": [nodes[s].p_yes for s in order], "colorscale": P_SCALE, "cmin": 0, "cmax": 1,
                "line": {"color": "#222", "width": [3 if nodes[s].is_category else 1 for s in order]},
                "colorbar": {"title": {"text": "P(yes)"}, "thickness": 12, "len": 0.8}},
        text=[f"{nodes[s].label}  {nodes[s].p_yes:.2f}" for s in order], textposition="middle right",
        customdata=[[s, "dataset category" if nodes[s].is_category else "WordNet node"] for s in order],
        hovertemplate="<b>%{text}</b><br>%{customdata[0]}<br>%{customdata[1]}<extra></extra>",
        showlegend=False))
    depth = max((-y for _, y in pos.values()), default=0)
    width = max((abs(x) for x, _ in pos.values()), default=0)
    fig.update_layout(
        title=title, height=max(260, 48 * (depth + 1) + 60), margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10},
        xaxis={"visible": False, "range": [-width - 0.5, width + 2.5]},
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
        text=[f"{r['p_yes']:.2f}" for r in rows], textposition="outside",
        hovertemplate="%{y}: P(yes) %{x:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=max(220, 22 * len(rows) + 60),
                      margin={"l": 10, "r": 30, "t": 40 if title else 10, "b": 30},
                      xaxis={"range": [0, 1.12], "title": "P(yes)"})
    return fig


def _node(n):
    if isinstance(n, Mapping):
        from types import SimpleNamespace
        return SimpleNamespace(synset=n["synset"], label=n["label"], p_yes=float(n["p_yes"]),
                               is_category=bool(n.get("is_category")))
    return n


def grouped_bars(rows: Iterable[Mapping], x: str, y: str, group: str, error: str | None = None,
                 title: str | None = None, y_title: str | None = None,
                 colors: Mapping[str, str] | None = None) -> go.Figure:
    """Bars of `y` per `x`, one colour per `group`, optional symmetric error bars from `error`."""
    rows = list(rows)
    fig = go.Figure()
    for g in dict.fromkeys(r[group] for r in rows):
        sel = [r for r in rows if r[group] == g]
        fig.add_trace(go.Bar(
            name=str(g), x=[r[x] for r in sel], y=[r[y] for r in sel],
            marker_color=(colors or {}).get(g),
            error_y={"type": "data", "array": [r.get(error) or 0 for r in sel], "visible": True}
            if error else None))
    fig.update_layout(barmode="group", title=title, yaxis={"title": y_title or y},
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10}, legend_title=group)
    return fig


def ratio_curves(rows: Iterable[Mapping], baselines: Mapping[str, float] | None = None,
                 title: str | None = None) -> go.Figure:
    """F1 against ablation ratio: one line per (series), mean with a shaded CI band; baselines as
    horizontal dashed lines. Each row: series, ratio, mean, lo, hi, n."""
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
                                 customdata=[[r["lo"], r["hi"], r["n"]] for r in sel],
                                 hovertemplate=f"{series}<br>r=%{{x}}: %{{y:.3f}} "
                                               "[%{customdata[0]:.3f}, %{customdata[1]:.3f}], "
                                               "n=%{customdata[2]}<extra></extra>"))
    for j, (name, value) in enumerate((baselines or {}).items()):
        if value is None:
            continue
        fig.add_hline(y=value, line_dash="dash", line_color=palette[(j + 3) % len(palette)],
                      annotation_text=name, annotation_position="top left")
    fig.update_layout(title=title, xaxis={"title": "ablation ratio r", "range": [-0.03, 1.03]},
                      yaxis={"title": "F1", "range": [0, 1.05]},
                      margin={"l": 10, "r": 10, "t": 40 if title else 10, "b": 10})
    return fig
