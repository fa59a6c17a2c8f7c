"""First run: make sure a default checkpoint exists or is being trained, so Predict works unaided.

On a fresh data directory there is nothing to predict with. `ensure_default_checkpoint_job()` (called
by `make app` through core.app_runner) queues one training job with `default_config()` — once:
the job id is remembered in jobs_dir()/first-run.json, so a restart shows that job's progress instead
of queueing another, and a failed or cancelled first run is reported, not silently retried (the app
offers a button that calls `submit_default_job()` again).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core import paths, runs
from core.config import TrainConfig

MARKER_NAME = "first-run.json"


@dataclass(frozen=True)
class FirstRunState:
    checkpoint: Path | None        # the default checkpoint, once one exists
    job: object | None             # core.jobs.Job that trains it (None if none was ever queued)

    @property
    def ready(self) -> bool:
        return self.checkpoint is not None

    def describe(self) -> str:
        if self.checkpoint is not None:
            return f"default checkpoint ready: {self.checkpoint.name}"
        if self.job is None:
            return "no default checkpoint and no default training job"
        job = self.job
        if job.status == "queued":
            return f"default training job #{job.id} is queued"
        if job.status == "running":
            return f"default training job #{job.id} is running ({job.progress:.0%}: {job.message})"
        if job.status == "succeeded":
            return f"default training job #{job.id} finished, but its run is gone from {paths.runs_dir()}"
        return f"default training job #{job.id} {job.status}: {job.error or job.message}"


def marker_path() -> Path:
    return paths.jobs_dir() / MARKER_NAME


# The full default config costs 3 epochs x 5,626 questions through the 135M-parameter LM; a 2-core
# CPU manages ~6 questions/s forward + backward, i.e. about an hour. Without a GPU the first run
# therefore trains a starter checkpoint (60 concepts, 1 epoch: minutes) so Predict works right away;
# the full default can be trained from the Train page, or on a GPU / Slurm.
STARTER_ON_CPU = {"max_concepts": 60, "epochs": 1}


def default_config() -> TrainConfig:
    """What the first run trains: the default config on a GPU, the starter config on a CPU."""
    import torch  # lazy: the app's home page imports this module and need not load torch for it

    return TrainConfig() if torch.cuda.is_available() else TrainConfig(**STARTER_ON_CPU)


def _write_marker(job_id: int) -> None:
    folder = paths.ensure_writable(paths.jobs_dir())
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MARKER_NAME}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"job_id": job_id}, f)
    os.replace(tmp, marker_path())


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
               for wanted in (TrainConfig(), default_config()))


def state(store=None) -> FirstRunState:
    """Where the default checkpoint stands, without changing anything."""
    from core.jobs import JobStore

    checkpoint = runs.default_checkpoint() or runs.default_checkpoint(default_config())
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
    return FirstRunState(checkpoint=checkpoint, job=job)


def submit_default_job(store=None) -> int:
    """Queue the default training job now and remember it as the first-run job."""
    from core import jobs

    store = store or jobs.JobStore()
    job_id = jobs.submit("train", {"config": default_config().to_dict()}, store=store)
    _write_marker(job_id)
    return job_id


def ensure_default_checkpoint_job(store=None) -> FirstRunState:
    """Queue the default training job unless a default checkpoint exists or a first-run job was
    already queued (whatever became of it). Returns the resulting state."""
    from core.jobs import JobStore

    store = store or JobStore()
    current = state(store)
    if current.ready or current.job is not None:
        return current
    submit_default_job(store)
    return state(store)
