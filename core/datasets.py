"""`python -m core.datasets` (= `taxolens data`) `build [--force] | summary [name] | list | import <root> <csv> --name NAME [--style S]
[--replace]`: the dataset command line (`make dataset` runs `build`). The datasets themselves are
core.data's: the type and reading (core.data.datasets), the default set (core.data.build), a user's
collection (core.data.things).
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Sequence

from core.data import build, things
from core.data.datasets import DEFAULT_NAME, Dataset, DatasetError, list_datasets, load_dataset, problem_lines

EXIT_INTERRUPTED = 130   # as `taxolens` (core.cli.common, a layer above this one) exits on Ctrl-C


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (`kill`, `timeout`, a stopped worker) raises KeyboardInterrupt, as Ctrl-C does, so a
    build or import unwinds through its staging folder and lock, which remove themselves; by default
    SIGTERM ends the process at once and leaves both behind. signal.default_int_handler is Python's
    own Ctrl-C handler (core.cli.common.StopFlag, training's, only asks to stop at the next step,
    and sits above this module)."""
    if threading.current_thread() is not threading.main_thread():   # signals reach the main thread only
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_summary(ds: Dataset) -> None:
    s = ds.summary()
    print(f"dataset {s['name']} ({s['source']}): {s['concepts']} concepts, {s['images']} images, "
          f"{s['categories']} categories")
    ipc = s["images_per_concept"]
    print(f"images per concept: min {ipc['min']}, mean {ipc['mean']}, max {ipc['max']}")
    print(f"styles: {', '.join(s['styles'][:12])}{' ...' if len(s['styles']) > 12 else ''}")
    width = max((len(k) for k in s["concepts_per_category"]), default=0)
    for k, n in sorted(s["concepts_per_category"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {k:<{width}}  {n}")
    few = (ds.info.get("import") or {}).get("few_images") or {}
    if few:
        print(f"note: {things.few_images_note(few)}", file=sys.stderr)
    unconfirmed = (ds.info.get("import") or {}).get("unconfirmed_synsets") or []
    if unconfirmed:
        print(f"note: for {len(unconfirmed)} concept(s) none of the categories is a WordNet hypernym of the "
              f"synset given; check the synset (a wrong one gives Predict a wrong chain), unless the category "
              f"is just named unlike WordNet's words:", file=sys.stderr)
        for u in unconfirmed[:10]:
            print(f"  {u['concept']}: {u['synset']} is a {', '.join(u['hypernyms'][:4]) or '?'}; categories "
                  f"{', '.join(u['categories'])}", file=sys.stderr)
        if len(unconfirmed) > 10:
            print(f"  and {len(unconfirmed) - 10} more", file=sys.stderr)


def main(argv: Sequence[str] | None = None, prog: str = "python -m core.datasets") -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="TaxoLens datasets")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build the default dataset from assets/ (no-op when up to date)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p = sub.add_parser("summary", help="counts of a dataset")
    p.add_argument("name", nargs="?", default=DEFAULT_NAME)
    sub.add_parser("list", help="names of the datasets on disk")
    p = sub.add_parser("import", help="import a folder in THINGS layout <root>/<concept>/<image>")
    p.add_argument("root", help="folder with one sub-folder of images per concept")
    p.add_argument("csv", help="CSV with columns concept,categories[,synset]; categories ';'-separated")
    p.add_argument("--name", required=True, help="name of the new dataset")
    p.add_argument("--replace", action="store_true", help="replace an existing dataset of that name")
    p.add_argument("--style", default=things.STYLE,
                   help=f"how the pictures were made (photo, sketch, painting, ...), shown beside each image "
                        f"(default: {things.STYLE})")
    args = parser.parse_args(argv)
    from core.base import ConfigError
    from core.taxonomy import TaxonomyError
    try:
        with _sigterm_interrupts():
            if args.command == "build":
                _print_summary(build.build_default_dataset(force=args.force))
            elif args.command == "summary":
                _print_summary(load_dataset(args.name))
            elif args.command == "list":
                print("\n".join(list_datasets()))
            elif args.command == "import":
                _print_summary(things.import_things(args.root, args.csv, args.name, replace=args.replace,
                                                    style=args.style))
    except BrokenPipeError:            # `taxolens data list | head`: the caller ends quietly
        raise
    except KeyboardInterrupt:          # Ctrl-C or SIGTERM: the staging folder and lock are gone already
        print(f"\ntaxolens data {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DatasetError, TaxonomyError, ConfigError, OSError) as exc:
        # ConfigError: a TAXOLENS_DATA that is no folder; OSError: a data folder that cannot be
        # written (ensure_writable's message names it). One line, as `taxolens` says it; a refusal's
        # list of problems one per line.
        print(f"taxolens data {args.command}: {problem_lines(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
