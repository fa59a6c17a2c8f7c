"""`taxolens <command>` / `python -m core <command>`: the command line over core/, one package.

    common.py   what every group shares: one-line usage errors, exit codes, progress bar, Ctrl-C,
                the training flags (derived once from TrainConfig's fields), JSON output
    study.py    train, ship, evaluate, baseline, probe-lm, predict, coherence, clusters, lens, runs,
                results report
    jobs.py     jobs submit|list|show|cancel|logs|worker, sweep submit|run|show
    data.py     data build|summary|list|import (= python -m core.datasets), assets fetch|status
                (= python -m core.assets)

One error policy, here in main(): a bad argument or input (ConfigError and the other user-facing
errors) is ONE line on stderr (a list of problems, as an import's refusal gives: one per line) and
exit code 2, with nothing written (every command checks ALL its
arguments before it creates a file or directory, output paths with files.check_output_target); an
OSError that still gets through (a disk that fills, a file that vanishes) is one line naming the
path and exit code 1, as work may have been written (TAXOLENS_TRACEBACK=1: the traceback instead); a store that cannot be read is one line and exit 1. Long work shows a tqdm bar on stderr; the result is printed as JSON on stdout and written under
the runs directory.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from core.base import ConfigError
from core.cli import data, jobs, study
from core.cli.common import EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, EXIT_USAGE, Parser, one_line  # noqa: F401

EXIT_FAILURE = 1         # a runtime failure the user did not cause (job store unreadable, job failed)
TRACEBACK_ENV = "TAXOLENS_TRACEBACK"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="taxolens", description="Train, evaluate and explore cross-modal taxonomic "
                                                 "generalization. `taxolens COMMAND --help` for each.",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    study.register(sub)
    jobs.register(sub)
    data.register(sub)
    return parser


def _user_error_types() -> tuple[type, ...]:
    """Exceptions whose message is for the user (exit 2), not a bug (traceback)."""
    types: list[type] = [ConfigError]
    for module, names in (("core.images", ("ImageError",)), ("core.taxonomy", ("TaxonomyError",)),
                          ("core.data.datasets", ("DatasetError", "ImportValidationError")),
                          ("core.paths", ("UnsafeNameError",)),
                          ("core.files", ("FileReadError", "FileWriteError"))):
        mod = sys.modules.get(module)
        types += [getattr(mod, n) for n in names if mod is not None and hasattr(mod, n)]
    return tuple(types)


def _failure_types() -> tuple[type, ...]:
    """Exceptions that are not the user's input but still deserve one line, not a traceback."""
    store = sys.modules.get("core.jobs.store")
    return (store.JobStoreError,) if store is not None else ()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()               # now, so a closed pipe is handled below, not at exit
        return code
    except BrokenPipeError:
        # The reader has what it wanted; say nothing, and point stdout at /dev/null so the
        # interpreter's own flush at exit cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        print("taxolens: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if isinstance(exc, _user_error_types()):
            from core.data.datasets import problem_lines     # an import's refusal: one problem per line
            print(f"taxolens {args.command}: error: {problem_lines(exc)}", file=sys.stderr)
            return EXIT_USAGE
        if isinstance(exc, _failure_types()):
            print(f"taxolens {args.command}: error: {one_line(exc)}", file=sys.stderr)
            return EXIT_FAILURE
        if isinstance(exc, OSError):
            # Under the output checks every command runs first: a disk that fills, a file that
            # vanishes. One line naming the path, but exit 1, not 2: work may have been written.
            # TAXOLENS_TRACEBACK=1 keeps the traceback, for an OSError that is a bug of ours.
            if os.environ.get(TRACEBACK_ENV, "").strip().lower() not in ("", "0", "false", "no", "off"):
                raise
            print(f"taxolens {args.command}: error: {one_line(_os_error_line(exc))} "
                  f"({TRACEBACK_ENV}=1 shows where)", file=sys.stderr)
            return EXIT_FAILURE
        raise


def _os_error_line(exc: OSError) -> str:
    """An OSError as "<path>: <reason>" ("[Errno 13] Permission denied: '<path>'" otherwise)."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else f"{exc.filename}"
    return f"{where}: {exc.strerror}"

