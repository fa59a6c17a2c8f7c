"""`taxolens data …` and `taxolens assets …`: the dataset and asset command lines as subcommands.
Their parsers are the modules' own (core/datasets.py, core/assets.py), so `python -m core.datasets`
and `python -m core.assets` (the Makefile's and README's) and these subcommands are one command line.
"""
from __future__ import annotations

import argparse


def register(sub) -> None:
    """Add `data` and `assets` to the `taxolens` subparsers; everything after the group name goes to
    the module's own parser (`taxolens data --help` shows it)."""
    p = sub.add_parser("data", help="build, list, summarize or import datasets (python -m core.datasets)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_data)
    p = sub.add_parser("assets", help="fetch and check models, WordNet and image sources (python -m core.assets)",
                       add_help=False, prefix_chars="\0")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_assets)


def _data(args) -> int:
    from core import datasets
    return datasets.main(args.rest, prog="taxolens data")


def _assets(args) -> int:
    from core import assets
    return assets.main(args.rest, prog="taxolens assets")
