"""Page plumbing: one-line error messages instead of tracebacks, and cached handles on core/.

Every cached loader takes the data directory as its first argument so that pointing TAXOLENS_DATA
elsewhere (tests, a second data set) never serves another directory's objects from the cache.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
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


def _dataset_stamp(name: str) -> float:
    """When the installed dataset `name` last changed (its dataset.json; 0 without one)."""
    stamp_file = paths.datasets_dir() / name / "dataset.json"
    return stamp_file.stat().st_mtime if stamp_file.exists() else 0.0


def dataset(name: str = "concepts"):
    """The dataset, reloaded when its dataset.json changes (e.g. after `make dataset`)."""
    return _dataset(data_key(), name, _dataset_stamp(name))


@st.cache_data(show_spinner=False, ttl=5)
def _runs(data_dir: str):  # noqa: ARG001 - keys the cache
    from core import runs
    return runs.list_runs()


def runs_list():
    """All training runs, newest first (re-read at most every 5 s)."""
    return _runs(data_key())


@st.cache_resource(show_spinner="Rebuilding the run's data split…", max_entries=4)
def _image_split(run_dir: str, stamp: str, dataset_stamp: float) -> dict:  # noqa: ARG001 - stamps key the cache
    from core import rundata, runs
    info = runs.load_run(run_dir)
    # a run of another version of its dataset split other images: rebuilt on these it would be wrong
    if info.checkpoint and not runs.DatasetVersions().checkpoint_is_current(info.checkpoint, info.config.dataset):
        return {}
    return rundata.image_split(info.config)


def image_split(run) -> dict[str, str]:
    """{image id: "train" | "val" | "test"} of a run's own (sub)set, rebuilt once per checkpoint (the
    dataset-version check with it, not on every rerun, but again once the dataset is replaced); {}
    for a run trained on another version of its dataset than the installed one."""
    return _image_split(str(run.path), run.checkpoint.get("updated") or run.created or "",
                        _dataset_stamp(run.config.dataset))


@st.cache_data(show_spinner="Reading results…", ttl=10)
def _collected(data_dir: str) -> tuple[list[dict], list[str], list[str]]:  # noqa: ARG001 - keys the cache
    from core import results
    other_version: list[str] = []
    unevaluated: list[str] = []
    return results.collect(other_version, unevaluated=unevaluated), other_version, unevaluated


def collected() -> tuple[list[dict], list[str], list[str]]:
    """results.collect of every run, baseline and probe: (rows, names measured on another version of
    their dataset, names not evaluated), re-read at most every 10 s: it reads every metrics file,
    and Results and Geometry ask on every rerun."""
    return _collected(data_key())


def refresh_results() -> None:
    """Re-read the results at the next collected() (a job just added some)."""
    _collected.clear()


def refresh_runs() -> None:
    """Forget the cached run list and preferred checkpoint (a run just finished and the page is
    about to show it)."""
    _runs.clear()
    _preferred.clear()


def trained_runs() -> list:
    """The runs Predict offers: those with at least one trained epoch, newest first."""
    return [r for r in runs_list() if r.epoch >= 1]


@st.cache_data(show_spinner=False, ttl=5)
def _preferred(data_dir: str):  # noqa: ARG001 - keys the cache
    from core import runs
    return runs.preferred_checkpoint()


def preferred_checkpoint():
    """runs.preferred_checkpoint (path, why), re-read at most every 5 s as the runs list is: it reads
    every run's records, and Predict, Browse and Geometry ask on every rerun."""
    return _preferred(data_key())


# Why preselection() picked a run, for the pages' notes ("default" and "starter": preferred_checkpoint's).
PRESELECTED = {"none": "the newest run with a pretrained LM under condition none (all hypernym evidence kept)",
               "pretrained": "the newest run with a pretrained LM (none is under condition none)",
               "newest": "the newest trained run (every run here has a random-init LM)"}


def preselection(runs_: list) -> tuple:
    """(run, why) the pickers of Predict, Browse and Geometry open with, from runs newest first:
    the preferred checkpoint when listed ("default" | "starter"), else the newest with a pretrained
    LM under condition "none" ("none"), else the newest with a pretrained LM ("pretrained"), else the
    newest ("newest"). After a sweep the newest run is often a random-init-LM control or a fully
    ablated one: a poor thing to show first. (None, None) for no runs."""
    preferred, why = preferred_checkpoint()
    listed = next((r for r in runs_ if preferred is not None and r.path == preferred), None)
    if listed is not None:
        return listed, why
    pretrained = [r for r in runs_ if r.config.lm_init != "random"]
    kept = next((r for r in pretrained if r.config.condition == "none"), None)
    if kept is not None:
        return kept, "none"
    if pretrained:
        return pretrained[0], "pretrained"
    return (runs_[0], "newest") if runs_ else (None, None)


def preselected_run(runs_: list):
    """The run the pickers open with (preselection's run)."""
    return preselection(runs_)[0]


def run_label(run) -> str:
    """One checkpoint as every run picker names it: id, dataset, condition, seed, models (a
    random-init-LM control said so, as Home's table does), its state when unfinished, and whether
    it is the default or the first run's starter."""
    preferred, why = preferred_checkpoint()
    tag = {"default": " · default", "starter": " · first-run starter"}.get(why, "") \
        if preferred is not None and run.path == preferred else ""
    state = "" if run.finished else f" · {run.status}, {run.epoch} epoch(s)"
    cfg = run.config
    lm = f"{cfg.lm} (random-init LM)" if cfg.lm_init == "random" else cfg.lm
    return f"{run.run_id} — {cfg.dataset}, {cfg.condition}, seed {cfg.seed}, {cfg.encoder} + {lm}{state}{tag}"


def run_picker(label: str, runs_: list, key: str, extra: tuple[str, ...] = (), where=st):
    """Every run picker: a selectbox over `runs_` (then the plain options `extra`) opening on
    preselected_run, named by run_label; returns the RunInfo or the extra option picked. Its options
    are run ids: a keyed selectbox keeps the value picked and checks it against the options by its
    label, and a stored RunInfo would keep the label of its time (the run's state, which changes as
    it trains), no longer offered, so the picker fell back to the preselection."""
    by_id = {r.run_id: r for r in runs_}
    options = [*by_id, *extra]
    picked = where.selectbox(label, options, key=key, index=options.index(preselected_run(runs_).run_id),
                             format_func=lambda o: run_label(by_id[o]) if o in by_id else o)
    return by_id.get(picked, picked)


def test_stamp(run) -> tuple:
    """When a checkpoint's test evaluation last changed: both files its numbers and learning note
    read (a later --leaf-ranking counts) and the checkpoint they must match (a resumed run's ranking
    no longer counts), keying their caches."""
    from core import runs
    folder = runs.eval_dir(run.path, "test")
    return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in (
        folder / runs.METRICS_JSON, folder / runs.RANKING_FILE, runs.checkpoint_json(run.path)))


@st.cache_data(show_spinner=False, max_entries=256)
def _test_numbers(run_dir: str, stamp: tuple) -> tuple[dict | None, dict | None]:  # noqa: ARG001
    from pathlib import Path

    from core import metrics, results, runs
    m = results.load_eval(Path(run_dir), "test")
    return (metrics.headline(m) if m else None), runs.ranking_summary(run_dir, "test")


def test_numbers(run) -> tuple[dict | None, dict | None]:
    """A run's test evaluation as (metrics.headline, runs.ranking_summary); None for what was
    never measured. Cached until one of test_stamp's three files changes."""
    return _test_numbers(str(run.path), test_stamp(run))


def same_pairs(same: dict[tuple, list[int]]) -> tuple[str, bool]:
    """Conditions that removed the same pairs (sweeps.same_data_seeds, results.same_removal), worded
    for a warning: ("random:0.25 = random:0.5 (seeds 0, 1); ...", whether every group is of random:r,
    where max(1, int(n·r)) is the reason)."""
    listed = "; ".join(f"{' = '.join(group)} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
                       for group, seeds in same.items())
    return listed, all(c.startswith("random:") for group in same for c in group)


def dataset_index(names: list[str]) -> int:
    """Where a Dataset picker over `names` opens: on the default dataset (TrainConfig.dataset, as
    the Train page) when it is installed, else on the first."""
    from core.config import TrainConfig
    return names.index(TrainConfig.dataset) if TrainConfig.dataset in names else 0


@st.cache_resource(show_spinner="Loading the checkpoint (encoder, language model, projector)…",
                   max_entries=2)
def predictor(run_dir: str, stamp: str):  # noqa: ARG001 - stamp keys the cache to the checkpoint
    from core.predict import Predictor

    return Predictor.load(run_dir)


_preload = {"started": False}
_preload_lock = threading.Lock()
_PRELOAD_THREAD = "taxolens-preload"


def preload_predictor() -> None:
    """Load the checkpoint Predict opens with in a background thread, once per server process, as
    soon as the first page of the first session runs: importing torch and transformers and loading
    the encoder and LM take 6-8 s on 2 cores, which the first upload then does not wait for.
    The predictor lands in predictor()'s cache; a page asking for it meanwhile waits for that one
    load (Streamlit holds a lock per cached value) instead of starting a second."""
    from ui.app_runner import PRELOAD_ENV     # set by `make app`; tests and a bare `streamlit run` skip this

    if not os.environ.get(PRELOAD_ENV):
        return
    with _preload_lock:
        if _preload["started"]:
            return
        _preload["started"] = True
    run = preselected_run(trained_runs())
    if run is None:
        return
    from core import runs

    args = (str(run.path), runs.checkpoint_stamp(run.path))
    # The cached function looks for a session to draw its spinner in; this thread has none, by design.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: not (record.args and record.args[0] == _PRELOAD_THREAD))
    threading.Thread(target=_warm_predictor, args=args, name=_PRELOAD_THREAD, daemon=True).start()


def _warm_predictor(run_dir: str, stamp: str) -> None:
    """Load only: a first prediction costs what a later one does (measured 5.55 / 5.74 s against
    5.30 / 4.97 s for the second), so a warm-up answer would only compete with the first upload."""
    try:
        predictor(run_dir, stamp)
        log.info("preloaded the checkpoint %s", run_dir)
    except Exception:       # the page loads it again and shows the error where it belongs
        log.exception("preloading the checkpoint %s failed", run_dir)


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
