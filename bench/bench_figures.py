"""`python -m bench.bench_figures [--figures 4]`: SVG + PNG export of the paper's figures, one
Chromium per image (kaleido's one-shot, what `taxolens results figures` did) against one Chromium
for all of them (core.paper_figures.export_session, what it does now). Both export the same
figures; each SVG is compared with its one-shot twin, up to the random id plotly gives every render.

Measured on 2 cores (2026-12-06): 8 images 22.8 s one-shot against 4.2 s in one session (5.5x);
`taxolens results figures` on this repository's runs (4 settings, 22 images) 68.5 s against 11.8 s.
"""
from __future__ import annotations

import argparse
import re
import time

import plotly.graph_objects as go

from core import paper_figures as pf


def figures(n: int) -> list:
    return [go.Figure(go.Bar(x=[f"c{j}" for j in range(20)], y=[(i * 7 + j) % 11 / 10 for j in range(20)]),
                      layout={"title": f"figure {i}", "template": "plotly_white"}) for i in range(n)]


def _without_ids(svg: bytes) -> bytes:
    """plotly names each render's defs and clip paths by a fresh 6-hex id: the rest must match."""
    ids = set(re.findall(rb'id="defs-([0-9a-f]{6})"', svg))
    for i in ids:
        svg = svg.replace(i, b"ID")
    return svg


def export(figs: list) -> list[bytes]:
    return [pf.to_image(f, fmt) for f in figs for fmt in ("svg", "png")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", type=int, default=4, help="figures to export, each as SVG and PNG")
    args = parser.parse_args(argv)
    problem = pf.export_problem()
    if problem:
        print(f"bench_figures: {problem}")
        return 1
    figs = figures(args.figures)
    t = time.perf_counter()
    one_shot = export(figs)
    a = time.perf_counter() - t
    t = time.perf_counter()
    with pf.export_session():
        session = export(figs)
    b = time.perf_counter() - t
    same = all(_without_ids(x) == _without_ids(y) for x, y in zip(one_shot[::2], session[::2]))
    print(f"figure export, {2 * len(figs)} images (SVG + PNG)")
    print(f"  one Chromium per image   {a:6.1f} s  ({a / len(one_shot):.2f} s per image)")
    print(f"  one session for all      {b:6.1f} s  ({b / len(session):.2f} s per image)")
    print(f"  ratio                    {a / b:6.1f}x  (SVGs identical: {same})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
