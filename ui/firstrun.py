"""First run: make Predict work unaided, and give the other pages content within minutes.

`ensure_default_checkpoint_job()` (called by `make app` through ui.app_runner):
- installs the trained default checkpoint that ships in the repo (assets/default-checkpoint) into
  the runs folder when it fits the installed dataset, and then queues one job that computes what the
  other pages need: the dataset's encoder features and the coherence table (Geometry, Browse);
- otherwise (another dataset build, a changed table) says why and queues one training job with
  `runs.first_run_config()`.
Either job is queued once: its id is remembered in jobs_dir()/first-run.json, so a restart shows that
job's progress instead of queueing another, and a failed or cancelled first run is reported, not
silently retried (the app offers a button that calls `submit_default_job()` again).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core import files, paths, runs
from core.config import TrainConfig

MARKER_NAME = "first-run.json"
INSTALL_DATASET = "`make dataset`"       # how the default dataset is built (README, Data)


@dataclass(frozen=True)
class FirstRunState:
    checkpoint: Path | None        # the default checkpoint, once one exists
    job: object | None             # core.jobs.Job of the first run: training, or preparing features
    shipped_note: str = ""         # whether the shipped checkpoint fits this machine, and why
    shipped_installable: bool = False  # it fits and is not in the runs folder: install_shipped would add it
    dataset_installed: bool = True  # the default dataset, which the first run trains on

    @property
    def ready(self) -> bool:
        return self.checkpoint is not None

    def describe(self) -> str:
        if self.checkpoint is not None:
            return f"default checkpoint ready: {self.checkpoint.name}"
        if self.job is None and not self.dataset_installed:
            return f"no default checkpoint, and the default dataset '{TrainConfig.dataset}' is not " \
                   f"installed to train one on: {INSTALL_DATASET} installs it"
        if self.job is None:
            return "no default checkpoint and no default training job"
        job = self.job
        if job.kind != "train":
            return f"first-run job #{job.id} ({job.kind}) is {job.status}"
        if job.status == "queued":
            return f"default training job #{job.id} is queued"
        if job.status == "running":
            return f"default training job #{job.id} is running ({job.progress:.0%}: {job.message})"
        if job.status == "succeeded":
            return f"default training job #{job.id} finished, but its run is gone from {paths.runs_dir()}"
        return f"default training job #{job.id} {job.status}: {job.error or job.message}"


def marker_path() -> Path:
    return paths.jobs_dir() / MARKER_NAME


def _write_marker(job_id: int) -> None:
    paths.ensure_writable(paths.jobs_dir())
    files.write_atomic(marker_path(), json.dumps({"job_id": job_id}), fsync=False)


def _marked_job_id() -> int | None:
    try:
        return int(json.loads(marker_path().read_text())["job_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_default_train(job) -> bool:
    if job.kind != "train":
        return False
    ignore = {"seed", "device"}
    config = job.spec.get("config", {})
    return any(all(config.get(k) == v for k, v in wanted.to_dict().items() if k not in ignore)
               for wanted in (TrainConfig(), runs.first_run_config()))


def state(store=None, preferred=runs.preferred_checkpoint) -> FirstRunState:
    """Where the default checkpoint stands, without changing anything. `preferred`: how to find the
    preferred checkpoint (the Home panel, polled every 2 s, passes the app's 5-second cache of it)."""
    from core.jobs import JobStore
    from core.models import checkpoint as checkpoints

    checkpoint, _ = preferred()
    shipped_fits, shipped_note = checkpoints.shipped_fit()
    installable = shipped_fits and not checkpoints.shipped_installed()
    store = store or JobStore()
    job = None
    marked = _marked_job_id()
    if marked is not None:
        try:
            job = store.get(marked)
        except KeyError:  # the job store was deleted but the marker survived
            job = None
    if job is None or job.done:
        # a default training job queued by hand (CLI, Train page) counts as well
        live = [j for j in store.list(kind="train") if not j.done and _is_default_train(j)]
        job = live[-1] if live else job
    return FirstRunState(checkpoint=checkpoint, job=job, shipped_note=shipped_note, shipped_installable=installable,
                         dataset_installed=default_dataset_installed())


def default_dataset_installed() -> bool:
    """Whether the default dataset is here: without it a first-run job can only fail (a researcher
    may have only imported datasets)."""
    from core.data.datasets import list_datasets
    return TrainConfig.dataset in list_datasets()


def submit_default_job(store=None) -> int:
    """Queue the default training job now and remember it as the first-run job."""
    from core import jobs

    store = store or jobs.JobStore()
    job_id = jobs.submit("train", {"config": runs.first_run_config().to_dict()}, store=store)
    _write_marker(job_id)
    return job_id


def submit_prepare_job(store=None) -> int:
    """Queue the job that fills the feature cache and the coherence table for the default dataset
    (what Browse and Geometry show; the job's default images, each category's training images under
    seed 0's split, as in the paper), and remember it as the first-run job."""
    from core import jobs

    store = store or jobs.JobStore()
    cfg = TrainConfig()
    job_id = jobs.submit("coherence", {"dataset": cfg.dataset, "encoder": cfg.encoder, "seed": 0}, store=store)
    _write_marker(job_id)
    return job_id


def ensure_default_checkpoint_job(store=None) -> FirstRunState:
    """Install the shipped checkpoint when it fits, else queue the default training job; then (with
    a checkpoint) queue the feature/coherence job. Each at most once: nothing is queued when a
    first-run job was already queued, whatever became of it. Returns the resulting state."""
    from core.jobs import JobStore
    from core.models import checkpoint

    store = store or JobStore()
    installed = checkpoint.install_shipped()
    current = state(store)
    if current.job is not None:
        return current
    if installed is not None or current.ready:
        submit_prepare_job(store)
    else:
        submit_default_job(store)
    return state(store)
