"""Page plumbing: one-line error messages instead of tracebacks, and cached handles on core/.

Every cached loader takes the data directory as its first argument so that pointing TAXOLENS_DATA
elsewhere (tests, a second data set) never serves another directory's objects from the cache.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import streamlit as st

from core import paths

log = logging.getLogger("taxolens.app")
if not log.handlers:  # Streamlit reruns import this module once per process, but be safe
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def user_message(exc: BaseException, what: str) -> str:
    """One readable line. Errors TaxoLens raises on purpose (ConfigError and its kin, dataset,
    image, taxonomy and job store errors) already say what is wrong; anything else is named with
    its type and points to the log."""
    from core.config import ConfigError
    from core.data.datasets import DatasetError
    from core.images import ImageError
    from core.jobs.store import JobStoreError
    from core.taxonomy import TaxonomyError

    expected = (ConfigError, DatasetError, ImageError, JobStoreError, TaxonomyError, PermissionError,
                FileNotFoundError)
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, expected):
        return f"{what}: {text}"
    return (f"{what} failed unexpectedly ({type(exc).__name__}: {text}). "
            f"The details are in the log of the terminal running the app.")


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Run a page body (or part of it): any exception becomes one st.error line plus a logged
    traceback. Streamlit's own rerun/stop signals are BaseExceptions and pass through untouched."""
    try:
        yield
    except Exception as exc:
        log.exception("%s failed", what)
        st.error(user_message(exc, what), icon=":material/error:")


def data_key() -> str:
    """Cache key for everything read from the data directory."""
    return str(paths.data_dir())


@st.cache_resource(show_spinner=False)
def job_store(data_dir: str):  # noqa: ARG001 - keys the cache
    from core.jobs.store import JobStore
    return JobStore(paths.db_path())


def store():
    """The job store of the current data directory (one connection per app process)."""
    return job_store(data_key())


@st.cache_resource(show_spinner="Loading the dataset…", ttl=600)
def _dataset(data_dir: str, name: str, stamp: float):  # noqa: ARG001 - keys the cache
    from core.data.datasets import load_dataset
    return load_dataset(name)


def dataset(name: str = "concepts"):
    """The dataset, reloaded when its dataset.json changes (e.g. after `make dataset`)."""
    stamp_file = paths.datasets_dir() / name / "dataset.json"
    stamp = stamp_file.stat().st_mtime if stamp_file.exists() else 0.0
    return _dataset(data_key(), name, stamp)


@st.cache_data(show_spinner=False, ttl=5)
def _runs(data_dir: str):  # noqa: ARG001 - keys the cache
    from core import runs
    return runs.list_runs()


def runs_list():
    """All training runs, newest first (re-read at most every 5 s)."""
    return _runs(data_key())


def refresh_runs() -> None:
    """Forget the cached run list (a run just finished and the page is about to show it)."""
    _runs.clear()


@st.cache_data(show_spinner=False, ttl=30)
def _model_rows(data_dir: str) -> list[dict]:  # noqa: ARG001 - keys the cache
    from core import assets
    kinds = {"encoder": "image encoder", "lm": "language model"}
    return [{"model": r["id"], "kind": kinds[r["kind"]], "version": r["version"], "license": r["license"],
             "weights present": r["ready"],
             "note": "" if r["ready"] else f"optional: python -m core.assets fetch --lm {r['id']}"
             if r.get("optional") else "missing: run `make assets`"}
            for r in assets.status() if r["kind"] in kinds]


def model_rows() -> list[dict]:
    """Image encoders and language models TaxoLens knows, and whether their weights are on disk."""
    return _model_rows(data_key())


def model_ids(kind: str) -> list[str]:
    """Ids of one kind ("image encoder" | "language model"), those with weights first."""
    rows = [r for r in model_rows() if r["kind"] == kind]
    return [r["model"] for r in sorted(rows, key=lambda r: not r["weights present"])]
